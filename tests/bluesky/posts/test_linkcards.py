"""integrations.bluesky.posts.linkcards: cards read from pages on a local HTTP server, and posts that carry them
(against the real local PDS).

Pages are URLs users name: public addresses only, always. The suite runs with `outbound.loopback_only_for_tests`
(conftest), so pages on 127.0.0.1 are read here; the refusal cases switch it off (`public_only`) and let a patched
resolver take a loopback address for a public one (as tests/security/test_outbound.py does).
"""

import contextlib
import io
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from PIL import Image

from integrations.bluesky.posts import images, linkcards
from integrations.models import Media
from integrations.security import outbound
from tests.bluesky.posts.test_publishing import records
from tests.security.test_outbound import count_as_public, fake_dns  # noqa: F401 (a fixture)

Answer = tuple[int, dict[str, str], bytes]


def png(width: int = 120, height: int = 63) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (width, height), (20, 120, 200)).save(buffer, "PNG")
    return buffer.getvalue()


def big_jpeg() -> bytes:
    """A noisy photo-like JPEG of about 1.8 MB: over the thumbnail limit, under the image read limit."""
    buffer = io.BytesIO()
    Image.effect_noise((1600, 1200), 40).convert("RGB").save(buffer, "JPEG", quality=97)
    data = buffer.getvalue()
    assert images.THUMB_MAX_BYTES < len(data) < linkcards.IMAGE_MAX_BYTES
    return data


def html(head: str, charset: str = "utf-8") -> Answer:
    return (
        200,
        {"Content-Type": f"text/html; charset={charset}"},
        f"<html><head>{head}</head><body></body></html>".encode(),
    )


OG_PAGE = html(
    '<meta property="og:title" content="Skyport &amp; friends">'
    '<meta property="og:description" content="  Publishing\n to Bluesky, exactly once. ">'
    '<meta property="og:image" content="/img/card.png">'
    "<title>The HTML title loses</title>"
)


@pytest.fixture(autouse=True)
def _cards_on(settings):
    """The test settings switch link cards off so no test reaches out by accident; these tests are about them."""
    settings.INTEGRATIONS_LINK_CARDS = True


@dataclass
class Site:
    url: str
    routes: dict[str, Callable[[], Answer] | Answer]
    requests: list[str] = field(default_factory=list)
    drip: dict[str, float] = field(default_factory=dict)  # path -> seconds between chunks of 16 bytes


@pytest.fixture
def site() -> Iterator[Site]:
    """A stdlib HTTP server on 127.0.0.1 answering `site.routes[path]` (an answer, or a function giving one)."""
    routes: dict = {}
    requests: list[str] = []
    drip: dict[str, float] = {}

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            requests.append(self.path)
            route = routes.get(self.path, (404, {"Content-Type": "text/html"}, b"<title>Not found</title>"))
            status, headers, body = route() if callable(route) else route
            self.send_response(status)
            for name, value in {"Content-Length": str(len(body)), **headers}.items():
                self.send_header(name, value)
            self.end_headers()
            with contextlib.suppress(OSError):  # the client stopped reading (a page too large, too slow)
                if self.path not in drip:
                    self.wfile.write(body)
                for start in range(0, len(body), 16) if self.path in drip else ():
                    self.wfile.write(body[start : start + 16])
                    self.wfile.flush()
                    time.sleep(drip[self.path])

        def log_message(self, *args) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield Site(f"http://127.0.0.1:{server.server_address[1]}", routes, requests, drip)
    server.shutdown()
    server.server_close()


# --- reading pages ------------------------------------------------------------------------------------------------
def test_open_graph_tags_make_the_card_and_the_relative_image_its_thumbnail(site):
    site.routes["/og"] = OG_PAGE
    site.routes["/img/card.png"] = (200, {"Content-Type": "image/png"}, png())
    result = linkcards.fetch_card(f"{site.url}/og")
    card = result.card
    assert card is not None, result.reason
    assert (card.url, card.title, card.description) == (
        f"{site.url}/og",
        "Skyport & friends",
        "Publishing to Bluesky, exactly once.",
    )
    assert (
        card.thumb is not None and card.thumb.mime == "image/png" and (card.thumb.width, card.thumb.height) == (120, 63)
    )
    assert site.requests == ["/og", "/img/card.png"]


def test_twitter_tags_and_plain_html_are_the_fallbacks(site):
    site.routes["/title"] = html("<title>  Only a\n title </title>")
    site.routes["/twitter"] = html(
        '<meta name="twitter:title" content="Tweety"><meta name="description" content="Plain description">'
    )
    only_title = linkcards.fetch_card(f"{site.url}/title").card
    assert only_title and (only_title.title, only_title.description, only_title.thumb) == ("Only a title", "", None)
    twitter = linkcards.fetch_card(f"{site.url}/twitter").card
    assert twitter and (twitter.title, twitter.description) == ("Tweety", "Plain description")


def test_the_pages_charset_is_honoured_from_the_header_or_its_meta_tag(site):
    body = "<html><head><title>Café crème à Zürich</title></head></html>".encode("iso-8859-1")
    site.routes["/header"] = (200, {"Content-Type": "text/html; charset=ISO-8859-1"}, body)
    meta_body = '<html><head><meta charset="iso-8859-1"><title>Café</title></head></html>'.encode("iso-8859-1")
    site.routes["/meta"] = (200, {"Content-Type": "text/html"}, meta_body)
    site.routes["/none"] = (200, {"Content-Type": "text/html"}, "<title>Café \xff</title>".encode("iso-8859-1"))
    assert linkcards.fetch_card(f"{site.url}/header").card.title == "Café crème à Zürich"
    assert linkcards.fetch_card(f"{site.url}/meta").card.title == "Café"
    assert linkcards.fetch_card(f"{site.url}/none").card.title == "Caf\ufffd \ufffd"  # UTF-8 with replacement


def test_no_metadata_a_huge_page_a_slow_page_and_an_error_give_no_card_and_a_reason(site, settings):
    site.routes["/empty"] = html("")
    site.routes["/huge"] = html("<title>Huge</title>" + "x" * (linkcards.PAGE_MAX_BYTES + 10))
    site.routes["/gone"] = (500, {"Content-Type": "text/html"}, b"<title>Oops</title>")
    site.routes["/image"] = (200, {"Content-Type": "image/png"}, png())

    def slow() -> Answer:
        time.sleep(1.0)
        return html("<title>Slow</title>")

    site.routes["/slow"] = slow
    reasons = {path: linkcards.fetch_card(f"{site.url}{path}") for path in ("/empty", "/huge", "/gone", "/image")}
    settings.INTEGRATIONS_LINK_CARD_TIMEOUT = 0.3  # the card's whole time: only for the slow one
    reasons["/slow"] = linkcards.fetch_card(f"{site.url}/slow")
    assert all(result.card is None for result in reasons.values())
    assert reasons["/empty"].reason == "The page has no title or description."
    assert reasons["/huge"].reason == "The page is larger than 1 MB."
    assert reasons["/gone"].reason == "The page answered with HTTP status 500."
    assert reasons["/image"].reason == "The link is not a web page."
    assert reasons["/slow"].reason == "The page could not be read within 0.3 seconds."


NOT_TEXT_CHARSETS = ["rot13", "base64", "zlib", "hex", "bz2", "undefined", "utf-7", "unicode_escape", "idna", "x-nope"]


@pytest.mark.parametrize("charset", NOT_TEXT_CHARSETS)
def test_a_charset_no_browser_reads_falls_back_in_the_header_and_in_meta(site, charset):
    title = "<title>Café crème</title>".encode()
    site.routes["/header"] = (200, {"Content-Type": f"text/html; charset={charset}"}, title)
    site.routes["/meta"] = (200, {"Content-Type": "text/html"}, f'<meta charset="{charset}">'.encode() + title)
    site.routes["/equiv"] = (
        200,
        {"Content-Type": "text/html"},
        f'<meta http-equiv="Content-Type" content="text/html; charset={charset}">'.encode() + title,
    )
    for path in ("/header", "/meta", "/equiv"):
        result = linkcards.fetch_card(f"{site.url}{path}")
        assert result.card is not None and result.card.title == "Café crème", (path, result.reason)


@pytest.mark.parametrize("parameter", ["charset*=utf-8''rot13", "charset*=us-ascii'en'base64", "charset*0=rot13"])
def test_an_rfc_2231_charset_parameter_is_no_charset(site, parameter):
    site.routes["/page"] = (200, {"Content-Type": f"text/html; {parameter}"}, "<title>Café</title>".encode())
    result = linkcards.fetch_card(f"{site.url}/page")
    assert result.card is not None and result.card.title == "Café"


def test_labels_are_read_as_a_browser_reads_them(site):
    """The WHATWG Encoding Standard: latin1 and ascii mean windows-1252, shift_jis is Microsoft's, and so on."""
    site.routes["/latin1"] = (200, {"Content-Type": "text/html; charset=latin1"}, b"<title>5 \x80 each</title>")
    site.routes["/sjis"] = (
        200,
        {"Content-Type": "text/html; charset=Shift_JIS"},
        "<title>日本語</title>".encode("cp932"),
    )
    site.routes["/spaces"] = (
        200,
        {"Content-Type": 'text/html; charset=" KOI8-R "'},
        "<title>Привет</title>".encode("koi8-r"),
    )
    assert linkcards.fetch_card(f"{site.url}/latin1").card.title == "5 € each"
    assert linkcards.fetch_card(f"{site.url}/sjis").card.title == "日本語"
    assert linkcards.fetch_card(f"{site.url}/spaces").card.title == "Привет"


def test_control_characters_and_nul_never_reach_a_cards_words(site):
    site.routes["/nul"] = html(
        '<meta property="og:title" content="Null\x00 byte\x1b[31m red">'
        '<meta property="og:description" content="Bell\x07 and\x00 more">'
    )
    card = linkcards.fetch_card(f"{site.url}/nul").card
    assert card is not None and (card.title, card.description) == ("Null byte[31m red", "Bell and more")


def test_a_compressed_page_is_read_and_a_stacked_or_unknown_coding_is_no_card(site):
    import gzip

    page = b"<title>Compressed</title>"
    site.routes["/gzip"] = (200, {"Content-Type": "text/html", "Content-Encoding": "gzip"}, gzip.compress(page))
    site.routes["/twice"] = (
        200,
        {"Content-Type": "text/html", "Content-Encoding": "gzip, gzip"},
        gzip.compress(gzip.compress(page)),
    )
    site.routes["/zstd"] = (200, {"Content-Type": "text/html", "Content-Encoding": "zstd"}, b"(\xb5/\xfd")
    assert linkcards.fetch_card(f"{site.url}/gzip").card.title == "Compressed"
    for path in ("/twice", "/zstd"):
        result = linkcards.fetch_card(f"{site.url}{path}")
        assert result.card is None
        assert result.reason == "The page is compressed in a way link cards do not read (only gzip or deflate, once)."


def test_a_dripping_page_or_image_is_cut_at_the_cards_deadline(site, settings):
    """Every chunk comes within the per-read timeout (1 s); only the card's total deadline ends the read. The image
    would take 10 s: the card goes without it; the page would too: no card."""
    settings.INTEGRATIONS_LINK_CARD_TIMEOUT = 1.0
    site.routes["/page"] = html('<meta property="og:title" content="Fast page"><meta property="og:image" content="/i">')
    site.routes["/i"] = (200, {"Content-Type": "image/png"}, png() + b"\0" * 300)
    site.routes["/slow"] = html("<title>Slow page</title>" + " " * 300)
    site.drip.update({"/i": 0.6, "/slow": 0.6})
    started = time.monotonic()
    card = linkcards.fetch_card(f"{site.url}/page").card
    assert card is not None and card.title == "Fast page" and card.thumb is None
    slow = linkcards.fetch_card(f"{site.url}/slow")
    assert (slow.card, slow.reason) == (None, "The page could not be read within 1 seconds.")
    assert time.monotonic() - started < 6  # two cards of 1 s each and a margin, far from the drip's 20


# --- what a user may have read: public pages only, within a budget ------------------------------------------------
def test_link_cards_stay_public_only_while_insecure_pds_hosts_are_allowed(site, settings, public_only, fake_dns):  # noqa: F811
    """INTEGRATIONS_ALLOW_INSECURE_PDS lets the configured PDS be local; it never lets a user read internal pages."""
    settings.INTEGRATIONS_ALLOW_INSECURE_PDS = True
    site.routes["/admin"] = html("<title>Internal admin</title>")
    fake_dns.names["intranet.example.com"] = ["10.1.2.3"]
    local = linkcards.fetch_card(f"{site.url}/admin")
    private = linkcards.fetch_card("https://intranet.example.com/")
    assert (local.card, local.reason) == (None, "The page may not be fetched (127.0.0.1: http scheme is not allowed).")
    assert (private.card, private.reason) == (
        None,
        "The page may not be fetched (intranet.example.com: not a public address).",
    )
    assert site.requests == []


@pytest.mark.django_db  # the budget is counted in the database (integrations.security.throttling)
def test_pages_read_for_a_users_cards_are_limited_in_number(site, settings):
    settings.INTEGRATIONS_LINK_CARD_RATES = {"pages": (2, 3600)}
    for path in ("/a", "/b", "/c"):
        site.routes[path] = html(f"<title>{path}</title>")
    assert linkcards.fetch_card(f"{site.url}/a", user_id=1).card.title == "/a"
    assert linkcards.fetch_card(f"{site.url}/b", user_id=1).card.title == "/b"
    refused = linkcards.fetch_card(f"{site.url}/c", user_id=1)
    assert refused.card is None
    assert refused.reason.startswith("Too many pages were read for your link cards lately; the next in ")
    assert site.requests == ["/a", "/b"]
    assert linkcards.fetch_card(f"{site.url}/a", user_id=1).card.title == "/a"  # from the cache: costs nothing
    assert linkcards.fetch_card(f"{site.url}/c", user_id=2).card.title == "/c"  # another user's budget
    assert site.requests == ["/a", "/b", "/c"]


@pytest.mark.django_db  # the budget is counted in the database (integrations.security.throttling)
def test_bytes_received_for_a_users_cards_are_limited(site, settings):
    settings.INTEGRATIONS_LINK_CARD_RATES = {"bytes": (30_000, 3600)}
    site.routes["/big"] = html("<title>Big</title>" + " " * 40_000)
    site.routes["/next"] = html("<title>Next</title>")
    assert linkcards.fetch_card(f"{site.url}/big", user_id=1).card.title == "Big"
    refused = linkcards.fetch_card(f"{site.url}/next", user_id=1)
    assert refused.card is None and refused.reason.startswith("Too many pages were read for your link cards")
    assert site.requests == ["/big"]


def test_an_image_over_the_thumbnail_limit_is_reencoded_within_it(site):
    site.routes["/photo"] = html(
        '<meta property="og:title" content="Photo"><meta property="og:image" content="/p.jpg">'
    )
    site.routes["/p.jpg"] = (200, {"Content-Type": "image/jpeg"}, big_jpeg())
    thumb = linkcards.fetch_card(f"{site.url}/photo").card.thumb
    assert thumb is not None and thumb.reencoded and thumb.mime == "image/jpeg"
    assert len(thumb.data) <= images.THUMB_MAX_BYTES == 1_000_000


def test_an_image_that_cannot_be_used_leaves_a_card_without_thumbnail(site):
    site.routes["/bad"] = html('<meta property="og:title" content="Bad"><meta property="og:image" content="/x.png">')
    site.routes["/x.png"] = (200, {"Content-Type": "image/png"}, b"<html>not an image</html>")
    card = linkcards.fetch_card(f"{site.url}/bad").card
    assert card is not None and card.title == "Bad" and card.thumb is None


def test_a_redirect_to_a_loopback_address_is_refused(site, public_only, fake_dns, monkeypatch):  # noqa: F811
    """news.example.com (really 127.0.0.1, taken for public) redirects to 127.0.0.2, which stays loopback."""
    monkeypatch.setattr(outbound, "_check_scheme", lambda url, reach: None)  # no TLS server here; see test_outbound
    count_as_public(monkeypatch, "127.0.0.1")
    fake_dns.names["news.example.com"] = ["127.0.0.1"]
    port = site.url.rsplit(":", 1)[1]
    site.routes["/story"] = (302, {"Location": f"http://127.0.0.2:{port}/admin"}, b"")
    result = linkcards.fetch_card(f"http://news.example.com:{port}/story")
    assert result.card is None
    assert result.reason == "The page may not be fetched (127.0.0.2: not a public address)."
    assert site.requests == ["/story"]  # the loopback hop was never requested


def test_cards_and_failures_are_cached_per_url(site):
    site.routes["/og"] = OG_PAGE
    site.routes["/img/card.png"] = (200, {"Content-Type": "image/png"}, png())
    first = linkcards.fetch_card(f"{site.url}/og")
    second = linkcards.fetch_card(f"{site.url}/og")
    assert second == first and second.card.thumb.data == first.card.thumb.data
    assert site.requests == ["/og", "/img/card.png"]  # the second answer came from the cache
    linkcards.fetch_card(f"{site.url}/missing")
    linkcards.fetch_card(f"{site.url}/missing")
    assert site.requests.count("/missing") == 1


def test_link_cards_can_be_switched_off(site, settings):
    settings.INTEGRATIONS_LINK_CARDS = False
    site.routes["/og"] = OG_PAGE
    assert linkcards.fetch_card(f"{site.url}/og") == linkcards.CardResult(None, "Link cards are switched off.")
    assert site.requests == []


# --- posts with cards, against the real PDS -----------------------------------------------------------------------
def post(api, channel, text: str, **part) -> dict:
    response = api.post("/api/v1/posts/", {"channel": channel.pk, "parts": [{"text": text, **part}]}, format="json")
    assert response.status_code == 201, response.content
    return response.json()


def stored_record(pds, account, uri: str) -> dict:
    return {r["uri"]: r["value"] for r in records(pds, account.did)}[uri]


@pytest.mark.pds
@pytest.mark.django_db
def test_a_post_with_a_link_carries_its_card_with_the_thumbnail_uploaded(api, channel, use_pds, account, site):
    site.routes["/og"] = OG_PAGE
    thumb = png()
    site.routes["/img/card.png"] = (200, {"Content-Type": "image/png"}, thumb)
    answer = post(api, channel, f"Read this: {site.url}/og")
    assert answer["status"] == "published", answer
    [part] = answer["parts"]
    assert part["card"] == {
        "uri": f"{site.url}/og",
        "title": "Skyport & friends",
        "description": "Publishing to Bluesky, exactly once.",
        "thumb": True,
    }
    assert part["card_note"] == ""
    external = stored_record(use_pds, account, part["uri"])["embed"]
    assert external["$type"] == "app.bsky.embed.external"
    assert external["external"]["uri"] == f"{site.url}/og"
    blob_ref = external["external"]["thumb"]
    assert blob_ref["mimeType"] == "image/png" and blob_ref["size"] <= images.THUMB_MAX_BYTES
    blob = use_pds.xrpc("GET", "com.atproto.sync.getBlob", params={"did": account.did, "cid": blob_ref["ref"]["$link"]})
    assert blob.status_code == 200 and blob.content == images.prepare(thumb).data
    # The thumbnail's upload is no longer needed by this post; the clean-up removes it a day after it was last used.
    assert not Media.objects.filter(parts__post__status__in=["scheduled", "waiting", "failed"]).exists()


@pytest.mark.pds
@pytest.mark.django_db
def test_no_card_an_edited_card_and_a_card_beside_images(api, channel, use_pds, account, site):
    site.routes["/og"] = OG_PAGE
    site.routes["/img/card.png"] = (200, {"Content-Type": "image/png"}, png())
    without = post(api, channel, f"No card: {site.url}/og", link_card=None)
    assert without["parts"][0]["card"] is None and without["parts"][0]["card_note"] == ""
    assert "embed" not in stored_record(use_pds, account, without["parts"][0]["uri"])
    edited = post(
        api,
        channel,
        f"Edited: {site.url}/og",
        link_card={"url": f"{site.url}/og", "title": "My title", "description": "My words"},
    )
    [part] = edited["parts"]
    assert part["card"] == {"uri": f"{site.url}/og", "title": "My title", "description": "My words", "thumb": True}
    external = stored_record(use_pds, account, part["uri"])["embed"]["external"]
    assert (external["title"], external["description"]) == ("My title", "My words")


@pytest.mark.pds
@pytest.mark.django_db
def test_a_broken_page_never_blocks_the_post_and_the_answer_says_why(api, channel, use_pds, account, site):
    site.routes["/broken"] = (503, {"Content-Type": "text/html"}, b"<title>Down</title>")
    answer = post(api, channel, f"Still posted: {site.url}/broken")
    assert answer["status"] == "published"
    [part] = answer["parts"]
    assert part["card"] is None
    assert part["card_note"] == "No link card: the page answered with HTTP status 503."
    assert "embed" not in stored_record(use_pds, account, part["uri"])
    assert api.get(f"/api/v1/posts/{answer['id']}/").json()["parts"][0]["card_note"] == part["card_note"]


@pytest.mark.django_db
def test_an_invalid_link_card_is_refused(api, channel):
    response = api.post(
        "/api/v1/posts/",
        {"channel": channel.pk, "parts": [{"text": "hi", "link_card": {"url": "ftp://example.com/x"}}]},
        format="json",
    )
    assert response.status_code == 400
