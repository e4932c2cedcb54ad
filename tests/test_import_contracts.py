"""The import rules in pyproject.toml (`[tool.importlinter]`) hold, so `make test` catches a broken one as `make lint`
does; and the contracts that name modules one by one leave none out, so a new module is placed on purpose."""

import subprocess
import sys
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PACKAGE = ROOT / "integrations"
CONTRACTS = {
    c["id"]: c for c in tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["importlinter"]["contracts"]
}
LINT_IMPORTS = (
    "import sys; from importlinter.cli import lint_imports; sys.exit(lint_imports(no_cache=True, no_logo=True))"
)

# Above the provider-neutral core: the provider, what serves it (pages, API, admin, URLs, commands, tasks) and the
# app config that wires the provider in. Everything else at the top of the package is core.
ABOVE_THE_CORE = {"admin", "admin_urls", "api", "apps", "bluesky", "management", "tasks", "urls", "web"}


def children(package: Path) -> set[str]:
    """The modules and subpackages directly in `package`, by name."""
    modules = {path.stem for path in package.glob("*.py") if path.stem != "__init__"}
    return modules | {path.parent.name for path in package.glob("*/__init__.py")}


def test_the_import_contracts_hold():
    """The same check as `make lint`'s `lint-imports` (in a process of its own: it reads pyproject.toml there)."""
    result = subprocess.run([sys.executable, "-c", LINT_IMPORTS], cwd=ROOT, capture_output=True, text=True, check=False)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "0 broken" in result.stdout


def test_every_core_module_is_held_below_the_provider():
    core = {name.removeprefix("integrations.") for name in CONTRACTS["core-below-provider"]["source_modules"]}
    assert core == children(PACKAGE) - ABOVE_THE_CORE


def test_the_pages_and_the_api_are_kept_from_every_subpackage_of_the_provider():
    forbidden = {name.removeprefix("integrations.bluesky.") for name in CONTRACTS["provider-face"]["forbidden_modules"]}
    assert forbidden == {path.parent.name for path in (PACKAGE / "bluesky").glob("*/__init__.py")}
