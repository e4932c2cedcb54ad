"""Our own exceptions for everything that can go wrong talking to a PDS.

`client.py` turns the SDK's and httpx's failures into these; the generic refusals (disabled, throttled, no session)
are `integrations.exceptions`; `integrations.adapter` turns a code into the words a user reads and the HTTP status
the API answers.
Nothing here ever carries a token or a password.
"""

from integrations.exceptions import (  # noqa: F401  (the generic refusals, re-exported for the provider's callers)
    ChannelConnected,
    ConnectThrottled,
    IntegrationDisabled,
    IntegrationError,
    NoSession,
    ServiceMisconfigured,
    SessionUnreadable,
)


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
