"""`make demo`: a local Bluesky server to try Skyport against, with two demo accounts.

It starts the reference PDS and its PLC directory on loopback (the same `LocalPds` the tests use, on fixed ports),
creates @alice.test and @bob.test with an app password each, writes what Skyport needs into `.env` and prints the
accounts. Then `make run` (in another terminal) connects them, handles verified. Ctrl-C, or `make demo-stop` from
another terminal, stops the server and takes its lines out of `.env` again: nothing is left running.

`.env` is the user's file. The demo owns only the lines between its two markers, which it writes and removes; it
never changes a line outside them. When `.env` (outside the markers) or the environment already sets one of the
keys it would write, it changes nothing, starts nothing and says which key to remove: a value of the user's must
not be overridden silently, nor silently win over the demo's.

Each run starts an empty server (its PLC directory keeps no data): channels connected to an earlier demo need
reconnecting (or removing) in Skyport.
"""

import argparse
import contextlib
import os
import re
import signal
import socket
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[3]
BEGIN = "# >>> make demo: a local Bluesky server; `make demo` writes these lines and removes them when it stops >>>"
END = "# <<< make demo <<<"
OWNED = ("BLUESKY_SERVICE_URL", "BLUESKY_PLC_URL", "INTEGRATIONS_ALLOW_INSECURE_PDS")
DEMO_HANDLES = ("alice", "bob")
DEFAULT_PDS_PORT, DEFAULT_PLC_PORT = 2583, 2582
_ASSIGNMENT = re.compile(r"\A(?:export )?([A-Za-z_0-9]+)=")  # how django-environ reads a `.env` line


@dataclass(frozen=True)
class DemoAccount:
    handle: str
    did: str
    app_password: str
    password: str  # the main password: Skyport refuses it (try it)


# --- .env ---------------------------------------------------------------------------------------------------------
def _split(text: str) -> tuple[list[str], list[str]]:
    """The user's lines (everything outside the demo's markers) and the demo's lines."""
    users, ours, inside = [], [], False
    for line in text.splitlines(keepends=True):
        marker = line.rstrip("\r\n")
        if marker == BEGIN:
            inside = True
        elif marker == END and inside:
            inside = False
        elif inside:
            ours.append(line)
        else:
            users.append(line)
    return users, ours


def user_keys(text: str) -> dict[str, str]:
    """The keys `.env` sets outside the demo's lines, with their line."""
    found = {}
    for line in _split(text)[0]:
        match = _ASSIGNMENT.match(line.strip())
        if match:
            found[match[1]] = line.strip()
    return found


def conflicts(env_file: Path, environ: dict[str, str] | None = None) -> list[str]:
    """Why the demo cannot own its keys: each key the user's `.env` or the environment already sets."""
    environ = os.environ if environ is None else environ
    text = env_file.read_text() if env_file.exists() else ""
    problems = [f"{env_file} sets {key} ({line})" for key, line in user_keys(text).items() if key in OWNED]
    problems += [f"the environment sets {key}" for key in OWNED if key in environ]
    return problems


def _write(env_file: Path, text: str) -> None:
    """Replace `env_file` with `text` in one step, keeping its permissions (0600 for a new file: it holds secrets)."""
    mode = env_file.stat().st_mode & 0o777 if env_file.exists() else 0o600
    fd, draft = tempfile.mkstemp(dir=env_file.parent, prefix=".env-")
    try:
        with os.fdopen(fd, "w") as handle:
            handle.write(text)
        os.chmod(draft, mode)
        os.replace(draft, env_file)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(draft)
        raise


def write_block(env_file: Path, values: dict[str, str]) -> None:
    """Put the demo's lines (`values`) at the top of `env_file`, replacing any earlier ones; the user's text follows
    byte for byte, so taking the lines out again gives back exactly the file the user had."""
    text = env_file.read_text() if env_file.exists() else ""
    block = [BEGIN, *(f"{key}={value}" for key, value in values.items()), END]
    _write(env_file, "\n".join(block) + "\n" + "".join(_split(text)[0]))


def remove_block(env_file: Path) -> bool:
    """Take the demo's lines out of `env_file` (the user's stay exactly as they were); True when there were any."""
    if not env_file.exists():
        return False
    text = env_file.read_text()
    if BEGIN not in text:
        return False
    users = "".join(_split(text)[0])
    if users:
        _write(env_file, users)
    else:  # the demo made the file: no .env is what there was
        env_file.unlink()
    return True


# --- the server -----------------------------------------------------------------------------------------------------
def _port_in_use(port: int) -> bool:
    with socket.socket() as sock:
        return sock.connect_ex(("127.0.0.1", port)) == 0


def create_accounts(server) -> list[DemoAccount]:
    """The demo accounts, each with a profile and an app password."""
    accounts = []
    for name in DEMO_HANDLES:
        account = server.create_account(name)
        server.set_profile(account, f"{name.title()} (demo)", "A demo account on the local Bluesky server.")
        accounts.append(DemoAccount(account.handle, account.did, server.create_app_password(account), account.password))
    return accounts


def describe(accounts: list[DemoAccount], env_file: Path, values: dict[str, str]) -> str:
    """What the demo prints once it is ready: the accounts, what it wrote, what to do next."""
    table = [("account", "app password", "main password (Skyport refuses it)", "DID")]
    table += [(f"@{a.handle}", a.app_password, a.password, a.did) for a in accounts]
    widths = [max(len(row[column]) for row in table) for column in range(3)]
    rows = "\n".join(
        "  " + "   ".join(cell.ljust(width) for cell, width in zip(row, widths)) + "   " + row[3] for row in table
    )
    keys = ", ".join(values)
    return f"""
Skyport demo: a local Bluesky server (the reference PDS) at {values["BLUESKY_SERVICE_URL"]}, its PLC directory at
{values["BLUESKY_PLC_URL"]}.

{rows}

{env_file} now points Skyport at it, between the "make demo" lines:
  {keys}.
Next, in another terminal:
  make run                                     (restart it if it was running: it reads .env when it starts)
  .venv/bin/python manage.py createsuperuser   (once: your login to Skyport)
  http://127.0.0.1:8000/app/channels -> Connect Bluesky: a handle above and its app password.
A Service URL saved on the admin page wins over .env: leave it empty there to use this server.

Ctrl-C here (or `make demo-stop`) stops the server and takes its lines out of {env_file.name} again.
"""


def pid_file(data_dir: Path) -> Path:
    return data_dir / "demo.pid"


def running_pid(data_dir: Path) -> int | None:
    """The process id of a demo running with this data folder, or None."""
    try:
        pid = int(pid_file(data_dir).read_text().strip())
        os.kill(pid, 0)
    except (FileNotFoundError, ValueError, ProcessLookupError):
        return None
    except PermissionError:
        return pid
    return pid


def run(env_file: Path, data_dir: Path, pds_port: int, plc_port: int) -> int:
    """Start the demo; returns the exit status once it is stopped."""
    if (pid := running_pid(data_dir)) is not None:
        print(f"A demo is already running (process {pid}): Ctrl-C there, or make demo-stop.", file=sys.stderr)
        return 1
    problems = conflicts(env_file)
    if problems:
        print("make demo changes nothing: " + "; ".join(problems) + ".", file=sys.stderr)
        print(
            f"Remove (or comment out) those lines, or unset those variables, and run it again: the demo writes "
            f"{', '.join(OWNED)} itself and takes them out again when it stops.",
            file=sys.stderr,
        )
        return 2
    busy = [str(port) for port in (pds_port, plc_port) if _port_in_use(port)]
    if busy:
        print(
            f"Port {' and '.join(busy)} on 127.0.0.1 is in use: stop what listens there, or choose other ports "
            "(DEMO_PDS_PORT=… DEMO_PLC_PORT=… make demo).",
            file=sys.stderr,
        )
        return 1

    from tests.support.pds.server import LocalPds

    server_dir = data_dir / "pds"
    if server_dir.exists():  # an earlier demo's data: its PLC directory is gone, so are its DIDs
        import shutil

        shutil.rmtree(server_dir)
    stopping = False

    def stop(signum, frame):
        nonlocal stopping
        if not stopping:
            stopping = True
            raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGHUP, stop)
    server = None
    try:
        print(f"Starting the local Bluesky server on 127.0.0.1:{pds_port} (PLC directory :{plc_port}) …", flush=True)
        server = LocalPds(port=pds_port, plc_port=plc_port, data_dir=server_dir, die_with_parent=True)
        pid_file(data_dir).write_text(f"{os.getpid()}\n")
        accounts = create_accounts(server)
        values = {
            "BLUESKY_SERVICE_URL": server.url,
            "BLUESKY_PLC_URL": server.plc_url,
            # `make serve` runs with DEBUG off, where a local http:// server is refused unless this says otherwise.
            "INTEGRATIONS_ALLOW_INSECURE_PDS": "true",
        }
        write_block(env_file, values)
        print(describe(accounts, env_file, values), flush=True)
        while server.process.poll() is None:
            time.sleep(0.5)
        print("The local Bluesky server stopped by itself.", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 0
    finally:
        signal.signal(signal.SIGINT, signal.SIG_IGN)  # a second Ctrl-C must not cut the clean-up short
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        if server is not None:
            server.stop()
        removed = remove_block(env_file)
        with contextlib.suppress(FileNotFoundError):
            pid_file(data_dir).unlink()
        if server_dir.exists():
            import shutil

            shutil.rmtree(server_dir, ignore_errors=True)
        print(
            "\nThe demo server stopped" + (f"; its lines are out of {env_file} again." if removed else "."), flush=True
        )


def stop_running(env_file: Path, data_dir: Path, timeout: float = 30) -> int:
    """`make demo-stop`: stop a running demo (it cleans up after itself); clean up after one that was killed."""
    pid = running_pid(data_dir)
    if pid is None:
        removed = remove_block(env_file)
        print("No demo is running." + (f" Its leftover lines are out of {env_file} now." if removed else ""))
        return 0
    os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + timeout
    while running_pid(data_dir) == pid and time.monotonic() < deadline:
        time.sleep(0.2)
    if running_pid(data_dir) == pid:
        print(f"The demo (process {pid}) did not stop within {timeout:.0f} s.", file=sys.stderr)
        return 1
    print("The demo server stopped.")
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="make demo", description=__doc__.split("\n\n")[0])
    parser.add_argument("--env-file", type=Path, default=ROOT / ".env")
    parser.add_argument("--data-dir", type=Path, default=ROOT / "var" / "demo")
    parser.add_argument("--pds-port", type=int, default=int(os.environ.get("DEMO_PDS_PORT") or DEFAULT_PDS_PORT))
    parser.add_argument("--plc-port", type=int, default=int(os.environ.get("DEMO_PLC_PORT") or DEFAULT_PLC_PORT))
    parser.add_argument("--stop", action="store_true", help="stop the demo running from this checkout")
    args = parser.parse_args(argv)
    args.data_dir.mkdir(parents=True, exist_ok=True)
    if args.stop:
        return stop_running(args.env_file, args.data_dir)
    return run(args.env_file, args.data_dir, args.pds_port, args.plc_port)


if __name__ == "__main__":
    sys.exit(main())
