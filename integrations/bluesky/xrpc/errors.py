"""Our own exceptions for everything that can go wrong talking to a PDS, and the one translation of the SDK's and
httpx's failures into them (`translate`, from tables read top to bottom).

The generic refusals (disabled, throttled, no session)
are `integrations.exceptions`; `integrations.adapter` turns a code into the words a user reads and the HTTP status
the API answers.
Nothing here ever carries a token or a password.
"""

import math
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import httpx
from atproto_client import exceptions as sdk_errors
from atproto_client.models.common import XrpcError

from integrations.exceptions import (  # noqa: F401  (the generic refusals, re-exported for the provider's callers)
    ChannelConnected,
    ConnectThrottled,
    IntegrationDisabled,
    IntegrationError,
    NoSession,
    ServiceMisconfigured,
    SessionUnreadable,
)
from integrations.security import outbound
from integrations.text import clean_text

MAX_RETRY_AFTER = 24 * 60 * 60
MAX_UPSTREAM_CODE = 100  # an XRPC error name ("InvalidRequest"); anything longer is not one
MAX_UPSTREAM_MESSAGE = 1000


class BlueskyError(IntegrationError):
    """Base class of what can go wrong talking to a PDS."""

    code = "bluesky_error"


# --- The user's credentials or account -------------------------------------------------------------------------
class InvalidCredentials(BlueskyError):
    code = "invalid_credentials"


class HostedElsewhere(BlueskyError):
    """The Service URL refused the credentials of an account whose DID document names another PDS."""

    code = "hosted_elsewhere"

    def __init__(self, handle: str = "", pds: str = "", service_url: str | None = None) -> None:
        super().__init__(f"@{handle} is hosted on {pds}, not on {service_url}." if handle else "")
        self.handle, self.pds, self.url = handle, pds, service_url

    def placeholders(self) -> dict[str, str]:
        return {"handle": self.handle, "pds": self.pds}


class AccountMoved(BlueskyError):
    """The account's DID document names a PDS that this channel's session does not sign in through: the account
    moved (migrated) and needs signing in where it lives now."""

    code = "account_moved"

    def __init__(self, handle: str = "", pds: str = "") -> None:
        super().__init__(f"@{handle} moved to {pds}." if handle else "")
        self.handle, self.pds = handle, pds

    def placeholders(self) -> dict[str, str]:
        return {"handle": self.handle, "pds": self.pds}


class MainPasswordRefused(BlueskyError):
    code = "main_password_refused"


class AuthFactorRequired(BlueskyError):
    code = "auth_factor_required"


class AccountDeactivated(BlueskyError):
    code = "account_deactivated"


class AccountSuspended(BlueskyError):
    code = "account_suspended"


class SessionRejected(BlueskyError):
    """The PDS refused a token (401, or 400 ExpiredToken/InvalidToken)."""

    code = "session_rejected"


class SessionExpired(BlueskyError):
    """The refresh token is dead: only a reconnection with a new app password helps."""

    code = "session_expired"


# --- Calls we refuse to make or to follow ----------------------------------------------------------------------
class AddressRefused(BlueskyError):
    """The server's host is not a public address (or its port is refused): the call was not made. The same error
    whatever listens there, so it tells nothing about a private network."""

    code = "address_refused"


class Redirected(BlueskyError):
    """The server answered an XRPC call with a redirect, which is never followed."""

    code = "pds_redirect"


# --- Temporary faults: retry later, never drop a session ---------------------------------------------------------
class TemporaryError(BlueskyError):
    temporary = True
    code = "temporary_error"


class RateLimited(TemporaryError):
    code = "rate_limited"


class PdsUnreachable(TemporaryError):
    code = "pds_unreachable"


class PdsTimeout(TemporaryError):
    code = "pds_timeout"


class PdsServerError(TemporaryError):
    code = "pds_error"


class InvalidResponse(TemporaryError):
    """The server answered, but not with the JSON a PDS sends (an HTML page, garbage, a wrong shape)."""

    code = "invalid_response"


class AccountMismatch(BlueskyError):
    """The PDS answered a channel's refresh with a session for another account: refused, nothing stored."""

    code = "account_mismatch"


class RequestRejected(BlueskyError):
    """Any other 4xx the PDS gave: not temporary, not about the session."""

    code = "request_rejected"


# --- Publishing -------------------------------------------------------------------------------------------------------
class InvalidReference(BlueskyError):
    """A post to reply to or quote that is not a Bluesky post address, or that does not exist."""

    code = "invalid_reference"


class RecordConflict(BlueskyError):
    """A planned record key already holds a different record: publishing it would not be the post we planned."""

    code = "record_conflict"


# --- Translation -------------------------------------------------------------------------------------------------
type _Kinds = type[BaseException] | tuple[type[BaseException], ...]


def translate(exc: Exception) -> BlueskyError:
    """Map an SDK/httpx failure to our exception (the one place that reads upstream error codes)."""
    if isinstance(exc, IntegrationError):
        return exc
    refused = _refusal(exc)
    if refused is not None:
        # The same words whatever listens at that address: the answer must not tell open ports from closed ones.
        return AddressRefused(f"{refused.host} is not a public address.")
    for kind, make in _BY_EXCEPTION:
        if isinstance(exc, kind):
            return make(exc)
    raise exc


def _from_response(exc: sdk_errors.RequestErrorBase) -> BlueskyError:
    """An SDK failure that may carry the server's answer: by its status first, then by its XRPC error name."""
    response = exc.response
    if response is None:
        return PdsUnreachable("The PDS could not be reached.")
    status = response.status_code
    content = response.content
    # Upstream words end up stored (a post's error, a channel's event): nothing a database refuses.
    xrpc = content if isinstance(content, XrpcError) else None
    code = (clean_text(xrpc.error)[:MAX_UPSTREAM_CODE] or None) if xrpc else None
    message = clean_text(xrpc.message)[:MAX_UPSTREAM_MESSAGE] if xrpc else ""
    kwargs = {"status_code": status, "upstream_error": code, "retry_after": _retry_after(response)}
    for applies, kind, words in _BY_STATUS:
        if applies(status, code):
            return kind(words.format(status=status), **kwargs)
    if code in _VERDICTS:
        return _VERDICTS[code](message, **kwargs)
    if status == 401:  # any other name with a 401 is the server refusing the token
        return SessionRejected(message, **kwargs)
    if code in _OTHER_CODES:
        return _OTHER_CODES[code](message, **kwargs)
    kind = PdsServerError if status >= 500 else RequestRejected
    return kind(message or f"The PDS answered {status}.", **kwargs)


# Decided by the status alone, in this order: (applies(status, XRPC error name or None), error, its words).
_BY_STATUS: tuple[tuple[Callable[[int, str | None], bool], type[BlueskyError], str], ...] = (
    (lambda status, code: status == 429, RateLimited, "The PDS rate limit was hit."),
    # Never followed: a redirect could lead an authenticated call (and its token) anywhere.
    (lambda status, code: 300 <= status < 400, Redirected, "The PDS answered {status} with a redirect."),
    # No XRPC error body (an HTML page from a proxy, a bare 401/5xx): not a PDS verdict on the session, so it must
    # never be taken for "token revoked".
    (lambda status, code: code is None and status >= 500, PdsServerError, "The PDS answered {status}."),
    (
        lambda status, code: code is None,
        InvalidResponse,
        "The PDS answered {status} with a body that is not XRPC JSON.",
    ),
)

# The server's verdict on the account or the session, whatever the status that came with it.
_VERDICTS: dict[str, type[BlueskyError]] = {
    "AuthFactorTokenRequired": AuthFactorRequired,
    "AccountTakedown": AccountSuspended,
    "AccountSuspended": AccountSuspended,
    "AccountDeactivated": AccountDeactivated,
    "ExpiredToken": SessionRejected,
    "InvalidToken": SessionRejected,
    "AuthenticationRequired": InvalidCredentials,
}

# Names read only when the status is not 401.
_OTHER_CODES: dict[str, type[BlueskyError]] = {
    "RateLimitExceeded": RateLimited,
}

# What failed, first match wins (after our own errors and the guard's refusals).
_BY_EXCEPTION: tuple[tuple[_Kinds, Callable[[Any], BlueskyError]], ...] = (
    (sdk_errors.InvokeTimeoutError, lambda exc: PdsTimeout("The PDS did not answer in time.")),
    (sdk_errors.RequestErrorBase, _from_response),
    (
        (sdk_errors.ModelError, ValueError),
        lambda exc: InvalidResponse("The PDS answered with JSON of an unexpected shape."),
    ),
    (  # a body over the cap, or in a coding we did not ask for
        httpx.DecodingError,
        lambda exc: InvalidResponse(f"The PDS answered with a body that cannot be read ({clean_text(str(exc))})."),
    ),
    (httpx.HTTPError, lambda exc: PdsUnreachable("The PDS could not be reached.")),
)


def _retry_after(response: Any) -> int | None:
    """Seconds to wait, from `Retry-After` (seconds or an HTTP date) or `RateLimit-Reset` (epoch seconds).

    Bounded to [1 s, MAX_RETRY_AFTER]: a server asking for a pause of years gets a day, then is asked again.
    """
    # The SDK's 429 error already parses both headers; reuse it for any status (a 503 may carry Retry-After).
    parsed = sdk_errors.RateLimitExceededError(response)
    seconds: float | None = None
    try:
        if parsed.retry_after is not None:
            seconds = parsed.retry_after
        elif parsed.reset_at is not None:
            seconds = (parsed.reset_at - datetime.now(UTC)).total_seconds()
    except (OverflowError, OSError, ValueError):  # a date or epoch beyond what datetime holds
        seconds = MAX_RETRY_AFTER
    if seconds is None or not math.isfinite(seconds):
        return None if seconds is None else MAX_RETRY_AFTER
    return max(1, min(MAX_RETRY_AFTER, int(seconds + 0.999)))


def _refusal(exc: BaseException) -> outbound.OutboundRefused | None:
    """The guard's refusal behind an exception, however many layers (httpx, httpcore, SDK) wrapped it."""
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        if isinstance(current, outbound.OutboundRefused):
            return current
        seen.add(id(current))
        current = current.__cause__ or current.__context__
    return None
