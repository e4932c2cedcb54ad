"""The app's settings object: defaults, overrides, type checks, and the README's table of them."""

import re
from pathlib import Path

from integrations.checks import check_setting_types
from integrations.conf import SETTINGS, app_settings

README = Path(__file__).resolve().parent.parent / "README.md"


def settings_table() -> str:
    """The README's table of settings, as conf.py defines them."""
    rows = ["| setting | default | type | what it does |", "|---|---|---|---|"]
    for setting in SETTINGS:
        types = " or ".join("None" if t is type(None) else t.__name__ for t in setting.types)
        rows.append(f"| `{setting.full_name}` | `{setting.default!r}` | {types} | {setting.help} |")
    return "\n".join(rows)


def test_the_readme_lists_every_setting_as_conf_defines_it():
    assert settings_table() in README.read_text(), "Paste this table into the README:\n" + settings_table()


def test_defaults_and_overrides(settings):
    assert app_settings.REFRESH_MARGIN == 300
    settings.INTEGRATIONS_REFRESH_MARGIN = 60
    assert app_settings.REFRESH_MARGIN == 60


def test_an_unknown_name_is_an_error():
    try:
        app_settings.NO_SUCH_THING
    except AttributeError as exc:
        assert "INTEGRATIONS_NO_SUCH_THING" in str(exc)
    else:
        raise AssertionError("an unknown setting must not read as None")


def test_a_setting_of_the_wrong_type_is_reported(settings):
    assert check_setting_types() == []
    settings.INTEGRATIONS_HTTP_TIMEOUT = "10"
    settings.INTEGRATIONS_NOTIFY_OWNERS = 1
    settings.INTEGRATIONS_KEEPALIVE_INTERVAL = True  # a bool is not a number of seconds
    errors = check_setting_types()
    assert [e.id for e in errors] == ["integrations.E010"] * 3
    text = " ".join(e.msg for e in errors)
    assert "INTEGRATIONS_HTTP_TIMEOUT is str '10', but must be int or float." in text
    assert "INTEGRATIONS_NOTIFY_OWNERS" in text and "INTEGRATIONS_KEEPALIVE_INTERVAL" in text


def test_settings_are_read_in_conf_only():
    """Every other module reads app_settings; none reads Django's settings for an INTEGRATIONS_* value."""
    package = Path(__file__).resolve().parent.parent / "integrations"
    offenders = [
        str(path.relative_to(package))
        for path in package.rglob("*.py")
        if path.name != "conf.py"
        and (re.search(r"getattr\(settings", path.read_text()) or "settings.INTEGRATIONS_" in path.read_text())
    ]
    assert offenders == []
