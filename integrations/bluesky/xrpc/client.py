"""The only module that talks XRPC to a PDS (through the `atproto` SDK's raw client, with timeouts).

Every failure leaves here as one of `integrations.bluesky.xrpc.errors`, carrying the base URL it called. Requests go
through `integrations.security.outbound` (public addresses only, pinned) and never follow a redirect. Tokens are passed
per call in the Authorization header and never kept on a shared object, so no caller can reuse a stale token by
accident.
"""

import json
import logging
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, TypeVar

import httpx
from atproto_client import models
from atproto_client.client.raw import ClientRaw
from atproto_client.request import Request, RequestBase
from django.core.exceptions import ValidationError
from django.views.decorators.debug import sensitive_variables

from integrations.bluesky.identity import identifiers
from integrations.bluesky.xrpc import errors
from integrations.bluesky.xrpc.errors import translate
from integrations.bluesky.xrpc.servers import normalize_service_url
from integrations.bluesky.xrpc.tokens import claim_time, jwt_claims
from integrations.conf import app_settings
from integrations.security import outbound
from integrations.security.crypto import Secret
from integrations.text import clean_text

logger = logging.getLogger(__name__)

USER_AGENT = "Skyport (Django; atproto SDK)"
MAX_DID_LENGTH = 255  # the column; did:plc is 32 characters, did:web at most a host name
MAX_ENDPOINT_LENGTH = 500
MAX_DISPLAY_NAME_LENGTH = 640  # the lexicon's maxLength (bytes; 64 graphemes)
MAX_DESCRIPTION_LENGTH = 2560
MAX_AVATAR_URL_LENGTH = 1000
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


def pds_endpoint_of(did_doc: Any) -> str | None:
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
    endpoint = pds_endpoint_of(did_doc)
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


class _GuardedRequest(Request):
    """The SDK's request handler on the app's guarded httpx client, which follows no redirect."""

    def __init__(self, timeout: float, reach: outbound.Reach = outbound.Reach.SERVICE) -> None:
        # Not Request.__init__: it builds its own client with follow_redirects=True.
        RequestBase.__init__(self)
        # What the SDK's `_new_instance` passes back to __init__.
        self._client_kwargs = {"timeout": timeout, "reach": reach}
        self._client = outbound.make_client(timeout, user_agent=USER_AGENT, reach=reach)


_requests: dict[tuple[float, outbound.Reach], Request] = {}
_raw_clients: dict[tuple[str, float, outbound.Reach], ClientRaw] = {}
_raw_clients_lock = threading.Lock()


def _raw_client(base_url: str, reach: outbound.Reach) -> ClientRaw:
    """One SDK client per PDS, timeout and reach for the whole process, sharing one pooled httpx.Client per timeout
    and reach (thread-safe).

    The raw client keeps no session (tokens travel per call), so sharing it is safe; building one costs ~85 µs,
    which would otherwise be paid on every authenticated call.
    """
    timeout = app_settings.HTTP_TIMEOUT
    with _raw_clients_lock:
        if (timeout, reach) not in _requests:
            _requests[(timeout, reach)] = _GuardedRequest(timeout, reach)
            _requests[(timeout, reach)].add_additional_header("User-Agent", USER_AGENT)
        if (base_url, timeout, reach) not in _raw_clients:
            _raw_clients[(base_url, timeout, reach)] = ClientRaw(base_url, request=_requests[(timeout, reach)])
        return _raw_clients[(base_url, timeout, reach)]


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
    """XRPC calls against one PDS. Stateless: tokens are arguments.

    `reach`: `SERVICE` for the configured PDS and a channel's own (what `INTEGRATIONS_ALLOW_INSECURE_PDS` may let be
    local); `PUBLIC` for any other server a user's input leads to (another account's PDS): public https only."""

    def __init__(self, base_url: str, *, reach: outbound.Reach = outbound.Reach.SERVICE) -> None:
        self.base_url = base_url.rstrip("/")
        self._raw = _raw_client(self.base_url, reach)

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

    def resolve_handle(self, handle: str) -> str:
        """`com.atproto.identity.resolveHandle`: the DID a handle names, as this server sees it."""
        params = models.ComAtprotoIdentityResolveHandle.Params(handle=handle)
        result = self._call(lambda: self._raw.com.atproto.identity.resolve_handle(params))
        did = str(result.did or "")
        if not identifiers.is_did(did) or len(did) > MAX_DID_LENGTH:
            raise errors.InvalidResponse("The PDS resolved the handle to something that is not a DID.")
        return did

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

    # --- repository writes and reads (publishing) ------------------------------------------------------------------
    def _procedure(self, nsid: str, access_jwt: str, body: bytes, content_type: str) -> Any:
        """A procedure call with a raw body, bypassing the SDK's models so records go out exactly as planned."""
        headers = {**_bearer(access_jwt), "Content-Type": content_type}
        response = self._call(
            lambda: self._raw.invoke_procedure(nsid, content=body, headers=headers, output_encoding="application/json")
        )
        return response.content

    @sensitive_variables()
    def upload_blob(self, access_jwt: str, data: bytes, mime: str) -> str:
        """`com.atproto.repo.uploadBlob`; returns the blob's CID (uploading the same bytes again is harmless)."""
        content = self._procedure("com.atproto.repo.uploadBlob", access_jwt, data, mime)
        try:
            return str(content["blob"]["ref"]["$link"])
        except (KeyError, TypeError) as exc:
            raise errors.InvalidResponse("The PDS answered uploadBlob without a blob reference.") from exc

    @sensitive_variables()
    def apply_writes(self, access_jwt: str, repo: str, writes: list[dict[str, Any]]) -> list[dict[str, Any]]:
        """`com.atproto.repo.applyWrites`: all the writes in one commit, or none; returns each write's result."""
        body = json.dumps({"repo": repo, "writes": writes, "validate": True}, ensure_ascii=False).encode()
        content = self._procedure("com.atproto.repo.applyWrites", access_jwt, body, "application/json")
        results = content.get("results") if isinstance(content, dict) else None
        return [r for r in results if isinstance(r, dict)] if isinstance(results, list) else []

    @sensitive_variables()
    def delete_record(self, access_jwt: str, repo: str, collection: str, rkey: str) -> None:
        """`com.atproto.repo.deleteRecord` (deleting a record that is not there changes nothing)."""
        body = json.dumps({"repo": repo, "collection": collection, "rkey": rkey}).encode()
        self._procedure("com.atproto.repo.deleteRecord", access_jwt, body, "application/json")

    @sensitive_variables()
    def get_record(self, access_jwt: str | None, repo: str, collection: str, rkey: str) -> tuple[str, Any] | None:
        """A record's CID and value (`com.atproto.repo.getRecord`), or None when there is none under that key.

        Read as raw JSON (no SDK models), so the value is exactly what the repository holds.
        """
        params = models.ComAtprotoRepoGetRecord.Params(repo=repo, collection=collection, rkey=rkey)
        headers = _bearer(access_jwt) if access_jwt else {}
        try:
            response = self._call(
                lambda: self._raw.invoke_query(
                    "com.atproto.repo.getRecord", params=params, headers=headers, output_encoding="application/json"
                )
            )
        except errors.RequestRejected as exc:
            if exc.upstream_error in ("RecordNotFound", "RepoNotFound", "InvalidRequest"):
                return None
            raise
        content = response.content
        if not isinstance(content, dict) or not isinstance(content.get("cid"), str):
            raise errors.InvalidResponse("The PDS answered getRecord without a CID.")
        return content["cid"], content.get("value")

    @sensitive_variables()
    def list_records(
        self, access_jwt: str | None, repo: str, collection: str, limit: int, cursor: str | None = None
    ) -> tuple[list[dict[str, Any]], str | None]:
        """One page of a collection (`com.atproto.repo.listRecords`), newest first, and the PDS's cursor (if any).

        Read as raw JSON (no SDK models), so a record that does not follow its lexicon is listed as it is: callers
        check each value. Entries that are not objects are dropped; a cursor that is not a string is None.
        """
        params = models.ComAtprotoRepoListRecords.Params(repo=repo, collection=collection, limit=limit, cursor=cursor)
        headers = _bearer(access_jwt) if access_jwt else {}
        response = self._call(
            lambda: self._raw.invoke_query(
                "com.atproto.repo.listRecords", params=params, headers=headers, output_encoding="application/json"
            )
        )
        content = response.content
        if not isinstance(content, dict) or not isinstance(content.get("records"), list):
            raise errors.InvalidResponse("The PDS answered listRecords without a list of records.")
        next_cursor = content.get("cursor")
        return (
            [record for record in content["records"] if isinstance(record, dict)],
            next_cursor if isinstance(next_cursor, str) else None,
        )

    def record_cid(self, access_jwt: str, repo: str, collection: str, rkey: str) -> str | None:
        """The CID of a record, or None when there is none under that key."""
        found = self.get_record(access_jwt, repo, collection, rkey)
        return found[0] if found else None

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
        try:
            value = result.value
            avatar = _field(value, "avatar")
            return Profile(
                display_name=clean_text(_field(value, "displayName") or _field(value, "display_name"))[
                    :MAX_DISPLAY_NAME_LENGTH
                ],
                description=clean_text(_field(value, "description"))[:MAX_DESCRIPTION_LENGTH],
                avatar_url=self._blob_url(did, avatar) if avatar else "",
            )
        except Exception as exc:  # whatever shape the record has, it is "profile unavailable", never a crash
            raise errors.InvalidResponse("The PDS returned a profile record of an unexpected shape.") from exc

    def _blob_url(self, did: str, blob: Any) -> str:
        """Where a blob can be fetched, or "" when its reference is not a well-formed CID."""
        ref = _field(blob, "ref")
        link = _field(ref, "$link") or _field(ref, "link") if ref is not None else None
        if not link:
            cid = _field(blob, "cid")
            link = str(cid) if cid else None
        if not identifiers.is_cid(link):
            return ""
        url = str(httpx.URL(f"{self.base_url}/xrpc/com.atproto.sync.getBlob", params={"did": did, "cid": link}))
        return url if len(url) <= MAX_AVATAR_URL_LENGTH else ""

    @staticmethod
    @sensitive_variables()
    def _session(result: Any) -> Session:
        """A session answer, checked where it enters: every value must fit what we store, or nothing is used."""
        if not isinstance(result.access_jwt, str) or not isinstance(result.refresh_jwt, str):
            raise errors.InvalidResponse("The PDS returned a session without tokens.")
        if not result.access_jwt or not result.refresh_jwt:
            raise errors.InvalidResponse("The PDS returned a session without tokens.")
        did, handle = str(result.did or ""), str(result.handle or "")
        if not (identifiers.is_did(did) and len(did) <= MAX_DID_LENGTH and identifiers.is_handle(handle)):
            raise errors.InvalidResponse("The PDS returned an account DID or handle that is not valid.")
        handle = identifiers.normalize_handle(handle)
        endpoint, refused = _usable_pds_endpoint(result.did_doc)
        if endpoint and len(endpoint) > MAX_ENDPOINT_LENGTH:
            endpoint, refused = None, "the PDS endpoint in the DID document is too long; using the Service URL"
        session = Session(
            did=did,
            handle=handle,
            access_jwt=Secret(result.access_jwt),
            refresh_jwt=Secret(result.refresh_jwt),
            active=result.active is not False,
            account_status=str(result.status) if result.status else None,
            pds_endpoint=endpoint,
            pds_endpoint_refused=refused,
        )
        for claims in (session.access_claims, session.refresh_claims):  # refuse unreadable tokens here, not on save
            claim_time(claims)
        return session
