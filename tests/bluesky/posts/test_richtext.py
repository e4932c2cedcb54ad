"""integrations.bluesky.posts.richtext: lengths, facets, link shortening, mention resolution and languages."""

import itertools

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from integrations.bluesky.posts import richtext
from integrations.bluesky.posts.languages import InvalidLanguage, default_lang, normalize_langs
from integrations.bluesky.posts.richtext import (
    MAX_BYTES,
    PostTooLong,
    TextLength,
    build,
    check_length,
    count,
    detect_facets,
    shorten_links,
)
from integrations.bluesky.posts.shortlinks import to_short_url

FULLWIDTH_HASH = "\uff03"
FAMILY = "\U0001f468\u200d\U0001f469\u200d\U0001f467\u200d\U0001f466"  # 👨‍👩‍👧‍👦: 7 code points, 25 bytes
FLAG = "\U0001f1eb\U0001f1f7"  # 🇫🇷
E_ACUTE = "e\u0301"  # e + combining acute


def found(text: str) -> list[tuple[str, str, str]]:
    """(kind, the facet's byte slice decoded, value) for each detected facet."""
    data = text.encode()
    return [(f.kind, data[f.byte_start : f.byte_end].decode(), f.value) for f in detect_facets(text)]


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("go to https://example.com/a now", [("link", "https://example.com/a", "https://example.com/a")]),
        ("http://x.org", [("link", "http://x.org", "http://x.org")]),
        ("bare example.com/path here", [("link", "example.com/path", "https://example.com/path")]),
        ("see example.com.", [("link", "example.com", "https://example.com")]),
        ("(see https://x.org/a_(b))", [("link", "https://x.org/a_(b)", "https://x.org/a_(b)")]),
        ("(https://x.org/a)", [("link", "https://x.org/a", "https://x.org/a")]),
        # one trailing punctuation mark is left out, as upstream: "?!" keeps the "?"
        ("wow https://x.org?!", [("link", "https://x.org?", "https://x.org?")]),
        ("ok https://x.org/a, then", [("link", "https://x.org/a", "https://x.org/a")]),
        ("unknown foo.notatld here", []),
        ("schemeless httpbin.org", [("link", "httpbin.org", "https://httpbin.org")]),
        ("upper case scheme HTTPS://X.ORG is not linked upstream", []),
        ("mail bob@example.com please", []),
        ("hi @alice.bsky.social!", [("mention", "@alice.bsky.social", "alice.bsky.social")]),
        ("(@bob.example.com)", [("mention", "@bob.example.com", "bob.example.com")]),
        ("@carol.test works in tests", [("mention", "@carol.test", "carol.test")]),
        ("hi @alice", []),
        ("#café au lait", [("tag", "#café", "café")]),
        (f"{FULLWIDTH_HASH}tag", [("tag", f"{FULLWIDTH_HASH}tag", "tag")]),
        ("#123 is a number", []),
        ("#1a is a tag", [("tag", "#1a", "1a")]),
        ("end #tag!!", [("tag", "#tag", "tag")]),
        ("x,#tag (#tag after punctuation is not a tag)", []),
        ("a\n#tag on a new line", [("tag", "#tag", "tag")]),
        ("#\ufe0f⃣ keycap", []),
        (
            "日本語 https://例え.jp/パス 🎉 #東京 @a.bsky.social 🇫🇷",
            [
                ("link", "https://例え.jp/パス", "https://例え.jp/パス"),
                ("tag", "#東京", "東京"),
                ("mention", "@a.bsky.social", "a.bsky.social"),
            ],
        ),
        ("שלום https://x.org/עברית עולם", [("link", "https://x.org/עברית", "https://x.org/עברית")]),
    ],
)
def test_detection(text, expected):
    assert found(text) == expected


def test_a_tag_of_64_graphemes_is_a_tag_and_65_is_not():
    assert found("#" + "a" * 64) == [("tag", "#" + "a" * 64, "a" * 64)]
    assert found("#" + "a" * 65) == []
    assert found("#" + E_ACUTE * 64)[0][2] == E_ACUTE * 64  # 128 code points, 64 graphemes


def test_a_tag_over_640_bytes_is_not_a_tag_even_under_64_graphemes():
    heavy = "a" + "\u0301" * 10  # one grapheme, 21 bytes (a ZWJ would end the tag, as upstream)
    assert found("#" + heavy * 30)[0][2] == heavy * 30  # 630 bytes
    assert found("#" + heavy * 31) == []  # 31 graphemes, 651 bytes


def test_offsets_are_utf8_bytes():
    text = f"{FAMILY} https://x.org"
    (facet,) = detect_facets(text)
    assert (facet.byte_start, facet.byte_end) == (26, 26 + len("https://x.org"))


@pytest.mark.parametrize(
    ("text", "graphemes", "size"),
    [
        ("", 0, 0),
        ("abc", 3, 3),
        (FAMILY, 1, 25),
        (FLAG, 1, 8),
        (FLAG + FLAG, 2, 16),
        (E_ACUTE, 1, 3),
        ("a\u0301\u0302\u0303", 1, 7),
        ("👍🏽", 1, 8),
        ("क्षि", 1, 12),  # a Devanagari conjunct (Unicode 15.1)
        ("日本語", 3, 9),
        ("\r\n", 1, 2),
    ],
)
def test_count(text, graphemes, size):
    assert count(text) == TextLength(graphemes, size)


def test_300_graphemes_pass_and_301_are_refused_with_both_counts():
    assert check_length(FAMILY * 80 + FLAG * 50 + "a" * 170).graphemes == 300
    with pytest.raises(PostTooLong) as caught:
        check_length("a" * 301)
    assert caught.value.code == "post_too_long"
    assert "301" in str(caught.value) and "300" in str(caught.value)
    assert "301 bytes" in str(caught.value) and "3,000" in str(caught.value)
    assert caught.value.length == TextLength(301, 301)


def test_over_3000_bytes_is_refused_under_300_graphemes():
    text = FAMILY * 120 + "a"  # 121 graphemes, 3,001 bytes
    with pytest.raises(PostTooLong) as caught:
        check_length(text)
    assert caught.value.length == TextLength(121, MAX_BYTES + 1)
    assert "121 characters of 300" in str(caught.value) and "3,001 bytes of 3,000" in str(caught.value)


@pytest.mark.parametrize(
    ("url", "short"),
    [
        ("https://example.com", "example.com"),
        ("https://example.com/", "example.com"),
        ("https://example.com/abcdefghijklmn", "example.com/abcdefghijklmn"),  # "/" + 14: 15, kept
        ("https://example.com/abcdefghijklmno", "example.com/abcdefghijkl..."),  # 16: cut to 13 + ...
        ("https://Example.COM:443/a?b=c#d", "example.com/a?b=c#d"),
        ("http://example.com:8080/a", "example.com:8080/a"),
        ("https://ja.wikipedia.org/wiki/日本語", "ja.wikipedia.org/wiki/%E6%97%..."),
        ("https://例え.jp/", "xn--r8jz45g.jp"),
        ("example.com/a/very/long/path/indeed", "example.com/a/very/long/path/indeed"),  # not a URL to new URL()
        ("ftp://example.com/a/very/long/path", "ftp://example.com/a/very/long/path"),
        ("https://x.org:99999/", "https://x.org:99999/"),
    ],
)
def test_to_short_url(url, short):
    assert to_short_url(url) == short


def test_shortening_keeps_the_full_uri_and_moves_every_facet():
    url = "https://example.com/a/very/long/path/indeed?q=1"
    text = f"#one {url} 🎉 @bob.bsky.social"
    shortened, facets = shorten_links(text, detect_facets(text))
    assert shortened == "#one example.com/a/very/long/... 🎉 @bob.bsky.social"
    data = shortened.encode()
    assert [(f.kind, data[f.byte_start : f.byte_end].decode(), f.value) for f in facets] == [
        ("tag", "#one", "one"),
        ("link", "example.com/a/very/long/...", url),
        ("mention", "@bob.bsky.social", "bob.bsky.social"),
    ]


def test_the_limit_is_of_the_text_as_sent():
    url = "https://example.com/" + "a" * 400
    text = "x" * 250 + " " + url
    assert richtext.measure(text) == count("x" * 250 + " example.com/aaaaaaaaaaaa...")
    built = build(text, lambda handle: None)
    assert built.length.graphemes == 278
    assert built.facets[0]["features"][0]["uri"] == url
    with pytest.raises(PostTooLong):
        build("x" * 290 + " example.com/abc", lambda handle: None)  # a bare domain is not shortened


def test_build_prepares_text_as_the_app_does():
    built = build("\n  \nhello\n\n\n\nworld  \n", lambda handle: None)
    assert built.text == "hello\n\nworld"


def test_mentions_resolve_through_the_callable_once_per_handle():
    calls = []

    def resolve(handle):
        calls.append(handle)
        return {"alice.bsky.social": "did:plc:alice"}.get(handle)

    built = build("@alice.bsky.social @nobody.bsky.social @alice.bsky.social", resolve)
    assert calls == ["alice.bsky.social", "nobody.bsky.social"]
    assert built.facets == [
        {
            "$type": "app.bsky.richtext.facet",
            "index": {"byteStart": 0, "byteEnd": 18},
            "features": [{"$type": "app.bsky.richtext.facet#mention", "did": "did:plc:alice"}],
        },
        {
            "$type": "app.bsky.richtext.facet",
            "index": {"byteStart": 39, "byteEnd": 57},
            "features": [{"$type": "app.bsky.richtext.facet#mention", "did": "did:plc:alice"}],
        },
    ]
    assert built.unresolved_mentions == ("nobody.bsky.social",)


@pytest.mark.parametrize("answer", [None, "", "not a did", RuntimeError("PDS down")])
def test_a_mention_that_does_not_resolve_stays_text(answer):
    def resolve(handle):
        if isinstance(answer, Exception):
            raise answer
        return answer

    built = build("hi @alice.bsky.social #tag", resolve)
    assert built.text == "hi @alice.bsky.social #tag"
    assert [f["features"][0]["$type"] for f in built.facets] == ["app.bsky.richtext.facet#tag"]
    assert built.unresolved_mentions == ("alice.bsky.social",)


def test_a_post_too_long_is_refused_before_any_handle_is_resolved():
    def resolve(handle):
        raise AssertionError("no lookup for a post that cannot be sent")

    with pytest.raises(PostTooLong):
        build("@alice.bsky.social " + "a" * 300, resolve)


def test_link_and_tag_records():
    built = build("read https://x.org #news", lambda handle: None)
    assert built.text == "read x.org #news"
    assert built.facets == [
        {
            "$type": "app.bsky.richtext.facet",
            "index": {"byteStart": 5, "byteEnd": 10},
            "features": [{"$type": "app.bsky.richtext.facet#link", "uri": "https://x.org"}],
        },
        {
            "$type": "app.bsky.richtext.facet",
            "index": {"byteStart": 11, "byteEnd": 16},
            "features": [{"$type": "app.bsky.richtext.facet#tag", "tag": "news"}],
        },
    ]


def test_langs():
    assert normalize_langs(["en", "pt-br", "zh_hant", "EN"], None) == ["en", "pt-BR", "zh-Hant"]
    assert normalize_langs([], "de") == ["de"]
    assert normalize_langs(None, "") == []
    assert normalize_langs(["x-klingon", "en-US-x-twain"], None) == ["x-klingon", "en-US-x-twain"]
    with pytest.raises(InvalidLanguage, match="at most 3"):
        normalize_langs(["en", "de", "fr", "es"], None)
    with pytest.raises(InvalidLanguage, match="'english!' is not a language tag"):
        normalize_langs(["english!"], None)


def test_default_lang(settings):
    settings.LANGUAGE_CODE = "fr"
    assert default_lang("pt-br") == "pt-BR"
    assert default_lang(None) == "fr"
    assert default_lang("not a tag") == "fr"
    settings.INTEGRATIONS_POST_DEFAULT_LANG = "de"
    assert default_lang("pt-br") == "de"


# Property tests. Text is built from clusters whose grapheme count is known by construction, so the reference
# segmentation does not depend on the library under test.

LETTERS = st.text(alphabet="abcdefghijklmnopqrstuvwxyzABCXYZ", min_size=1, max_size=8)
CJK = st.characters(min_codepoint=0x4E00, max_codepoint=0x9FFF)
HANGUL = st.characters(min_codepoint=0xAC00, max_codepoint=0xD7A3)  # precomposed: never joins its neighbour
HEBREW = st.characters(min_codepoint=0x05D0, max_codepoint=0x05EA)
ARABIC = st.characters(min_codepoint=0x0627, max_codepoint=0x064A).filter(lambda c: c.isalpha())
MARKS = st.lists(st.characters(min_codepoint=0x0300, max_codepoint=0x036F), min_size=1, max_size=4).map("".join)
EMOJI = st.sampled_from(["😀", "🎉", "❤️", "👍🏽", FAMILY, "🏳️‍🌈", "🧑🏽‍💻", "👩‍❤️‍👨"])
INDICATORS = st.characters(min_codepoint=0x1F1E6, max_codepoint=0x1F1FF)
FLAGS = st.tuples(INDICATORS, INDICATORS).map("".join)

# (text, graphemes) for one cluster or one word
CLUSTER = st.one_of(
    st.tuples(LETTERS, st.just(None)).map(lambda t: (t[0], len(t[0]))),
    st.tuples(st.sampled_from("aeiouxyz"), MARKS).map(lambda t: (t[0] + t[1], 1)),
    CJK.map(lambda c: (c, 1)),
    HANGUL.map(lambda c: (c, 1)),
    HEBREW.map(lambda c: (c, 1)),
    ARABIC.map(lambda c: (c, 1)),
    EMOJI.map(lambda e: (e, 1)),
    FLAGS.map(lambda f: (f, 1)),
)
URL_PATH = st.lists(st.sampled_from(["a", "b", "x", "1", "é", "日本", "a_(b)", "q?=", "%20"]), max_size=12).map("".join)
LINKS = st.tuples(
    st.sampled_from(["https://", "http://"]), st.sampled_from(["example.com", "bsky.app", "例え.jp"]), URL_PATH
).map(lambda t: f"{t[0]}{t[1]}/{t[2]}")


@st.composite
def posts(draw):
    """A text mixing clusters, links, tags and mentions; its grapheme count and its links, by construction."""
    parts, links, graphemes = [], [], 0
    for _ in range(draw(st.integers(1, 20))):
        kind = draw(st.sampled_from(["cluster", "cluster", "cluster", "link", "tag", "mention"]))
        if kind == "cluster":
            text, n = draw(CLUSTER)
            if parts and text[0] in "aeiouxyzABCXYZ" + "".join(map(chr, range(0x61, 0x7B))):
                text = " " + text  # a letter cluster starts a new word, so no link or tag swallows it
                n += 1
        elif kind == "link":
            text = draw(LINKS)
            links.append(text)
            n = len(text)  # ASCII and single-code-point characters only, plus CJK: one grapheme each
            text, n = f" {text} ", n + 2
        elif kind == "tag":
            word = draw(LETTERS)
            text, n = f" #{word} ", len(word) + 3
        else:
            word = draw(LETTERS).lower()
            text, n = f" @{word}.bsky.social ", len(word) + 15
        parts.append(text)
        graphemes += n
    return "".join(parts), graphemes, links


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(posts())
def test_property_facets_slice_to_their_text_and_counts_match(post):
    text, graphemes, links = post
    assert count(text) == TextLength(graphemes, len(text.encode()))
    facets = detect_facets(text)
    data = text.encode()
    assert [f.value for f in facets if f.kind == "link"] == links
    for facet in facets:
        piece = data[facet.byte_start : facet.byte_end].decode()  # never splits a character
        if facet.kind == "link":
            assert piece == facet.value
        elif facet.kind == "mention":
            assert piece == "@" + facet.value
        else:
            assert piece[1:] == facet.value and piece[0] in "#" + FULLWIDTH_HASH
    for before, after in itertools.pairwise(facets):
        assert before.byte_end <= after.byte_start

    shortened, moved = shorten_links(text, facets)
    sent = shortened.encode()
    for old, new in zip(facets, moved, strict=True):
        piece = sent[new.byte_start : new.byte_end].decode()
        assert new.value == old.value
        visible = data[old.byte_start : old.byte_end].decode()
        assert piece == (to_short_url(old.value) if old.kind == "link" else visible)
    shortened_graphemes = graphemes - sum(len(link) - len(to_short_url(link)) for link in links)
    assert count(shortened) == TextLength(shortened_graphemes, len(sent))


@settings(max_examples=300, deadline=None)
@given(st.text())
def test_property_any_text_gives_facets_on_character_boundaries(text):
    try:
        text.encode()
    except UnicodeEncodeError:
        return
    data = text.encode()
    facets = detect_facets(text)
    for facet in facets:
        assert 0 <= facet.byte_start < facet.byte_end <= len(data)
        data[facet.byte_start : facet.byte_end].decode()
    shortened, moved = shorten_links(text, facets)
    for facet in moved:
        shortened.encode()[facet.byte_start : facet.byte_end].decode()
