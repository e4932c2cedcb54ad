"""Error reports that never show a secret: session tokens and app passwords stay out of the 500 page (DEBUG
included), the report mailed to admins and its text form, whichever frame holds them.

Two layers, both named in the project's settings:
- `SecretsReporterFilter` (`DEFAULT_EXCEPTION_REPORTER_FILTER`) is active in DEBUG too (Django's own filter is
  not, so a DEBUG 500 page shows POSTed app passwords), and masks every frame variable whose text holds a
  JWT-shaped value or an app password, not only the variables a `sensitive_variables` decorator names.
- `SecretsExceptionReporter` (`DEFAULT_EXCEPTION_REPORTER`) masks the same shapes in the finished report, so an
  exception message or a source line cannot carry one either.
Tokens the app holds are also `crypto.Secret` values whose `repr` is masked, so the frames of code we do not
control (the ORM saving a channel) show stars even where these classes are not configured.
"""

import re
from typing import Any

from django.http import HttpRequest
from django.views.debug import ExceptionReporter, SafeExceptionReporterFilter

CLEANSED = "********************"
# A JWT: base64url header starting with '{"' (eyJ), payload and (possibly empty) signature.
_JWT = r"eyJ[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]*"
# A Bluesky app password as its server makes it: four groups of four lowercase letters or digits.
_APP_PASSWORD = r"(?<![A-Za-z0-9-])[a-z0-9]{4}-[a-z0-9]{4}-[a-z0-9]{4}-[a-z0-9]{4}(?![A-Za-z0-9-])"
SECRET_PATTERN = re.compile(f"{_JWT}|{_APP_PASSWORD}")


def redact(text: str) -> str:
    """`text` with every JWT-shaped value and app password replaced by stars."""
    return SECRET_PATTERN.sub(CLEANSED, text)


def _holds_secret(value: Any) -> bool:
    try:
        text = value if isinstance(value, str) else repr(value)
    except Exception:  # a broken repr is the reporter's business, not ours
        return False
    return bool(SECRET_PATTERN.search(text))


class SecretsReporterFilter(SafeExceptionReporterFilter):
    """Django's filter, active in DEBUG too, that also masks any variable or POST value holding a secret."""

    def is_active(self, request: HttpRequest | None) -> bool:
        return True

    def get_post_parameters(self, request: HttpRequest | None) -> Any:
        parameters = super().get_post_parameters(request)
        if not parameters:
            return parameters
        cleansed = parameters.copy()
        for key, values in parameters.lists():
            if any(_holds_secret(value) for value in values):
                cleansed[key] = CLEANSED
        return cleansed

    def get_traceback_frame_variables(self, request: HttpRequest | None, tb_frame: Any) -> Any:
        variables = super().get_traceback_frame_variables(request, tb_frame)
        return [(name, redact(repr(value)) if _holds_secret(value) else value) for name, value in variables]


class SecretsExceptionReporter(ExceptionReporter):
    """Django's reporter whose finished HTML and text reports have every secret-shaped value masked."""

    def get_traceback_html(self) -> str:
        return redact(super().get_traceback_html())

    def get_traceback_text(self) -> str:
        return redact(super().get_traceback_text())
