"""The only module that talks XRPC to a PDS (through the `atproto` SDK's raw client, with timeouts).

Every failure leaves here as one of `integrations.bluesky.errors`, carrying the base URL it called. Requests go
through `integrations.outbound` (public addresses only, pinned) and never follow a redirect. Tokens are passed per
call in the Authorization header and never kept on a shared object, so no caller can reuse a stale token by accident.
"""

import base64
import json
import logging
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, TypeVar

import httpx
from atproto_client import exceptions as sdk_errors
from atproto_client import models
from atproto_client.client.raw import ClientRaw
from atproto_client.models.common import XrpcError
from atproto_client.request import Request, RequestBase
from django.conf import settings
from django.core.exceptions import ValidationError
from django.views.decorators.debug import sensitive_variables

from integrations import outbound
from integrations.bluesky import errors
from integrations.validators import normalize_service_url

logger = logging.getLogger(__name__)

USER_AGENT = "Skyport (Django; atproto SDK)"
APP_PASSWORD_SCOPES = frozenset({"com.atproto.appPass", "com.atproto.appPassPrivileged"})
T = TypeVar("T")


@dataclass(frozen=True)
class ServerDescription:
    did: str
    available_user_domains: list[str]
    invite_code_required: bool


@dataclass(frozen=True)
class Session:
    """What createSession/refreshSession return. `repr` hides the tokens."""

    did: str
    handle: str
    access_jwt: str
    refresh_jwt: str
    active: bool = True
    account_status: str | None = None
    pds_endpoint: str | None = None
    pds_endpoint_refused: str = ""  # why the DID document's PDS endpoint is not used ("" when it is, or has none)

    def __repr__(self) -> str:
        return f"Session(did={self.did!r}, handle={self.handle!r}, active={self.active})"

    @property
    def access_claims(self) -> dict[str, Any]:
        return jwt_claims(self.access_jwt)

    @property
    def refresh_claims(self) -> dict[str, Any]:
        return jwt_claims(self.refresh_jwt)


@dataclass(frozen=True)
class Profile:
    display_name: str
    description: str
    avatar_url: str


def jwt_claims(token: str) -> dict[str, Any]:
    """The (unverified) claims of a JWT: we only read `exp` and `scope` of tokens the PDS just gave us."""
    try:
        payload = token.split(".")[1]
        payload += "=" * (-len(payload) % 4)
        claims = json.loads(base64.urlsafe_b64decode(payload))
    except (IndexError, ValueError) as exc:
        raise errors.InvalidResponse("The PDS returned a session token that is not a JWT.") from exc
    if not isinstance(claims, dict):
        raise errors.InvalidResponse("The PDS returned a session token with unreadable claims.")
    return claims


def claim_time(claims: dict[str, Any], name: str = "exp") -> datetime | None:
    """A JWT time claim as an aware datetime (None when absent)."""
    value = claims.get(name)
    if not isinstance(value, int | float):
        return None
    return datetime.fromtimestamp(value, tz=UTC)


def _pds_endpoint(did_doc: Any) -> str | None:
    """The `#atproto_pds` service endpoint of a DID document, when it is a valid URL (see `_usable_pds_endpoint`
    for whether calls may go there)."""
    if hasattr(did_doc, "to_dict"):  # the SDK hands unknown objects over as a DotDict
        did_doc = did_doc.to_dict()
    if not isinstance(did_doc, dict):
        return None
    for service in did_doc.get("service") or []:
        if isinstance(service, dict) and str(service.get("id", "")).endswith("#atproto_pds"):
            try:
                return normalize_service_url(str(service.get("serviceEndpoint", "")), allow_insecure=True)
            except ValidationError:
                return None
    return None


def _usable_pds_endpoint(did_doc: Any) -> tuple[str | None, str]:
    """The DID document's PDS endpoint when calls may go there, else None and why not ("" when it has none).

    Anyone controls their own DID document, so while insecure hosts are not allowed the endpoint must be https and
    resolve to public addresses only before it is stored and called with the account's tokens. Resolved once per
    createSession/refreshSession, which is a network round trip anyway.
    """
    endpoint = _pds_endpoint(did_doc)
    if endpoint is None:
        return None, ""
    try:
        outbound.check_url(endpoint)
    except outbound.OutboundRefused as exc:
        reason = exc.reason
    except OSError:
        reason = "its host does not resolve"
    else:
        return endpoint, ""
    return None, f"PDS endpoint {endpoint} from the DID document not used ({reason}); calls go to the Service URL."


def _retry_after(response: Any) -> int | None:
    """Seconds to wait, from `Retry-After` (seconds or an HTTP date) or `RateLimit-Reset` (epoch seconds)."""
    # The SDK's 429 error already parses both headers; reuse it for any status (a 503 may carry Retry-After).
    parsed = sdk_errors.RateLimitExceededError(response)
    if parsed.retry_after is not None:
        return max(1, int(parsed.retry_after + 0.999))
    if parsed.reset_at is not None:
        return max(1, int((parsed.reset_at - datetime.now(UTC)).total_seconds() + 0.999))
    return None


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


def translate(exc: Exception) -> errors.BlueskyError:
    """Map an SDK/httpx failure to our exception (the one place that reads upstream error codes)."""
    if isinstance(exc, errors.BlueskyError):
        return exc
    refused = _refusal(exc)
    if refused is not None:
        # The same words whatever listens at that address: the answer must not tell open ports from closed ones.
        return errors.AddressRefused(f"{refused.host} is not a public address.")
    if isinstance(exc, sdk_errors.InvokeTimeoutError):
        return errors.PdsTimeout("The PDS did not answer in time.")
    if isinstance(exc, sdk_errors.RequestErrorBase):
        response = exc.response
        if response is None:
            return errors.PdsUnreachable("The PDS could not be reached.")
        status = response.status_code
        content = response.content
        code = content.error if isinstance(content, XrpcError) else None
        message = (content.message or "") if isinstance(content, XrpcError) else ""
        kwargs = {"status_code": status, "upstream_error": code, "retry_after": _retry_after(response)}
        if status == 429:
            return errors.RateLimited("The PDS rate limit was hit.", **kwargs)
        if 300 <= status < 400:
            # Never followed: a redirect could lead an authenticated call (and its token) anywhere.
            return errors.Redirected(f"The PDS answered {status} with a redirect.", **kwargs)
        if code is None:
            # No XRPC error body (an HTML page from a proxy, a bare 401/5xx): not a PDS verdict on the session, so
            # it must never be taken for "token revoked".
            if status >= 500:
                return errors.PdsServerError(f"The PDS answered {status}.", **kwargs)
            return errors.InvalidResponse(f"The PDS answered {status} with a body that is not XRPC JSON.", **kwargs)
        if code == "AuthFactorTokenRequired":
            return errors.AuthFactorRequired(message, **kwargs)
        if code in ("AccountTakedown", "AccountSuspended"):
            return errors.AccountSuspended(message, **kwargs)
        if code == "AccountDeactivated":
            return errors.AccountDeactivated(message, **kwargs)
        if code in ("ExpiredToken", "InvalidToken") or (status == 401 and code != "AuthenticationRequired"):
            return errors.SessionRejected(message, **kwargs)
        if code == "AuthenticationRequired":
            return errors.InvalidCredentials(message, **kwargs)
        if code == "RateLimitExceeded":
            return errors.RateLimited(message, **kwargs)
        if status >= 500:
            return errors.PdsServerError(message or f"The PDS answered {status}.", **kwargs)
        return errors.RequestRejected(message or f"The PDS answered {status}.", **kwargs)
    if isinstance(exc, sdk_errors.ModelError | ValueError):
        return errors.InvalidResponse("The PDS answered with JSON of an unexpected shape.")
    if isinstance(exc, httpx.HTTPError):
        return errors.PdsUnreachable("The PDS could not be reached.")
    raise exc


class _GuardedRequest(Request):
    """The SDK's request handler on the app's guarded httpx client, which follows no redirect."""

    def __init__(self, timeout: float) -> None:
        # Not Request.__init__: it builds its own client with follow_redirects=True.
        RequestBase.__init__(self)
        self._client_kwargs = {"timeout": timeout}  # what the SDK's `_new_instance` passes back to __init__
        self._client = outbound.make_client(timeout, user_agent=USER_AGENT)


_requests: dict[float, Request] = {}
_raw_clients: dict[tuple[str, float], ClientRaw] = {}
_raw_clients_lock = threading.Lock()


def _raw_client(base_url: str) -> ClientRaw:
    """One SDK client per PDS and timeout for the whole process, sharing one pooled httpx.Client (thread-safe).

    The raw client keeps no session (tokens travel per call), so sharing it is safe; building one costs ~85 µs,
    which would otherwise be paid on every authenticated call.
    """
    timeout = float(getattr(settings, "INTEGRATIONS_HTTP_TIMEOUT", 10.0))
    with _raw_clients_lock:
        if timeout not in _requests:
            _requests[timeout] = _GuardedRequest(timeout)
            _requests[timeout].add_additional_header("User-Agent", USER_AGENT)
        if (base_url, timeout) not in _raw_clients:
            _raw_clients[(base_url, timeout)] = ClientRaw(base_url, request=_requests[timeout])
        return _raw_clients[(base_url, timeout)]


@contextmanager
def _translated(url: str) -> Iterator[None]:
    """Failures inside leave as our own errors (or unchanged, if unknown), naming `url` as the server called."""
    try:
        yield
    except errors.BlueskyError as exc:
        exc.url = exc.url or url
        raise
    except Exception as exc:
        error = translate(exc)
        error.url = url
        raise error from exc


def _field(obj: Any, name: str) -> Any:
    """A field of an SDK record, which arrives as a dict or as a model object depending on its type."""
    return obj.get(name) if isinstance(obj, dict) else getattr(obj, name, None)


def _bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


class PdsClient:
    """XRPC calls against one PDS. Stateless: tokens are arguments."""

    def __init__(self, base_url: str) -> None:
        self.base_url = base_url.rstrip("/")
        self._raw = _raw_client(self.base_url)

    def __repr__(self) -> str:
        return f"PdsClient({self.base_url!r})"

    def _call(self, fn: Callable[[], T]) -> T:
        with _translated(self.base_url):
            return fn()

    def describe_server(self) -> ServerDescription:
        """`com.atproto.server.describeServer`: proves the URL is a PDS and says how it is set up."""
        result = self._call(lambda: self._raw.com.atproto.server.describe_server())
        return ServerDescription(
            did=result.did,
            available_user_domains=list(result.available_user_domains or []),
            invite_code_required=bool(result.invite_code_required),
        )

    # sensitive_variables() hides every local of this call and of the SDK/httpx frames below it in error reports.
    @sensitive_variables()
    def create_session(self, identifier: str, password: str) -> Session:
        """`com.atproto.server.createSession` with an identifier and a (hopefully app) password."""
        data = models.ComAtprotoServerCreateSession.Data(identifier=identifier, password=password)
        result = self._call(lambda: self._raw.com.atproto.server.create_session(data))
        return self._session(result)

    @sensitive_variables()
    def refresh_session(self, refresh_jwt: str) -> Session:
        """`com.atproto.server.refreshSession`: rotates both tokens."""
        result = self._call(lambda: self._raw.com.atproto.server.refresh_session(headers=_bearer(refresh_jwt)))
        return self._session(result)

    @sensitive_variables()
    def delete_session(self, refresh_jwt: str) -> None:
        """`com.atproto.server.deleteSession`: revokes the refresh token on the PDS."""
        self._call(lambda: self._raw.com.atproto.server.delete_session(headers=_bearer(refresh_jwt)))

    @sensitive_variables()
    def get_session(self, access_jwt: str) -> dict[str, Any]:
        """`com.atproto.server.getSession`: the cheapest authenticated call (used to check a session)."""
        result = self._call(lambda: self._raw.com.atproto.server.get_session(headers=_bearer(access_jwt)))
        return {"did": result.did, "handle": result.handle, "active": result.active, "status": result.status}

    @sensitive_variables()
    def get_profile(self, access_jwt: str, did: str) -> Profile:
        """The account's `app.bsky.actor.profile/self` record, read from its own repo.

        Read from the PDS rather than through `app.bsky.actor.getProfile`, which needs an AppView behind the PDS.
        An account that never set a profile has none: that is an empty profile, not an error.
        """
        params = models.ComAtprotoRepoGetRecord.Params(repo=did, collection="app.bsky.actor.profile", rkey="self")
        try:
            with _translated(self.base_url):
                result = self._raw.com.atproto.repo.get_record(params, headers=_bearer(access_jwt))
        except errors.RequestRejected as exc:
            if exc.upstream_error == "RecordNotFound":
                return Profile(display_name="", description="", avatar_url="")
            raise
        value = result.value
        avatar = _field(value, "avatar")
        return Profile(
            display_name=str(_field(value, "displayName") or _field(value, "display_name") or ""),
            description=str(_field(value, "description") or ""),
            avatar_url=self._blob_url(did, avatar) if avatar else "",
        )

    def _blob_url(self, did: str, blob: Any) -> str:
        link = _field(_field(blob, "ref"), "$link") or _field(_field(blob, "ref"), "link")
        if not link:
            cid = _field(blob, "cid")
            link = str(cid) if cid else None
        if not link:
            return ""
        return str(httpx.URL(f"{self.base_url}/xrpc/com.atproto.sync.getBlob", params={"did": did, "cid": link}))

    @staticmethod
    def _session(result: Any) -> Session:
        if not result.access_jwt or not result.refresh_jwt:
            raise errors.InvalidResponse("The PDS returned a session without tokens.")
        pds_endpoint, refused = _usable_pds_endpoint(result.did_doc)
        return Session(
            did=result.did,
            handle=result.handle,
            access_jwt=result.access_jwt,
            refresh_jwt=result.refresh_jwt,
            active=result.active is not False,
            account_status=result.status,
            pds_endpoint=pds_endpoint,
            pds_endpoint_refused=refused,
        )
