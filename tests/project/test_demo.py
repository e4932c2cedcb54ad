"""`make demo` (tests/support/pds/demo.py): a local Bluesky server with two demo accounts, written into `.env`, and a
Skyport that connects them with their handles verified; stopping it leaves nothing running and `.env` as it was."""

import os
import re
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.browser.test_browser import page  # noqa: F401 (a fixture)
from tests.support.pds import demo

ROOT = Path(__file__).resolve().parents[2]
USERS_ENV = "DEBUG=true\n# my own comment, kept\nexport SECRET_KEY='abc'  # quoted\nEMPTY=\nCACHE_URL=dummycache://"


# --- .env: the demo's lines, and only those --------------------------------------------------------------------------
def test_the_demo_writes_its_lines_and_takes_them_out_leaving_the_users_file_byte_for_byte(tmp_path):
    env_file = tmp_path / ".env"
    env_file.write_text(USERS_ENV)  # no newline at the end, on purpose
    env_file.chmod(0o640)
    values = {"BLUESKY_SERVICE_URL": "http://127.0.0.1:1", "BLUESKY_PLC_URL": "http://127.0.0.1:2"}
    demo.write_block(env_file, values)
    demo.write_block(env_file, {**values, "BLUESKY_PLC_URL": "http://127.0.0.1:3"})  # a second run replaces it
    text = env_file.read_text()
    assert text.count(demo.BEGIN) == 1 and "http://127.0.0.1:2" not in text
    assert "BLUESKY_PLC_URL=http://127.0.0.1:3\n" in text and text.endswith(USERS_ENV)
    assert demo.user_keys(text).keys() == {"DEBUG", "SECRET_KEY", "EMPTY", "CACHE_URL"}
    assert oct(env_file.stat().st_mode & 0o777) == oct(0o640)

    assert demo.remove_block(env_file) is True
    assert env_file.read_text() == USERS_ENV
    assert demo.remove_block(env_file) is False


def test_a_env_the_demo_made_is_gone_again_and_a_new_one_is_private(tmp_path):
    env_file = tmp_path / ".env"
    demo.write_block(env_file, {"BLUESKY_SERVICE_URL": "http://127.0.0.1:1"})
    assert oct(env_file.stat().st_mode & 0o777) == oct(0o600)
    demo.remove_block(env_file)
    assert not env_file.exists()


@pytest.mark.parametrize(
    "line",
    [
        "BLUESKY_SERVICE_URL=https://bsky.social",
        "export BLUESKY_PLC_URL=https://plc.directory",
        "  INTEGRATIONS_ALLOW_INSECURE_PDS=false",
    ],
)
def test_a_key_the_user_sets_is_never_overridden(tmp_path, line):
    env_file = tmp_path / ".env"
    env_file.write_text(f"DEBUG=true\n{line}\n")
    [problem] = demo.conflicts(env_file, environ={})
    assert line.strip() in problem
    assert demo.conflicts(tmp_path / "none", environ={"BLUESKY_PLC_URL": "x"}) == [
        "the environment sets BLUESKY_PLC_URL"
    ]
    (tmp_path / "ok").write_text("# BLUESKY_SERVICE_URL=https://bsky.social\n")  # a comment sets nothing
    assert demo.conflicts(tmp_path / "ok", environ={}) == []


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def listening(port: int) -> bool:
    with socket.socket() as sock:
        return sock.connect_ex(("127.0.0.1", port)) == 0


class Demo:
    """`make demo` as a process: `python -m tests.support.pds.demo` with a private .env, data folder and ports."""

    def __init__(self, tmp_path: Path, env: dict[str, str] | None = None) -> None:
        self.env_file, self.data_dir = tmp_path / ".env", tmp_path / "var" / "demo"
        self.ports = (free_port(), free_port())
        self.args = [
            sys.executable, "-m", "tests.support.pds.demo", "--env-file", str(self.env_file),
            "--data-dir", str(self.data_dir), "--pds-port", str(self.ports[0]), "--plc-port", str(self.ports[1]),
        ]  # fmt: skip
        self.env = {**{k: v for k, v in os.environ.items() if k not in demo.OWNED}, **(env or {})}
        self.process = subprocess.Popen(
            self.args,
            cwd=ROOT,
            env=self.env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        self.output = ""

    def wait_ready(self, timeout: float = 120) -> str:
        deadline = time.monotonic() + timeout
        while "Ctrl-C here" not in self.output:
            line = self.process.stdout.readline()
            if not line and self.process.poll() is not None:
                pytest.fail(f"make demo exited with {self.process.returncode}:\n{self.output}")
            self.output += line
            assert time.monotonic() < deadline, self.output
        return self.output

    def accounts(self) -> dict[str, str]:
        """handle -> app password, as printed."""
        return dict(re.findall(r"^\s+@(\S+)\s+([a-z2-7]{4}-[a-z2-7]{4}-[a-z2-7]{4}-[a-z2-7]{4})\s", self.output, re.M))

    def env_values(self) -> dict[str, str]:
        lines = self.env_file.read_text().split(demo.BEGIN)[1].split(demo.END)[0].split()
        return dict(line.split("=", 1) for line in lines)

    def wait_stopped(self, timeout: float = 30) -> str:
        rest, _ = self.process.communicate(timeout=timeout)
        self.output += rest
        return self.output


@pytest.fixture
def start_demo(tmp_path):
    """Start `make demo` processes; whatever a failing test leaves running is stopped (SIGTERM: it cleans up)."""
    started: list[Demo] = []

    def start(**kwargs) -> Demo:
        started.append(Demo(tmp_path, **kwargs))
        return started[-1]

    yield start
    for running in started:
        if running.process.poll() is None:
            running.process.terminate()
            try:
                running.process.communicate(timeout=30)
            except subprocess.TimeoutExpired:
                running.process.kill()
                running.process.communicate()


@pytest.mark.pds
@pytest.mark.browser
@pytest.mark.django_db(transaction=True)
def test_make_demo_gives_a_working_setup_and_ctrl_c_leaves_nothing_behind(
    tmp_path,
    page,  # noqa: F811
    live_server,
    settings,
    user,
    django_user_model,
    monkeypatch,
    start_demo,
):
    from playwright.sync_api import expect

    from tests.browser.test_browser import SHOTS, log_in_browser
    from tests.support.dnszone import serving_zone

    (tmp_path / ".env").write_text(USERS_ENV)
    running = start_demo()
    output = running.wait_ready()
    accounts = running.accounts()
    assert set(accounts) == {"alice.test", "bob.test"}, output
    values = running.env_values()
    assert values == {
        "BLUESKY_SERVICE_URL": f"http://127.0.0.1:{running.ports[0]}",
        "BLUESKY_PLC_URL": f"http://127.0.0.1:{running.ports[1]}",
        "INTEGRATIONS_ALLOW_INSECURE_PDS": "true",
    }
    assert (tmp_path / ".env").read_text().endswith(USERS_ENV)

    # `make run` reads .env: the same values, as settings (and names as the system resolves them: *.test is none).
    settings.INTEGRATIONS_BLUESKY_SERVICE_URL = values["BLUESKY_SERVICE_URL"]
    settings.INTEGRATIONS_PLC_URL = values["BLUESKY_PLC_URL"]
    settings.INTEGRATIONS_ALLOW_INSECURE_PDS = True
    real = socket.getaddrinfo

    def getaddrinfo(host, *args, **kwargs):
        if isinstance(host, str) and host.endswith(".test"):
            raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")
        return real(host, *args, **kwargs)

    monkeypatch.setattr(socket, "getaddrinfo", getaddrinfo)
    with serving_zone() as zone:  # a DNS server that knows no name, as public DNS knows no *.test
        settings.INTEGRATIONS_DNS_NAMESERVERS = [zone.address]
        log_in_browser(page, live_server, user)
        page.goto(f"{live_server.url}/app/channels/connect/bluesky")
        page.fill("#id_identifier", "alice.test")
        page.fill("#id_app_password", accounts["alice.test"])
        page.click("button:has-text('Connect')")
        expect(page.locator(".messages")).to_contain_text("Connected @alice.test.")
        row = page.locator(".channel").first
        expect(row).to_contain_text("Alice (demo)")
        expect(row.locator(".badge")).to_have_text("Active")
        page.click("text=Alice (demo)")
        expect(page.locator("#channel-name")).to_have_text("Alice (demo)")
        expect(page.locator(".handle")).to_have_text("@alice.test")  # no "handle not verified"
        from integrations.models import Channel

        assert Channel.objects.get(handle="alice.test").handle_verified is True  # checked, and it holds

        # The admin's Test connection, as README's first steps suggest: the demo account, and one that is nowhere.
        admin = django_user_model.objects.create_superuser("root", "root@example.com", "root-password-123")
        log_in_browser(page, live_server, admin)
        page.goto(f"{live_server.url}/admin/api-integration/bluesky")
        page.fill("input[name=test_account]", "alice.test")
        page.click("input[name=_test]")
        expect(page.locator("#account-verified")).to_have_text("verified")
        expect(page.locator("#account-can-sign-in")).to_have_text("yes")
        page.fill("input[name=test_account]", "nobody.test")
        page.click("input[name=_test]")
        expect(page.locator("#account-problem")).to_contain_text(
            f"the local server {values['BLUESKY_SERVICE_URL']} does not host it"
        )
        expect(page.locator("#account-problem")).not_to_contain_text("temporary")  # an answer, not a fault
        expect(page.locator("#account-can-sign-in")).to_have_text("not known")
        page.screenshot(path=SHOTS / "demo-admin-test-connection.png", full_page=True)
        page.screenshot(path=SHOTS / "demo-channel.png", full_page=True)

    running.process.send_signal(signal.SIGINT)  # Ctrl-C
    output = running.wait_stopped()
    assert running.process.returncode == 0, output
    assert "its lines are out of" in output
    assert (tmp_path / ".env").read_text() == USERS_ENV
    assert not any(listening(port) for port in running.ports)
    assert not (running.data_dir / "pds").exists() and not (running.data_dir / "demo.pid").exists()


@pytest.mark.pds
def test_make_demo_stop_stops_it_from_another_terminal_and_a_users_key_stops_it_starting(tmp_path, start_demo):
    running = start_demo()
    running.wait_ready()
    again = subprocess.run(running.args, cwd=ROOT, env=running.env, capture_output=True, text=True, timeout=60)
    assert again.returncode == 1 and "already running" in again.stderr
    stopped = subprocess.run(
        [*running.args, "--stop"], cwd=ROOT, env=running.env, capture_output=True, text=True, timeout=60
    )
    assert stopped.returncode == 0, stopped.stderr
    running.wait_stopped()
    assert not (tmp_path / ".env").exists()  # the demo made it; nothing of it is left
    assert not any(listening(port) for port in running.ports)

    (tmp_path / ".env").write_text("BLUESKY_SERVICE_URL=https://bsky.social\n")
    refused = subprocess.run(running.args, cwd=ROOT, env=running.env, capture_output=True, text=True, timeout=60)
    assert refused.returncode == 2
    assert "BLUESKY_SERVICE_URL" in refused.stderr and "changes nothing" in refused.stderr
    assert (tmp_path / ".env").read_text() == "BLUESKY_SERVICE_URL=https://bsky.social\n"
    assert not any(listening(port) for port in running.ports)
