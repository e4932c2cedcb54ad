"""axe-core for the browser tests' accessibility audit: a pinned npm package, installed outside the clone.

Like the local PDS (tests/support/pds/server.py), the install is cached under ~/.cache/skyport/, keyed by the lock
file, so fresh clones (CI) reuse it and a changed lock file gets a fresh install. Pages get the script from disk through
Playwright, never from a CDN. `make browser` installs it; the browser tests install it on first use too.
"""

import hashlib
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
INSTALL_INPUTS = ("package.json", "package-lock.json")


def install_dir() -> Path:
    """Where axe-core is installed; SKYPORT_AXE_DIR overrides."""
    if os.environ.get("SKYPORT_AXE_DIR"):
        return Path(os.environ["SKYPORT_AXE_DIR"])
    digest = hashlib.sha256(b"".join((HERE / name).read_bytes() for name in INSTALL_INPUTS)).hexdigest()[:12]
    cache = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    return cache / "skyport" / f"axe-{digest}"


def script_path() -> Path:
    return install_dir() / "node_modules" / "axe-core" / "axe.min.js"


def ensure_installed() -> Path:
    """Install axe-core (idempotent, cached) with `npm ci` from the lock file; return the path of axe.min.js.

    The install happens in a temporary sibling directory that is renamed into place, so two runs starting at
    once never see half an install."""
    target = install_dir()
    if script_path().is_file():
        return script_path()
    npm = shutil.which("npm")
    if npm is None:
        raise RuntimeError("npm is needed to install axe-core for the browser tests (Debian: apt-get install npm)")
    print(f"axe-core: installing into {target}", file=sys.stderr)
    target.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f"{target.name}.", dir=target.parent))
    staging.chmod(0o755)
    try:
        for name in INSTALL_INPUTS:
            shutil.copy(HERE / name, staging / name)
        result = subprocess.run(
            [npm, "ci", "--ignore-scripts", "--no-audit", "--no-fund", "--loglevel=error"],
            cwd=staging,
            capture_output=True,
            text=True,
            check=False,
        )
        if result.returncode != 0:
            raise RuntimeError(f"Installing axe-core failed:\n{result.stderr[-4000:]}")
        try:
            staging.rename(target)
        except OSError:
            if not script_path().is_file():  # another run finished first: use its install
                raise
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return script_path()
