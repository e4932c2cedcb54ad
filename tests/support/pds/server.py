"""Start and drive the local reference PDS (npm `@atproto/pds`) for tests and benchmarks.

Test helpers talk to the PDS with plain httpx, independently of the code under test.
"""

import hashlib
import json
import os
import secrets
import select
import socket
import sqlite3
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import httpx

HERE = Path(__file__).resolve().parent
INSTALL_INPUTS = ("package-lock.json", "install.sh", "start.mjs")


@dataclass
class Account:
    handle: str
    email: str
    password: str
    did: str
    access_jwt: str
    refresh_jwt: str
    app_passwords: list[str] = field(default_factory=list)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def install_dir() -> Path:
    """Where Node 22 and the PDS are installed: outside the clone, keyed by what the install depends on, so
    fresh clones (CI) reuse it and a changed lock file gets a fresh install. SKYPORT_PDS_DIR overrides."""
    if os.environ.get("SKYPORT_PDS_DIR"):
        return Path(os.environ["SKYPORT_PDS_DIR"])
    digest = hashlib.sha256(b"".join((HERE / name).read_bytes() for name in INSTALL_INPUTS)).hexdigest()[:12]
    cache = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    return cache / "skyport" / f"pds-{digest}"


def ensure_installed() -> Path:
    """Install Node 22 and the PDS (idempotent, cached); return the node binary."""
    print(f"local PDS: using {install_dir()} (the first install takes a few minutes)", file=sys.stderr)
    result = subprocess.run(
        ["bash", str(HERE / "install.sh"), str(install_dir())], capture_output=True, text=True, check=False
    )
    if result.returncode != 0:
        raise RuntimeError(f"Installing the local PDS failed:\n{result.stderr[-4000:]}")
    return Path(result.stdout.strip().splitlines()[-1])


def _die_with_parent() -> None:
    """In the child, before exec: have Linux send it SIGTERM when the process that started it dies, however it
    dies (`make demo` killed with SIGKILL must not leave a PDS behind)."""
    import ctypes
    import signal

    ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG


class LocalPds:
    """A running PDS + PLC directory on loopback, with a fresh data directory. With `plc_url`, no PLC directory of
    its own: the PDS registers its accounts' DIDs in that one (a second PDS beside the first). `port`, `plc_port`
    and `data_dir` fix what is otherwise chosen afresh (`make demo` keeps its addresses from run to run);
    `die_with_parent` stops the server with the process that started it, on Linux."""

    admin_password = "admin-pass"

    def __init__(
        self,
        plc_url: str | None = None,
        *,
        port: int | None = None,
        plc_port: int | None = None,
        data_dir: Path | None = None,
        die_with_parent: bool = False,
    ) -> None:
        self.node = ensure_installed()
        if data_dir is not None:
            data_dir.mkdir(parents=True, exist_ok=True)
        self.data_dir = data_dir or Path(tempfile.mkdtemp(prefix="skyport-pds-"))
        self.port = port or _free_port()
        self.plc_port = plc_port or _free_port()
        self.plc_url = plc_url or f"http://127.0.0.1:{self.plc_port}"
        self.dns_zone = None  # the tests' loopback DNS zone, when they set one up
        env = {
            **os.environ,
            "PDS_PORT": str(self.port),
            "PLC_PORT": str(self.plc_port),
            # The PDS's fetcher refuses IP-address hosts: it names the PLC directory by name.
            **({"PLC_URL": plc_url.replace("127.0.0.1", "localhost")} if plc_url else {}),
            "PDS_DATA_DIR": str(self.data_dir),
            "PDS_ADMIN_PASSWORD": self.admin_password,
            "LOG_ENABLED": "false",
        }
        self.stderr = tempfile.TemporaryFile()  # noqa: SIM115 - lives as long as the server
        self.process = subprocess.Popen(
            [str(self.node), str(install_dir() / "start.mjs")],
            stdout=subprocess.PIPE,
            stderr=self.stderr,
            env=env,
            cwd=install_dir(),
            preexec_fn=_die_with_parent if die_with_parent and sys.platform == "linux" else None,
        )
        self.url = self._wait_ready(timeout=90)
        self.http = httpx.Client(base_url=self.url, timeout=30)

    def _wait_ready(self, timeout: float) -> str:
        deadline = time.monotonic() + timeout
        assert self.process.stdout is not None
        buffer = b""
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                break
            ready, _, _ = select.select([self.process.stdout], [], [], 0.5)
            if ready:
                chunk = os.read(self.process.stdout.fileno(), 65536)
                buffer += chunk
                for line in buffer.splitlines():
                    if line.startswith(b"{"):
                        info = json.loads(line)
                        # Use 127.0.0.1 rather than localhost: no IPv6/IPv4 lookup ambiguity.
                        return info["pds"].replace("localhost", "127.0.0.1")
        self.stop()
        self.stderr.seek(0)
        raise RuntimeError(f"The local PDS did not start within {timeout:.0f} s:\n{self.stderr.read()[-4000:]!r}")

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.process.kill()

    # --- accounts ---------------------------------------------------------------------------------------------
    def xrpc(self, method: str, nsid: str, *, token: str | None = None, **kwargs) -> httpx.Response:
        headers = {**kwargs.pop("headers", {}), **({"Authorization": f"Bearer {token}"} if token else {})}
        return self.http.request(method, f"/xrpc/{nsid}", headers=headers, **kwargs)

    def create_account(self, handle: str | None = None) -> Account:
        name = handle or f"u{secrets.token_hex(4)}"
        handle = f"{name}.test"
        password = f"main-{secrets.token_urlsafe(12)}"
        email = f"{name}@example.com"
        response = self.xrpc(
            "POST", "com.atproto.server.createAccount", json={"handle": handle, "email": email, "password": password}
        )
        response.raise_for_status()
        body = response.json()
        return Account(handle, email, password, body["did"], body["accessJwt"], body["refreshJwt"])

    def create_app_password(self, account: Account, *, privileged: bool = False) -> str:
        response = self.xrpc(
            "POST",
            "com.atproto.server.createAppPassword",
            token=account.access_jwt,
            json={"name": f"skyport-{secrets.token_hex(3)}", "privileged": privileged},
        )
        response.raise_for_status()
        password = response.json()["password"]
        account.app_passwords.append(password)
        return password

    def set_profile(self, account: Account, display_name: str, description: str = "", avatar_png: bytes = b"") -> None:
        record = {"$type": "app.bsky.actor.profile", "displayName": display_name, "description": description}
        if avatar_png:
            upload = self.http.post(
                "/xrpc/com.atproto.repo.uploadBlob",
                content=avatar_png,
                headers={"Authorization": f"Bearer {account.access_jwt}", "Content-Type": "image/png"},
            )
            upload.raise_for_status()
            record["avatar"] = upload.json()["blob"]
        response = self.xrpc(
            "POST",
            "com.atproto.repo.putRecord",
            token=account.access_jwt,
            json={"repo": account.did, "collection": "app.bsky.actor.profile", "rkey": "self", "record": record},
        )
        response.raise_for_status()

    def create_post(
        self, account: Account, text: str, *, created_at: str = "2026-11-30T08:15:00.000Z", **fields
    ) -> dict:
        """Write a post straight into `account`'s repository, bypassing Skyport (`fields`: `reply`, `embed`, ...);
        its strong reference, `{"uri", "cid"}`."""
        record = {"$type": "app.bsky.feed.post", "text": text, "createdAt": created_at, **fields}
        answer = self.xrpc(
            "POST",
            "com.atproto.repo.createRecord",
            token=account.access_jwt,
            json={"repo": account.did, "collection": "app.bsky.feed.post", "record": record},
        )
        assert answer.status_code == 200, answer.text
        return {"uri": answer.json()["uri"], "cid": answer.json()["cid"]}

    def refresh_with(self, refresh_jwt: str) -> httpx.Response:
        return self.xrpc("POST", "com.atproto.server.refreshSession", token=refresh_jwt)

    def delete_session(self, refresh_jwt: str) -> httpx.Response:
        return self.xrpc("POST", "com.atproto.server.deleteSession", token=refresh_jwt)

    def deactivate(self, account: Account) -> None:
        response = self.xrpc("POST", "com.atproto.server.deactivateAccount", token=account.access_jwt, json={})
        response.raise_for_status()

    def refresh_count(self, did: str) -> int:
        """How many refreshSession calls reached the PDS for a DID (rows whose nextId was set)."""
        with sqlite3.connect(self.data_dir / "account.sqlite") as db:
            (count,) = db.execute(
                "SELECT count(*) FROM refresh_token WHERE did = ? AND nextId IS NOT NULL", (did,)
            ).fetchone()
        return count

    def session_count(self, did: str) -> int:
        """How many refresh tokens (sessions and their rotations) the PDS issued for a DID."""
        with sqlite3.connect(self.data_dir / "account.sqlite") as db:
            (count,) = db.execute("SELECT count(*) FROM refresh_token WHERE did = ?", (did,)).fetchone()
        return count

    # --- identity ---------------------------------------------------------------------------------------------
    def email_token(self, did: str, purpose: str) -> str:
        """The latest code the PDS would have e-mailed to an account (it sends no mail here)."""
        with sqlite3.connect(self.data_dir / "account.sqlite") as db:
            (token,) = db.execute(
                "SELECT token FROM email_token WHERE did = ? AND purpose = ? ORDER BY requestedAt DESC LIMIT 1",
                (did, purpose),
            ).fetchone()
        return token

    def migrate(self, account: Account, to: "LocalPds") -> Account:
        """Move an account to another PDS sharing this one's PLC directory, as atproto's account migration does:
        the account is created there under its DID (with a service-auth token from here), its repository imported,
        its DID document updated through a PLC operation signed here, then activated there and deactivated here.
        Returns the account as the new PDS knows it (same DID, handle and password; new tokens)."""
        server_did = to.xrpc("GET", "com.atproto.server.describeServer").raise_for_status().json()["did"]
        service_auth = self.xrpc(
            "GET",
            "com.atproto.server.getServiceAuth",
            token=account.access_jwt,
            params={"aud": server_did, "lxm": "com.atproto.server.createAccount"},
        ).raise_for_status()
        created = to.xrpc(
            "POST",
            "com.atproto.server.createAccount",
            token=service_auth.json()["token"],
            json={"did": account.did, "handle": account.handle, "email": account.email, "password": account.password},
        ).raise_for_status()
        moved = Account(
            account.handle,
            account.email,
            account.password,
            account.did,
            created.json()["accessJwt"],
            created.json()["refreshJwt"],
        )
        repo = self.xrpc("GET", "com.atproto.sync.getRepo", params={"did": account.did}).raise_for_status()
        to.xrpc(
            "POST",
            "com.atproto.repo.importRepo",
            token=moved.access_jwt,
            content=repo.content,
            headers={"Content-Type": "application/vnd.ipld.car"},
        ).raise_for_status()
        credentials = to.xrpc(
            "GET", "com.atproto.identity.getRecommendedDidCredentials", token=moved.access_jwt
        ).raise_for_status()
        self.xrpc(
            "POST", "com.atproto.identity.requestPlcOperationSignature", token=account.access_jwt
        ).raise_for_status()
        signed = self.xrpc(
            "POST",
            "com.atproto.identity.signPlcOperation",
            token=account.access_jwt,
            json={"token": self.email_token(account.did, "plc_operation"), **credentials.json()},
        ).raise_for_status()
        to.xrpc(
            "POST", "com.atproto.identity.submitPlcOperation", token=moved.access_jwt, json=signed.json()
        ).raise_for_status()
        to.xrpc("POST", "com.atproto.server.activateAccount", token=moved.access_jwt).raise_for_status()
        self.deactivate(account)
        return moved
