"""Log lines that cannot be forged or leak: every value the app logs has its control characters escaped, and the
project's handlers mask secrets in whatever they write.

- `escape_controls` writes control characters as escapes (`\\x1b`, `\\x85`, `\\n`, `\\u202e`...): C0 and C1
  controls (ANSI colour codes, CR/LF, U+0085 NEXT LINE), DEL, the line and paragraph separators and the bidi
  overrides. A user's handle, link or language tag can then neither start a fake log line nor repaint a terminal.
- `install()` (called from `IntegrationsConfig.ready`) makes every record of the `integrations` loggers escape its
  arguments (and its message) when it is created, whatever handler or format the project uses, so no call site
  can forget it. Records of other libraries are left alone (Django escapes its own request paths).
- `SecretsFormatter` is a `logging.Formatter` for the project's handlers: the finished line, traceback included,
  has every JWT-shaped value and app password masked (`integrations.reporting.redact`) and the controls of its
  traceback escaped (newlines excepted: a traceback has several lines).
"""

import logging
import re
from typing import Any

from integrations.reporting import redact

# C0 controls (tab and newline included), DEL, C1 controls (U+0085 among them), the bidi marks and overrides, the
# line and paragraph separators and the byte-order mark: nothing a log line needs, all of it able to fake one.
_CONTROLS = re.compile("[\x00-\x1f\x7f-\x9f\u061c\u200e\u200f\u2028-\u202e\u2066-\u2069\ufeff]")
_CONTROLS_BUT_NEWLINE = re.compile("[\x00-\x09\x0b-\x1f\x7f-\x9f\u061c\u200e\u200f\u2028-\u202e\u2066-\u2069\ufeff]")
_NAMED = {"\n": "\\n", "\r": "\\r", "\t": "\\t"}
_PLAIN = (int, float, bool, type(None))


def _escape(match: re.Match[str]) -> str:
    char = match.group()
    if char in _NAMED:
        return _NAMED[char]
    code = ord(char)
    return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}"


def escape_controls(text: str) -> str:
    """`text` with every control character written as an escape (see the module's docstring)."""
    return _CONTROLS.sub(_escape, text)


class _Escaped:
    """A logged object whose `str()` and `repr()` come out escaped (formatting calls them later, if at all)."""

    __slots__ = ("value",)

    def __init__(self, value: object) -> None:
        self.value = value

    def __str__(self) -> str:
        return escape_controls(str(self.value))

    def __repr__(self) -> str:
        return escape_controls(repr(self.value))


def _escaped_arg(value: Any) -> Any:
    if isinstance(value, str):
        return escape_controls(value)
    if isinstance(value, _PLAIN):
        return value
    return _Escaped(value)


def escape_record(record: logging.LogRecord) -> None:
    """Escape a record's message and arguments in place."""
    if isinstance(record.msg, str):
        record.msg = escape_controls(record.msg)
    if isinstance(record.args, dict):
        record.args = {key: _escaped_arg(value) for key, value in record.args.items()}
    elif record.args:
        record.args = tuple(_escaped_arg(value) for value in record.args)


def _ours(name: str) -> bool:
    return name == "integrations" or name.startswith("integrations.")


def install() -> None:
    """Escape every record of the `integrations` loggers as it is made (once per process; chains to the factory
    already in place, so another library's factory keeps working)."""
    current = logging.getLogRecordFactory()
    if getattr(current, "escapes_integrations", False):
        return

    def factory(*args: Any, **kwargs: Any) -> logging.LogRecord:
        record = current(*args, **kwargs)
        if _ours(record.name):
            escape_record(record)
        return record

    factory.escapes_integrations = True  # type: ignore[attr-defined]
    logging.setLogRecordFactory(factory)


class SecretsFormatter(logging.Formatter):
    """A formatter whose lines never show a session token or an app password, and whose tracebacks cannot fake a
    line with a carriage return or a terminal escape."""

    def formatException(self, ei: Any) -> str:
        return _CONTROLS_BUT_NEWLINE.sub(_escape, super().formatException(ei))

    def format(self, record: logging.LogRecord) -> str:
        return redact(super().format(record))
