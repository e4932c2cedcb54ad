"""A person's path through the pages in headless Chromium: sign in, connect a Bluesky account, see it, disconnect.

Screenshots land in $SKYPORT_SCREENSHOTS (default: a temp dir) so a person can look at them.
"""

import os
import tempfile
from datetime import timedelta
from pathlib import Path

import pytest
from django.db import connections
from django.test import Client
from django.utils import timezone
from playwright.sync_api import expect

from integrations.bluesky import services
from integrations.bluesky.accounts.feed import FeedItem, FeedPage
from integrations.models import Channel, ChannelEvent, IntegrationOption
from tests.bluesky.posts.test_linkcards import site  # noqa: F401 (a fixture)

pytestmark = [pytest.mark.browser, pytest.mark.pds, pytest.mark.django_db(transaction=True)]

CHROMIUM = "/usr/bin/chromium"
SHOTS = Path(os.environ.get("SKYPORT_SCREENSHOTS") or Path(tempfile.gettempdir()) / "skyport-screenshots")


@pytest.fixture
def page(monkeypatch):
    if not Path(CHROMIUM).exists():
        pytest.skip("Debian's chromium is not installed (make test installs it)")
    # Playwright's sync API runs an event loop in this thread; the ORM calls in fixtures are still synchronous.
    monkeypatch.setenv("DJANGO_ALLOW_ASYNC_UNSAFE", "true")
    from playwright.sync_api import sync_playwright

    SHOTS.mkdir(parents=True, exist_ok=True)
    with sync_playwright() as pw:
        browser = pw.chromium.launch(
            executable_path=CHROMIUM,
            args=["--no-sandbox", "--disable-background-networking", "--disable-gpu", "--disable-quic"],
        )
        context = browser.new_context(viewport={"width": 1100, "height": 800})
        yield context.new_page()
        # ORM calls made while Playwright's event loop runs get their own connection (asgiref keys connections
        # by context): close it here, or PostgreSQL refuses to drop the test database at the end of the run.
        connections.close_all()
        browser.close()


def sign_in(page, live_server, username, password):
    page.goto(f"{live_server.url}/app/channels")
    assert "/accounts/login/" in page.url
    page.fill("#id_username", username)
    page.fill("#id_password", password)
    page.click("button[type=submit]")
    page.wait_for_url(f"{live_server.url}/app/channels")


def test_connect_and_disconnect_in_the_browser(page, live_server, use_pds, account, django_user_model):
    django_user_model.objects.create_user("carol", password="carol-password-123")
    use_pds.set_profile(account, "Carol on Bluesky", "Hello from the local PDS")
    sign_in(page, live_server, "carol", "carol-password-123")
    assert page.inner_text(".empty").startswith("No channels yet.")

    page.click("text=Connect Bluesky")
    page.fill("#id_identifier", account.handle)
    page.fill("#id_app_password", "wrong-wrong-wrong-wrong")
    page.click("button:has-text('Connect')")
    assert page.locator(".errorlist").count() == 1
    assert "did not accept that handle and app password" in page.inner_text(".errorlist")
    assert page.input_value("#id_app_password") == ""  # the password is not sent back
    page.screenshot(path=SHOTS / "connect-error.png", full_page=True)

    page.fill("#id_app_password", account.app_passwords[0])
    page.click("button:has-text('Connect')")
    page.wait_for_url(f"{live_server.url}/app/channels")
    assert f"Connected @{account.handle}." in page.inner_text(".messages")
    row = page.locator(".channel").first
    assert "Carol on Bluesky" in row.inner_text()
    assert account.did in row.inner_text()
    assert row.locator(".badge").inner_text() == "Active"
    page.screenshot(path=SHOTS / "channels.png", full_page=True)

    row.locator("a.name").click()
    assert "Connected" in page.inner_text("table.events")
    page.screenshot(path=SHOTS / "channel-detail.png", full_page=True)

    page.click("summary:has-text('Disconnect…')")  # asks first, in place
    expect(page.locator("details.confirm form")).to_contain_text(f"Disconnect @{account.handle}?")
    page.click("details.confirm button:has-text('Disconnect')")
    expect(page.locator(".messages")).to_contain_text("signed out on Bluesky")
    assert page.locator(".badge.disconnected").count() == 1
    page.screenshot(path=SHOTS / "disconnected.png", full_page=True)


def test_admin_settings_page_in_the_browser(page, live_server, use_pds, admin_user):
    page.goto(f"{live_server.url}/admin/login/?next=/admin/")
    page.fill("#id_username", "admin")
    page.fill("#id_password", "password")
    page.click("input[type=submit]")
    page.click("text=API integration settings")
    page.wait_for_url(f"{live_server.url}/admin/api-integration/bluesky")
    assert page.inner_text("#effective-source").startswith("from the environment")

    page.fill("#id_service_url", use_pds.url + "/")
    page.click("input[name=_test]")
    assert "is a PDS" in page.inner_text(".messagelist")
    page.screenshot(path=SHOTS / "admin-test-connection.png", full_page=True)

    page.click("input[name=_save]")
    assert "The Bluesky settings were saved." in page.inner_text(".messagelist")
    assert page.inner_text("#effective-url") == use_pds.url
    assert page.inner_text("#effective-source") == "set on this page"
    page.screenshot(path=SHOTS / "admin-settings.png", full_page=True)


def test_api_docs_render_from_local_files(page, live_server, user):
    requested_hosts = set()
    page.on("request", lambda request: requested_hosts.add(request.url.split("/")[2]))
    client = Client()
    client.force_login(user)  # the docs are for signed-in users; reuse the test client's session in the browser
    cookie = client.cookies["sessionid"]
    page.context.add_cookies([{"name": "sessionid", "value": cookie.value, "url": live_server.url}])
    page.goto(f"{live_server.url}/api/docs/")
    page.wait_for_selector("text=Connect a Bluesky account", timeout=15000)
    assert page.locator(".swagger-ui").count() == 1
    page.screenshot(path=SHOTS / "api-docs.png", full_page=False)
    assert requested_hosts == {live_server.url.split("/")[2]}  # no CDN


def test_every_channel_state_says_what_to_do(page, live_server, user):
    now = timezone.now()
    states = {
        "active": {},
        "expiring": {"refresh_expires_at": now + timedelta(days=3)},
        "degraded": {"status": "degraded", "next_retry_at": now + timedelta(minutes=5), "last_error_code": "pds_error"},
        "needs_reconnection": {"status": "needs_reconnection", "refresh_jwt": "", "access_jwt": ""},
        "deactivated": {"status": "deactivated"},
        "suspended": {"status": "suspended"},
    }
    for index, (name, fields) in enumerate(states.items()):
        values = {
            "access_jwt": "a.b.c",
            "refresh_jwt": "r.s.t",
            "refresh_expires_at": now + timedelta(days=80),
            "display_name": name.replace("_", " ").title(),
            **fields,
        }
        Channel.objects.create(
            user=user,
            did=f"did:plc:state{index}",
            handle=f"{name.replace('_', '-')}.test",
            service_url="https://bsky.social",
            **values,
        )
    client = Client()
    client.force_login(user)
    page.context.add_cookies(
        [{"name": "sessionid", "value": client.cookies["sessionid"].value, "url": live_server.url}]
    )
    page.goto(f"{live_server.url}/app/channels")
    rows = {row.get_attribute("data-channel"): row for row in page.locator(".channel").all()}
    assert len(rows) == len(states)
    text = {Channel.objects.get(pk=pk).handle: row.inner_text() for pk, row in rows.items()}
    assert "Active" in text["active.test"] and "Refresh" in text["active.test"]
    assert "Expiring soon" in text["expiring.test"] and "Refresh now" in text["expiring.test"]
    assert "Temporarily unreachable" in text["degraded.test"] and "Nothing is lost" in text["degraded.test"]
    assert "Needs reconnection" in text["needs-reconnection.test"]
    assert "app-passwords" in text["needs-reconnection.test"] and "Reconnect" in text["needs-reconnection.test"]
    assert "Reactivate" in text["deactivated.test"]
    assert "suspended" in text["suspended.test"]
    page.screenshot(path=SHOTS / "channel-states.png", full_page=True)


def test_admin_channel_pages_show_health_and_events_but_no_token(page, live_server, admin_user, user):
    channel = Channel.objects.create(
        user=user,
        did="did:plc:admin0",
        handle="shown.test",
        service_url="https://bsky.social",
        access_jwt="eyJhbGciOi.access-payload.sig",
        refresh_jwt="eyJhbGciOi.refresh-payload.sig",
        refresh_expires_at=timezone.now() + timedelta(days=80),
        display_name="Shown In Admin",
    )
    ChannelEvent.objects.create(channel=channel, kind="connected")
    ChannelEvent.objects.create(
        channel=channel, kind="refresh_failed", error_code="pds_error", detail="retry after 300 s"
    )
    client = Client()
    client.force_login(admin_user)
    page.context.add_cookies(
        [{"name": "sessionid", "value": client.cookies["sessionid"].value, "url": live_server.url}]
    )
    page.goto(f"{live_server.url}/admin/integrations/channel/")
    listing = page.inner_text("#result_list")
    assert "shown.test" in listing and "Active" in listing
    assert page.locator("select[name=action] option[value=delete_selected]").count() == 0
    page.screenshot(path=SHOTS / "admin-channels.png", full_page=True)
    page.click("text=shown.test")
    detail = page.inner_text("#content")
    assert "Refresh failed" in detail and "pds_error" in detail
    assert "payload" not in page.content()
    page.screenshot(path=SHOTS / "admin-channel.png", full_page=True)


# --- Accessibility and small screens -------------------------------------------------------------------------------
# Every page passes axe-core's WCAG 2.1 A/AA rules and scrolls only vertically, on a phone and on a desktop.

WCAG_21_AA = ["wcag2a", "wcag2aa", "wcag21a", "wcag21aa"]
# Structure rules that axe files under best practice rather than a WCAG tag: one h1, one main, content in landmarks.
STRUCTURE = ["page-has-heading-one", "landmark-one-main", "region", "heading-order", "landmark-unique"]
VIEWPORTS = {"phone": {"width": 375, "height": 812}, "desktop": {"width": 1280, "height": 800}}


@pytest.fixture(scope="session")
def axe_script():
    from tests.support.axe import ensure_installed

    return ensure_installed()


def check_page(page, axe_script, name, viewport) -> list[str]:
    """Audit the page with axe-core, check that it does not scroll sideways, save a screenshot; return problems."""
    page.add_script_tag(path=str(axe_script))  # from the npm install on disk: no CDN
    violations = page.evaluate(
        """async ([tags, rules]) => {
            const wcag = await axe.run(document, {runOnly: {type: 'tag', values: tags}});
            const structure = await axe.run(document, {runOnly: {type: 'rule', values: rules}});
            return wcag.violations.concat(structure.violations).map(v => ({id: v.id, impact: v.impact, help: v.help,
                nodes: v.nodes.map(n => n.target.join(' ') + ' (' + n.failureSummary.replace(/\\s+/g, ' ') + ')')}));
        }""",
        [WCAG_21_AA, STRUCTURE],
    )
    problems = [
        f"{name} @ {viewport}: {v['id']} ({v['impact']}): {v['help']}\n    " + "\n    ".join(v["nodes"])
        for v in violations
    ]
    scroll_width, inner_width = page.evaluate("[document.scrollingElement.scrollWidth, window.innerWidth]")
    if scroll_width > inner_width:
        problems.append(f"{name} @ {viewport}: scrolls sideways ({scroll_width} px wide in {inner_width} px)")
    page.screenshot(path=SHOTS / f"a11y-{name}-{viewport}.png", full_page=True)
    return problems


def seed_channels(user):
    """Channels in every health state, one with a long handle and DID, one disconnected, and a few events."""
    now = timezone.now()
    states = {
        "active": {},
        "expiring": {"refresh_expires_at": now + timedelta(days=3)},
        "degraded": {"status": "degraded", "next_retry_at": now + timedelta(minutes=5), "last_error_code": "pds_error"},
        "needs_reconnection": {"status": "needs_reconnection", "refresh_jwt": "", "access_jwt": ""},
        "deactivated": {"status": "deactivated"},
        "suspended": {"status": "suspended"},
        "disconnected": {"status": "disconnected", "refresh_jwt": "", "access_jwt": ""},
        "moved": {
            "status": "needs_reconnection",
            "last_error_code": "account_moved",
            "pds_endpoint": "https://pds.a-new-home-for-this-account.example.net",
            "refresh_jwt": "",
            "access_jwt": "",
        },
    }
    channels = []
    for index, (name, fields) in enumerate(states.items()):
        values = {
            "access_jwt": "a.b.c",
            "refresh_jwt": "r.s.t",
            "refresh_expires_at": now + timedelta(days=80),
            "refreshed_at": now - timedelta(hours=1),
            "display_name": name.replace("_", " ").title(),
            "description": "A channel in the state " + name,
            **fields,
        }
        handle = f"{name.replace('_', '-')}.test"
        if name == "active":
            handle = "a-rather-long-handle-that-keeps-going.on-a-self-hosted-pds.example.com"
            values["handle_verified"] = False  # shown as such, with its explanation
        channels.append(
            Channel.objects.create(
                user=user,
                did=f"did:plc:ewvi7nxzyoun6zhxrhs64oiz{index}",
                handle=handle,
                service_url="https://bsky.social",
                **values,
            )
        )
    ChannelEvent.objects.create(channel=channels[0], kind="connected")
    ChannelEvent.objects.create(
        channel=channels[0], kind="refresh_failed", error_code="pds_error", detail="retry after 300 s"
    )
    return channels


def fake_feed(channel, cursor=None, limit=None):
    """A page of posts with every marker, for seeded channels whose tokens no PDS would take (no call leaves)."""
    did = channel.did
    items = [
        FeedItem(
            uri=f"at://{did}/app.bsky.feed.post/3k{i}",
            cid="bafy",
            text=text,
            created_at=timezone.now() if i else None,
            is_reply=i == 1,
            is_quote=i == 2,
            has_images=i == 2,
            url=f"https://bsky.app/profile/{did}/post/3k{i}",
            published_by_skyport=i != 1,
        )
        for i, text in enumerate(["A post with a long link https://example.com/" + "x" * 80, "A reply", ""])
    ]
    return FeedPage(items=items, cursor="3k2")


def log_in_browser(page, live_server, user):
    client = Client()
    client.force_login(user)
    page.context.clear_cookies()
    page.context.add_cookies(
        [{"name": "sessionid", "value": client.cookies["sessionid"].value, "url": live_server.url}]
    )


@pytest.mark.parametrize("viewport", VIEWPORTS)
def test_every_page_is_accessible_and_fits_the_screen(
    page, live_server, axe_script, viewport, user, admin_user, monkeypatch
):
    monkeypatch.setattr(services, "channel_feed", fake_feed)
    page.set_viewport_size(VIEWPORTS[viewport])
    problems = []

    page.goto(f"{live_server.url}/app/channels")
    assert "/accounts/login/" in page.url
    problems += check_page(page, axe_script, "login", viewport)

    log_in_browser(page, live_server, user)
    page.goto(f"{live_server.url}/app/channels")
    assert page.locator(".empty").count() == 1
    problems += check_page(page, axe_script, "channels-empty", viewport)

    page.goto(f"{live_server.url}/app/channels/connect/bluesky")
    problems += check_page(page, axe_script, "connect", viewport)
    page.click("form.stacked button[type=submit]")  # empty: the form's own errors, no call to a PDS
    assert page.locator(".errorlist").count() >= 1
    problems += check_page(page, axe_script, "connect-error", viewport)

    channels = seed_channels(user)
    page.goto(f"{live_server.url}/app/channels")
    assert page.locator(".channel").count() == len(channels)
    problems += check_page(page, axe_script, "channels", viewport)

    page.goto(f"{live_server.url}/app/channels/{channels[0].pk}")
    assert page.inner_text("#handle-unverified") == "handle not verified"
    problems += check_page(page, axe_script, "channel", viewport)
    page.goto(f"{live_server.url}/app/channels/{channels[3].pk}")  # needs reconnection: advice with a link
    problems += check_page(page, axe_script, "channel-reconnect", viewport)
    page.goto(f"{live_server.url}/app/channels/{channels[-1].pk}")  # moved to another server: advice names it
    assert "moved to https://pds.a-new-home-for-this-account.example.net" in page.inner_text(".advice")
    problems += check_page(page, axe_script, "channel-moved", viewport)

    IntegrationOption.objects.create(key="bluesky_integration_status", value="disabled")
    page.goto(f"{live_server.url}/app/channels")
    expect(page.locator(".notice")).to_contain_text("switched Bluesky off")
    problems += check_page(page, axe_script, "channels-switched-off", viewport)
    page.goto(f"{live_server.url}/app/channels/connect/bluesky")
    problems += check_page(page, axe_script, "connect-switched-off", viewport)

    log_in_browser(page, live_server, admin_user)
    page.goto(f"{live_server.url}/admin/api-integration/bluesky")
    problems += check_page(page, axe_script, "admin-settings", viewport)
    page.goto(f"{live_server.url}/admin/integrations/channel/")
    problems += check_page(page, axe_script, "admin-channels", viewport)
    page.goto(f"{live_server.url}/admin/integrations/channel/{channels[0].pk}/change/")
    problems += check_page(page, axe_script, "admin-channel", viewport)

    assert not problems, "\n".join(problems)


# --- Posts: the composer and the post list ---------------------------------------------------------------------------
def tab_to(page, selector, limit=60):
    """Press Tab until the element matching `selector` has focus (proof it is reachable by keyboard alone)."""
    target = page.locator(selector)
    for _ in range(limit):
        page.keyboard.press("Tab")
        if target.evaluate("el => el === document.activeElement"):
            return
    raise AssertionError(f"{selector} is not reachable with Tab")


def small_png(tmp_path):
    from tests.api.test_api_posts import png_bytes

    path = tmp_path / "square.png"
    path.write_bytes(png_bytes())
    return path


def test_the_composer_works_with_a_keyboard_alone(
    page, live_server, user, channel, use_pds, account, settings, tmp_path
):
    from tests.bluesky.posts.test_publishing import records

    settings.MEDIA_ROOT = tmp_path / "media"
    log_in_browser(page, live_server, user)
    page.goto(f"{live_server.url}/app/posts/new")
    assert page.locator(f"#channel-{channel.pk}").is_checked()  # the only channel that can publish is chosen

    tab_to(page, "#id_parts-0-text")
    page.keyboard.type("Hello from the keyboard: https://example.com/a/rather/long/path/to/something #skyport")
    counter = page.locator("#parts-0-counter")
    assert counter.inner_text() == "61 of 300 characters"  # the link counts as it is sent, shortened
    status = page.locator("#composer-status")
    assert status.get_attribute("aria-live") == "polite"
    page.wait_for_function("document.querySelector('#composer-status').textContent === '61 of 300 characters'")

    page.set_input_files("#id_parts-0-image_1", small_png(tmp_path))  # the file picker is the system's own dialog
    tab_to(page, "#id_parts-0-alt_1")
    page.keyboard.type("A pink square")
    assert page.locator("#id_parts-0-image_2").is_visible()  # the next slot appears once one is used

    tab_to(page, "[data-add-part]")
    page.keyboard.press("Enter")
    assert page.locator("[data-part]").count() == 2
    assert page.evaluate("document.activeElement.id") == "id_parts-1-text"  # focus moves into the new part
    page.wait_for_function("document.querySelector('#composer-status').textContent === 'Part 2 added.'")
    page.keyboard.type("The second part")
    page.wait_for_function("document.querySelector('#composer-status').textContent.startsWith('Part 2:')")
    assert page.input_value("input[name=parts-TOTAL_FORMS]") == "2"

    # A third part, removed again by keyboard: the parts stay numbered 1, 2.
    page.locator("[data-add-part]").focus()
    page.keyboard.press("Enter")
    page.keyboard.type("a mistake")
    tab_to(page, "[data-part]:nth-child(3) [data-remove-part]")
    page.keyboard.press("Enter")
    assert page.locator("[data-part]").count() == 2
    assert page.input_value("input[name=parts-TOTAL_FORMS]") == "2"
    assert page.evaluate("document.activeElement.id") == "id_parts-1-text"

    tab_to(page, "button[value=publish]:not([tabindex])")
    page.keyboard.press("Enter")
    page.wait_for_url(f"{live_server.url}/app/posts")
    assert "Published on @" in page.inner_text(".messages")
    texts = sorted(r["value"]["text"] for r in records(use_pds, account.did))
    assert texts == ["Hello from the keyboard: example.com/a/rather/lon... #skyport", "The second part"]
    assert page.locator("a:has-text('View on Bluesky')").count() == 2


def test_the_live_counter_counts_what_the_server_counts(page, live_server, user, channel, settings, tmp_path):
    from integrations.bluesky.posts import richtext

    samples = [
        "plain",
        "👩‍👩‍👧‍👦 family, 🇫🇷 flag, e\u0301 combining",
        "\n\n  leading blank lines and trailing space   \n\n",
        "too\n\n\n\n\nmany lines",
        "see https://example.com/a/rather/long/path?query=1#frag, and (https://x.org/a_(b)).",
        "short https://example.com/ and HTTPS://EXAMPLE.COM/LONG/LONG/LONG/PATH and bare example.com/long/long/path",
        "https://例え.jp/パス/とても/長い/パス @alice.test #tag",
        "é" * 1400 + " https://example.com/" + "x" * 40,
    ]
    log_in_browser(page, live_server, user)
    page.goto(f"{live_server.url}/app/posts/new")
    for text in samples:
        length = richtext.measure(text)
        shown = page.evaluate("text => window.skyportMeasure(text)", text)
        assert (shown["graphemes"], shown["bytes"]) == (length.graphemes, length.bytes), text
    page.fill("#id_parts-0-text", "é" * 1400)
    assert page.inner_text("#parts-0-counter") == "1,400 of 300 characters · 2,800 of 3,000 bytes".replace(
        "1,400 of", "Too long: 1,400 of"
    )


def seed_posts(user, channel):
    """A published thread, a failed post and a waiting one (newest first on the page)."""
    from integrations.bluesky.posts.accept import PartRequest, accept
    from integrations.bluesky.posts.submit import publish
    from integrations.models import Post

    thread = accept(
        user,
        channel,
        [PartRequest("A published thread, part one #skyport"), PartRequest("and part two")],
    )
    publish(thread.pk, claimed=thread)
    failed = accept(user, channel, [PartRequest("This one failed " + "long words " * 12)])
    Post.objects.filter(pk=failed.pk).update(
        status="failed",
        attempts=1,
        lease_until=None,
        error_code="channel_not_ready",
        error_message="This channel cannot publish right now: @alice.test: Needs reconnection.",
    )
    waiting = accept(user, channel, [PartRequest("This one waits for the PDS")])
    Post.objects.filter(pk=waiting.pk).update(
        status="waiting",
        attempts=2,
        lease_until=None,
        error_code="pds_unavailable",
        error_message="Bluesky did not answer in time. Nothing is lost.",
        next_attempt_at=timezone.now() + timedelta(minutes=5),
    )


@pytest.mark.parametrize("viewport", VIEWPORTS)
def test_the_post_pages_are_accessible_and_fit_the_screen(
    page, live_server, axe_script, viewport, user, channel, settings, tmp_path
):
    settings.MEDIA_ROOT = tmp_path / "media"
    page.set_viewport_size(VIEWPORTS[viewport])
    Channel.objects.create(
        user=user,
        did="did:plc:ewvi7nxzyoun6zhxrhs64oiz9",
        handle="a-rather-long-handle-that-keeps-going.on-a-self-hosted-pds.example.com",
        service_url="https://bsky.social",
        status="needs_reconnection",
    )
    log_in_browser(page, live_server, user)
    problems = []

    page.goto(f"{live_server.url}/app/posts")
    assert page.locator(".empty").count() == 1
    problems += check_page(page, axe_script, "posts-empty", viewport)

    page.goto(f"{live_server.url}/app/posts/new")
    assert page.locator("input[name=channel][disabled]").count() == 1
    problems += check_page(page, axe_script, "compose", viewport)

    page.fill("#id_parts-0-text", "x" * 310)  # too long: the server's error, in words
    page.click("button[value=publish]:not([tabindex])")
    assert "310 characters of 300" in page.inner_text(".errorlist")
    problems += check_page(page, axe_script, "compose-error", viewport)

    page.fill("#id_parts-0-text", "Hi @alice.test, read https://example.com/a/rather/long/path/to/something #skyport")
    page.set_input_files("#id_parts-0-image_1", small_png(tmp_path))
    page.fill("#id_parts-0-alt_1", "A pink square")
    page.click("[data-add-part]")
    page.fill("#id_parts-1-text", "The second part of the thread")
    problems += check_page(page, axe_script, "compose-thread", viewport)

    page.click("button[value=preview]:not([tabindex])")
    assert page.locator(".preview").count() == 2
    assert page.locator(".preview img[alt='A pink square']").count() == 1
    problems += check_page(page, axe_script, "compose-preview", viewport)

    seed_posts(user, channel)
    page.goto(f"{live_server.url}/app/posts")
    assert page.locator(".post").count() == 3
    problems += check_page(page, axe_script, "posts", viewport)
    page.locator(".post >> nth=2").locator("summary").click()  # Delete asks first (no script needed)
    assert page.locator(".post >> nth=2").locator("text=from Bluesky?").is_visible()
    problems += check_page(page, axe_script, "posts-delete", viewport)

    assert not problems, "\n".join(problems)


def test_the_composer_works_without_javascript(page, live_server, user, channel, use_pds, account, settings, tmp_path):
    from tests.bluesky.posts.test_publishing import records

    settings.MEDIA_ROOT = tmp_path / "media"
    context = page.context.browser.new_context(java_script_enabled=False, viewport={"width": 375, "height": 812})
    page = context.new_page()
    log_in_browser(page, live_server, user)
    page.goto(f"{live_server.url}/app/posts/new")
    page.fill("#id_parts-0-text", "Without a script https://example.com/a/rather/long/path/to/something")
    page.set_input_files("#id_parts-0-image_1", small_png(tmp_path))
    page.click("[data-add-part]")  # the server adds the part; the image is stored and kept
    assert page.locator("[data-part]").count() == 2
    assert page.locator("#id_parts-0-alt_1").count() == 1 and page.locator(".slot.filled img").count() == 1
    page.fill("#id_parts-1-text", "part two")
    page.click("button[value=preview]:not([tabindex])")
    assert "Every image needs alt text" in page.inner_text("#id_parts-0-alt_1_error")  # said next to the field
    page.fill("#id_parts-0-alt_1", "A pink square")
    page.click("button[value=preview]:not([tabindex])")
    assert page.locator(".preview").count() == 2
    assert "example.com/a/rather/lon..." in page.inner_text(".preview-text >> nth=0")
    page.screenshot(path=SHOTS / "compose-no-js-phone.png", full_page=True)
    page.click("button[value=publish]:not([tabindex])")
    page.wait_for_url(f"{live_server.url}/app/posts")
    assert "Published on @" in page.inner_text(".messages")
    assert len(records(use_pds, account.did)) == 2
    context.close()


@pytest.mark.parametrize("viewport", VIEWPORTS)
def test_a_link_card_is_edited_removed_and_brought_back_in_the_composer(
    page,
    live_server,
    axe_script,
    viewport,
    user,
    channel,
    use_pds,
    account,
    settings,
    tmp_path,
    site,  # noqa: F811
):
    from tests.bluesky.posts.test_linkcards import OG_PAGE, png
    from tests.bluesky.posts.test_publishing import records

    settings.MEDIA_ROOT = tmp_path / "media"
    settings.INTEGRATIONS_LINK_CARDS = True
    site.routes["/og"] = OG_PAGE
    site.routes["/img/card.png"] = (200, {"Content-Type": "image/png"}, png(1200, 630))
    page.set_viewport_size(VIEWPORTS[viewport])
    log_in_browser(page, live_server, user)
    problems = []

    # The card appears as the link is typed (the script asks the server), and its title is edited.
    page.goto(f"{live_server.url}/app/posts/new")
    page.fill("#id_parts-0-text", f"Read this: {site.url}/og #skyport")
    page.wait_for_selector("[data-card-box]", state="visible")
    assert page.input_value("#id_parts-0-card_title") == "Skyport & friends"
    assert page.input_value("#id_parts-0-card_description") == "Publishing to Bluesky, exactly once."
    page.wait_for_function("document.querySelector('[data-card-thumb]').complete")
    assert page.evaluate("document.querySelector('[data-card-thumb]').naturalWidth") > 0
    problems += check_page(page, axe_script, "compose-card", viewport)
    page.fill("#id_parts-0-card_title", "Edited in the browser")
    assert page.input_value("input[name=parts-0-card]") == "edited"
    page.click("button[value=publish]:not([tabindex])")
    page.wait_for_url(f"{live_server.url}/app/posts")
    assert "Published on @" in page.inner_text(".messages")
    [record] = records(use_pds, account.did)
    external = record["value"]["embed"]["external"]
    assert (external["title"], external["description"]) == (
        "Edited in the browser",
        "Publishing to Bluesky, exactly once.",
    )

    # "Remove card" in place, then scheduled without it.
    page.goto(f"{live_server.url}/app/posts/new")
    page.fill("#id_parts-0-text", f"Later, without a card: {site.url}/og")
    page.wait_for_selector("[data-card-box]", state="visible")
    page.click("[data-card-remove]")
    assert page.locator("[data-card-box]").is_hidden() and page.locator("[data-card-removed]").is_visible()
    assert page.evaluate("document.activeElement.hasAttribute('data-card-restore')")
    page.wait_for_function("document.querySelector('#composer-status').textContent === 'Link card removed.'")
    page.fill("#id_scheduled_at", (timezone.now() + timedelta(days=2)).strftime("%Y-%m-%dT%H:%M"))
    page.click("button[value=publish]:not([tabindex])")
    page.wait_for_url(f"{live_server.url}/app/posts")
    assert "Scheduled on @" in page.inner_text(".messages")
    problems += check_page(page, axe_script, "posts-scheduled", viewport)

    # Edit it: the removed card stays removed until it is brought back; the card is saved with the new title.
    page.click("a:has-text('Edit')")
    page.wait_for_selector("h1:has-text('Edit a scheduled post')")
    assert page.input_value("#id_parts-0-text") == f"Later, without a card: {site.url}/og"
    assert page.locator("[data-card-removed]").is_visible()
    problems += check_page(page, axe_script, "edit-scheduled", viewport)
    page.click("[data-card-restore]")
    page.wait_for_selector("[data-card-box]", state="visible")
    page.wait_for_function("document.querySelector('#id_parts-0-card_title').value === 'Skyport & friends'")
    problems += check_page(page, axe_script, "edit-scheduled-card", viewport)
    page.fill("#id_parts-0-card_title", "Brought back, retitled")
    page.click("button[value=publish]:not([tabindex])")
    page.wait_for_url(f"{live_server.url}/app/posts")
    assert "Saved the post scheduled on @" in page.inner_text(".messages")
    from integrations.models import Post

    scheduled = Post.objects.get(status=Post.Status.SCHEDULED)
    assert scheduled.parts.get().card["title"] == "Brought back, retitled"
    assert not problems, "\n".join(problems)


@pytest.mark.parametrize("viewport", VIEWPORTS)
def test_an_agency_finds_a_channel_in_the_composer_and_pages_through_its_lists(
    page, live_server, axe_script, viewport, user
):
    """A user with many channels: the composer lists 20 and finds the others as they type (the list changes in
    place, and the count is announced); the channel and post lists go on a page at a time."""
    from playwright.sync_api import expect

    from tests.test_pagination import make_channels, make_posts

    page.set_viewport_size(VIEWPORTS[viewport])
    channels = make_channels(user, 57)
    make_posts(user, channels[0], 25)
    log_in_browser(page, live_server, user)
    problems = []

    page.goto(f"{live_server.url}/app/posts/new")
    radios = page.locator("[data-channel-choices] input[type=radio]")
    expect(radios).to_have_count(20)
    expect(page.locator("[data-channel-find]")).to_be_hidden()  # the script searches as one types
    problems += check_page(page, axe_script, "compose-many-channels", viewport)
    expect(page.locator(f"#channel-{channels[0].pk}")).to_be_checked()  # the one last used, preselected
    page.locator("#channel-query").fill("page0042")
    expect(radios).to_have_count(2)  # the channel found, and the one chosen so far, kept
    expect(page.locator(f"#channel-{channels[42].pk}")).to_be_visible()
    expect(page.locator(f"#channel-{channels[0].pk}")).to_be_checked()
    expect(page.locator("[data-status]")).to_contain_text("2 channels shown for “page0042”")
    page.locator("#channel-query").press("Enter")  # searches; never previews nor publishes
    expect(page).to_have_url(f"{live_server.url}/app/posts/new")
    page.locator(f"label[for=channel-{channels[42].pk}]").click()
    expect(page.locator(f"#channel-{channels[42].pk}")).to_be_checked()
    problems += check_page(page, axe_script, "compose-channel-found", viewport)

    page.goto(f"{live_server.url}/app/channels")
    expect(page.locator(".channel")).to_have_count(50)
    problems += check_page(page, axe_script, "channels-paged", viewport)
    page.get_by_role("link", name="More channels").click()
    expect(page.locator(".channel")).to_have_count(7)

    page.goto(f"{live_server.url}/app/posts")
    expect(page.locator(".post")).to_have_count(20)
    page.get_by_role("link", name="Older posts").click()
    expect(page.locator(".post")).to_have_count(5)
    problems += check_page(page, axe_script, "posts-older", viewport)
    assert not problems, "\n".join(problems)


def test_a_channel_chosen_while_a_search_is_answered_stays_chosen(page, live_server, user):
    """The list a search brings replaces the one on the page: a channel clicked meanwhile must not be lost."""
    from playwright.sync_api import expect

    from tests.test_pagination import make_channels

    channels = make_channels(user, 25)
    log_in_browser(page, live_server, user)
    page.goto(f"{live_server.url}/app/posts/new")
    held = []
    page.route("**/app/posts/new/channels?*", lambda route: held.append(route))  # answered after the click below
    with page.expect_request("**/app/posts/new/channels?*"):
        page.locator("#channel-query").fill("page001")
    page.locator(f"label[for=channel-{channels[3].pk}]").click()
    expect(page.locator(f"#channel-{channels[3].pk}")).to_be_checked()
    assert held  # the answer is still held back
    page.unroute("**/app/posts/new/channels?*")  # lets the held request go on, and those after it
    radios = page.locator("[data-channel-choices] input[type=radio]")
    expect(radios).to_have_count(11)  # page0010 to page0019, and the one chosen
    expect(page.locator(f"#channel-{channels[3].pk}")).to_be_checked()
    expect(page.locator("[data-status]")).to_contain_text("11 channels shown for “page001”")


def test_with_many_channels_a_missing_channel_puts_the_focus_on_a_channel_not_on_the_search(page, live_server, user):
    from playwright.sync_api import expect

    from tests.test_pagination import make_channels

    channels = make_channels(user, 25)
    log_in_browser(page, live_server, user)
    page.goto(f"{live_server.url}/app/posts/new")
    page.locator("#id_parts-0-text").fill("Hello")
    page.get_by_role("button", name="Publish").click()
    expect(page.locator("#channel-error")).to_contain_text("Choose the channel to publish on.")
    expect(page.locator(f"#channel-{channels[0].pk}")).to_be_focused()
