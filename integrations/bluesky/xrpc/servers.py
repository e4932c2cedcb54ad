"""What a PDS URL may be: the Service URL (admin page, environment, sign-in form) and a DID document's PDS endpoint
are checked and put in one canonical form here; and which server an account hosted on a PDS signs in through."""

import ipaddress
import re
import socket
from urllib.parse import SplitResult, urlsplit, urlunsplit

from django.core.exceptions import ValidationError

from integrations.security.addresses import is_public_address
from integrations.security.outbound import guard_enabled


def insecure_pds_allowed() -> bool:
    """Whether plain http and loopback/private hosts are accepted (tests and local demos only)."""
    return not guard_enabled()


_LABEL_RE = re.compile(r"^(?!-)[a-z0-9-]{1,63}(?<!-)$")


def _ip_address(host: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    """The address a host names literally, including the legacy IPv4 forms resolvers accept (127.1, 2130706433,
    0x7f.1, 017700000001), which `ipaddress` alone does not recognise."""
    try:
        return ipaddress.ip_address(host)
    except ValueError:
        pass
    if re.fullmatch(r"[0-9a-fx.]+", host) and not re.search(r"[g-wyz]", host):
        try:
            return ipaddress.ip_address(socket.inet_aton(host))
        except OSError:
            return None
    return None


def _is_local_host(host: str) -> bool:
    if host == "localhost" or host.endswith((".localhost", ".local", ".internal")):
        return True
    address = _ip_address(host)
    return address is not None and not is_public_address(address)


def _valid_host(host: str) -> bool:
    if _ip_address(host) is not None:
        return True
    labels = host.split(".")
    return len(host) <= 253 and all(_LABEL_RE.match(label) for label in labels)


def normalize_service_url(value: str, *, allow_insecure: bool | None = None) -> str:
    """Return the canonical form of a PDS URL (scheme://host[:port][/path], no trailing slash).

    Raises ValidationError with a message that says what to change.
    """
    if allow_insecure is None:
        allow_insecure = insecure_pds_allowed()
    value = (value or "").strip()
    if not value:
        raise ValidationError("Enter the PDS URL, e.g. https://bsky.social.", code="required")
    try:
        parts = urlsplit(value)
        port = parts.port
    except ValueError as exc:
        raise ValidationError("This is not a valid URL.", code="invalid") from exc
    scheme, host = _checked_scheme_and_host(parts)
    _check_rest(value, parts, port)
    if not allow_insecure:
        _check_secure(scheme, host)
    netloc = f"[{host}]" if ":" in host else host
    if port is not None:
        netloc = f"{netloc}:{port}"
    return urlunsplit((scheme, netloc, parts.path.rstrip("/"), "", ""))


def _checked_scheme_and_host(parts: SplitResult) -> tuple[str, str]:
    """The URL's scheme and host, lower-cased; ValidationError when either is not one a PDS URL may have."""
    scheme = parts.scheme.lower()
    if scheme not in ("http", "https"):
        raise ValidationError("The PDS URL must start with https://.", code="scheme")
    host = (parts.hostname or "").lower().rstrip(".")  # "localhost." is localhost
    if not host:
        raise ValidationError("The PDS URL needs a host name, e.g. https://pds.example.com.", code="host")
    if not _valid_host(host):
        raise ValidationError(f"{host!r} is not a valid host name.", code="host")
    return scheme, host


def _check_rest(value: str, parts: SplitResult, port: int | None) -> None:
    """No credentials, no port 0, no query string or fragment."""
    if parts.username is not None or parts.password is not None:
        raise ValidationError("Remove the user name and password from the PDS URL.", code="credentials")
    if port == 0:
        raise ValidationError("Port 0 cannot be connected to: remove it or use the server's port.", code="port")
    if parts.query or parts.fragment or value.endswith(("?", "#")):
        raise ValidationError("Remove the query string or fragment (?… or #…) from the PDS URL.", code="query")


def _check_secure(scheme: str, host: str) -> None:
    """While insecure servers are not allowed: https only, and no loopback or private host."""
    if scheme != "https":
        raise ValidationError("The PDS URL must use https://.", code="insecure")
    if _is_local_host(host):
        raise ValidationError("Loopback and private network addresses are not allowed as a PDS.", code="private_host")


# --- where an account signs in ---------------------------------------------------------------------------------
BLUESKY_ENTRYWAY = "bsky.social"
BLUESKY_PDS_SUFFIX = ".bsky.network"


def _server(url: str) -> tuple[str, int]:
    parts = urlsplit(url)
    host = (parts.hostname or "").lower()
    if host in ("localhost", "::1"):  # one machine, however a local PDS names itself (development and tests)
        host = "127.0.0.1"
    return host, parts.port or (443 if parts.scheme == "https" else 80)


def same_server(one: str, other: str) -> bool:
    """Whether two URLs name the same server (scheme's default port and loopback spellings aside)."""
    return _server(one) == _server(other)


def signs_in_through(service_url: str, pds: str) -> bool:
    """Whether an account hosted on `pds` signs in through `service_url`: the same server, or one of Bluesky's own
    PDS hosts (`*.bsky.network`) behind the `bsky.social` entryway."""
    service, hosted = _server(service_url), _server(pds)
    if service == hosted:
        return True
    return service == (BLUESKY_ENTRYWAY, 443) and hosted[0].endswith(BLUESKY_PDS_SUFFIX)


def sign_in_url(pds: str) -> str:
    """Where an account hosted on `pds` signs in: Bluesky's entryway for Bluesky's own PDS hosts, else the PDS."""
    return f"https://{BLUESKY_ENTRYWAY}" if _server(pds)[0].endswith(BLUESKY_PDS_SUFFIX) else pds
