"""The development setup as the README runs it: `make run`, `make worker` and `make serve` on one checkout share its
encryption key (so `make serve` reads the sessions `make run` stored), and the worker prints each check once."""

import os
import shutil
import stat
import subprocess
import sys
import threading
from pathlib import Path

from cryptography.fernet import Fernet

from config.localkeys import checkout_key, development_keys
from integrations.security.crypto import development_key

ROOT = Path(__file__).resolve().parents[2]


def test_the_checkout_key_is_made_once_private_and_shared_by_processes_starting_together(tmp_path):
    path = tmp_path / "var" / "encryption_key"
    found: list[str] = []
    threads = [threading.Thread(target=lambda: found.append(checkout_key(path))) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(set(found)) == 1 and Fernet(found[0].encode())  # one key, a Fernet key
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert checkout_key(path) == found[0]
    assert sorted(p.name for p in path.parent.iterdir()) == ["encryption_key"]  # no drafts left behind


def test_sessions_stored_under_the_old_development_key_are_still_read(tmp_path):
    old = Fernet(development_key("django-insecure-dev-only-change-me").encode()).encrypt(b"old session")
    keys = development_keys(tmp_path / "encryption_key", "django-insecure-dev-only-change-me")
    assert keys[0] == (tmp_path / "encryption_key").read_text().strip()  # the checkout's key encrypts
    from cryptography.fernet import MultiFernet

    assert MultiFernet([Fernet(k.encode()) for k in keys]).decrypt(old) == b"old session"


def project_copy(tmp_path: Path) -> Path:
    """The demo project (config/ and manage.py) in a fresh folder, as a new clone has it; the app from here."""
    copy = tmp_path / "project"
    shutil.copytree(ROOT / "config", copy / "config", ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy(ROOT / "manage.py", copy / "manage.py")
    return copy


def manage(project: Path, env: dict[str, str], *args: str) -> subprocess.CompletedProcess:
    clean = {k: v for k, v in os.environ.items() if not k.startswith(("INTEGRATIONS_", "DJANGO_", "TEST_", "SECRET"))}
    clean.update({"PYTHONPATH": str(ROOT), "DATABASE_URL": f"sqlite:///{project / 'db.sqlite3'}", **env})
    clean["CACHE_URL"] = f"filecache://{project / 'var' / 'cache'}"
    return subprocess.run(
        [sys.executable, "manage.py", *args], cwd=project, env=clean, capture_output=True, text=True, timeout=120
    )


def test_make_serve_reads_the_sessions_make_run_stored_and_development_prints_no_w001(tmp_path):
    project = project_copy(tmp_path)
    run = {"DEBUG": "true"}  # what `make run` and `make worker` set
    checked = manage(project, run, "check")
    assert checked.returncode == 0, checked.stderr
    assert "integrations.W001" not in checked.stdout + checked.stderr  # the development setup is fine
    stored = manage(
        project, run, "shell", "-c", "from integrations.security import crypto; print(crypto.encrypt('token'))"
    )
    assert stored.returncode == 0, stored.stderr
    key_file = project / "var" / "encryption_key"
    assert stat.S_IMODE(key_file.stat().st_mode) == 0o600

    # `make serve`: DEBUG off, its own SECRET_KEY, the checkout's key exported from var/ (Makefile LOCAL_SECRETS).
    assert "var/encryption_key" in (ROOT / "Makefile").read_text()
    serve = {"DEBUG": "false", "SECRET_KEY": "x" * 50, "INTEGRATIONS_ENCRYPTION_KEYS": key_file.read_text().strip()}
    read = manage(
        project,
        serve,
        "shell",
        "-c",
        f"from integrations.security import crypto; print(crypto.decrypt({stored.stdout.split()[-1]!r}))",
    )
    assert read.returncode == 0, read.stderr
    assert read.stdout.split()[-1] == "token"


def test_make_worker_runs_the_system_checks_once():
    dry = subprocess.run(
        ["make", "-n", "worker"], cwd=ROOT, capture_output=True, text=True, env={**os.environ, "DEBUG": "true"}
    )
    commands = [part for part in dry.stdout.replace("\\\n", " ").split("&&") if "manage.py" in part]
    assert len(commands) == 4, dry.stdout
    assert sum("--skip-checks" not in command for command in commands) == 1, commands
