"""The shape of the reusable app: a provider-neutral core that Bluesky plugs into."""

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parent.parent / "integrations"
GENERIC = [
    "conf.py",
    "exceptions.py",
    "options.py",
    "security/crypto.py",
    "security/fields.py",
    "security/throttling.py",
    "adapter.py",
    "models/__init__.py",
    "models/channels.py",
    "models/counters.py",
    "models/options.py",
    "models/posts.py",
    "signals.py",
    "notifications.py",
    "security/outbound.py",
    "security/addresses.py",
    "security/bodies.py",
    "security/deadlines.py",
    "reporting.py",
    "http.py",
]


def imported_modules(path: Path) -> set[str]:
    tree = ast.parse(path.read_text())
    names = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module:
            names.add(node.module)
            names |= {f"{node.module}.{alias.name}" for alias in node.names}
    return names


@pytest.mark.parametrize("module", GENERIC)
def test_generic_modules_do_not_import_the_bluesky_provider(module):
    assert not {name for name in imported_modules(PACKAGE / module) if name.startswith("integrations.bluesky")}


def test_options_does_not_import_the_models():
    """models imports options (to invalidate its cache); the reverse would be a loop."""
    assert "integrations.models" not in imported_modules(PACKAGE / "options.py")


def test_the_provider_registers_its_options_and_words():
    from integrations import adapter, options

    assert {"bluesky_service-url", "bluesky_integration_status"} <= set(options.REGISTRY)
    assert {"invalid_credentials", "main_password_refused", "session_expired"} <= adapter.registered_codes()
