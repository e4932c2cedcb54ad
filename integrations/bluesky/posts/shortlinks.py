"""The visible form of a link in a post, as the official app shows it: social-app `toShortUrl`
(`src/lib/strings/url-helpers.ts`), which `shortenLinks` (`src/lib/strings/rich-text-manip.ts`) applies to each link's
visible text. An http(s) URL shows as host plus path, query and fragment, and when those exceed 15 characters, as host
plus their first 13 and `...`. The URL is normalised the way WHATWG `new URL()` does for what matters here (lower-case
host, IDNA, default port dropped, non-ASCII and a few reserved characters percent-encoded); text that does not parse
as an http(s) URL (a bare `example.com/path`) is left as written, as upstream leaves it.
"""

from urllib.parse import urlsplit

SHORT_URL_PATH_MAX = 15  # toShortUrl: a longer path+query+hash is cut ...
SHORT_URL_PATH_KEEP = 13  # ... to its first 13 characters and "..."

# WHATWG URL percent-encode sets (C0 controls, and everything above U+007E, are always encoded).
_FRAGMENT_ENCODE = frozenset(' "<>`')
_QUERY_ENCODE = frozenset(" \"#<>'")  # the special-query set (http and https are special schemes)
_PATH_ENCODE = frozenset(' "#<>?^`{}')
_DEFAULT_PORTS = {"http": 80, "https": 443}


def _percent_encode(text: str, extra: frozenset[str]) -> str:
    return "".join(
        "".join(f"%{byte:02X}" for byte in char.encode("utf-8"))
        if ord(char) < 0x20 or ord(char) > 0x7E or char in extra
        else char
        for char in text
    )


def to_short_url(url: str) -> str:
    """The visible form of a link (social-app `toShortUrl`): host, then path+query+fragment, cut to 13 characters
    and `...` when longer than 15. Anything that is not an http(s) URL comes back unchanged."""
    try:
        parts = urlsplit(url)
        scheme = parts.scheme.lower()
        hostname, port = parts.hostname, parts.port
        if scheme not in _DEFAULT_PORTS or not hostname or not parts.netloc:
            return url
        host = hostname.encode("idna").decode("ascii") if not hostname.isascii() else hostname
    except (ValueError, UnicodeError):
        return url  # `new URL()` throws: upstream shows the text as written
    if ":" in host:
        host = f"[{host}]"
    if port is not None and port != _DEFAULT_PORTS[scheme]:
        host = f"{host}:{port}"
    path = _percent_encode(parts.path, _PATH_ENCODE)
    path = "" if path in ("", "/") else path
    if parts.query:
        path += "?" + _percent_encode(parts.query, _QUERY_ENCODE)
    if parts.fragment:
        path += "#" + _percent_encode(parts.fragment, _FRAGMENT_ENCODE)
    if len(path) > SHORT_URL_PATH_MAX:
        return host + path[:SHORT_URL_PATH_KEEP] + "..."
    return host + path
