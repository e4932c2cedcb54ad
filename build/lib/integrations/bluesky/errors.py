"""Our own exceptions for everything that can go wrong talking to a PDS.

`client.py` turns the SDK's and httpx's failures into these; the service layer adds its own (disabled, throttled);
`integrations.error_messages` turns a code into the words a user reads and the HTTP status the API answers.
Nothing here ever carries a token or a password.
"""


class BlueskyError(Exception):
    """Base class. `code` is stable (API error code, message table key); `temporary` faults keep sessions."""

    code = "bluesky_error"
    temporary = False
    url: str | None = None  # the base URL of the server the failed call went to (set by the client)

    def __init__(
        self,
        detail: str = "",
        *,
        status_code: int | None = None,
        upstream_error: str | None = None,
        retry_after: int | None = None,
    ) -> None:
        super().__init__(detail or self.code)
        self.detail = detail
        self.status_code = status_code
        self.upstream_error = upstream_error
        self.retry_after = retry_after

    def __repr__(self) -> str:
        return f"{type(self).__name__}(code={self.code!r}, status={self.status_code}, upstream={self.upstream_error!r})"


# --- The user's credentials or account -------------------------------------------------------------------------
class InvalidCredentials(BlueskyError):
    code = "invalid_credentials"


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


# --- Our own refusals ----------------------------------------------------------------------------------------------
class IntegrationDisabled(BlueskyError):
    code = "integration_disabled"


class ConnectThrottled(BlueskyError):
    code = "throttled"
    temporary = True


class ServiceMisconfigured(BlueskyError):
    code = "service_misconfigured"


class NoSession(BlueskyError):
    """The channel holds no session (disconnected or needs reconnection)."""

    code = "no_session"


class AddressRefused(BlueskyError):
    """The server's host is not a public address (or its port is refused): the call was not made. The same error
    whatever listens there, so it tells nothing about a private network."""

    code = "address_refused"


class Redirected(BlueskyError):
    """The server answered an XRPC call with a redirect, which is never followed."""

    code = "pds_redirect"


class SessionUnreadable(BlueskyError):
    """The stored session cannot be decrypted with any configured key (its key was dropped): reconnect."""

    code = "session_unreadable"


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
