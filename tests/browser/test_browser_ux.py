"""What a person sees and does in the pages (headless Chromium, against the real local PDS): one clock, replies and
quotes from the composer and the channel feed, confirmations, the composer's enhancements, and the small things.

Every wait is Playwright's auto-retrying `expect`. Screenshots land beside the other browser tests'
($SKYPORT_SCREENSHOTS).
"""

import re
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from django.utils import timezone
from playwright.sync_api import expect

from integrations.bluesky import services
from integrations.bluesky.posts.accept import PartRequest, accept
from integrations.bluesky.posts.submit import publish
from integrations.models import Channel, IntegrationOption, Post
from tests.bluesky.posts import test_linkcards
from tests.bluesky.posts.test_animated_images import animation
from tests.bluesky.posts.test_publishing import records
from tests.browser import test_browser
from tests.browser.test_browser import SHOTS, VIEWPORTS, check_page, fake_feed, log_in_browser, small_png, tab_to
from tests.web import test_replies_web

# Fixtures shared with the other browser tests (assigned, so a test's parameter of the same name is no redefinition).
page = test_browser.page
axe_script = test_browser.axe_script
site = test_linkcards.site
target = test_replies_web.target

pytestmark = [pytest.mark.browser, pytest.mark.pds, pytest.mark.django_db(transaction=True)]


def tokyo_evening() -> datetime:
    day = (timezone.now() + timedelta(days=2)).astimezone(ZoneInfo("Asia/Tokyo")).date()
    return datetime(day.year, day.month, day.day, 23, 7, tzinfo=ZoneInfo("Asia/Tokyo"))


def second_channel(user, handle="second.test"):
    """Another channel that can publish (its tokens are never used: nothing is sent through it)."""
    return Channel.objects.create(
        user=user,
        did="did:plc:ewvi7nxzyoun6zhxrhs64oiz8",
        handle=handle,
        service_url="https://bsky.social",
        access_jwt="a.b.c",
        refresh_jwt="r.s.t",
        refresh_expires_at=timezone.now() + timedelta(days=80),
        display_name="Second Channel",
    )


# --- Times ----------------------------------------------------------------------------------------------------------
def test_every_time_is_on_the_browsers_clock_from_the_first_page_after_signing_in(page, live_server, user, channel):
    when = tokyo_evening()
    accept(user, channel, [PartRequest("Late in Tokyo", link_card=None)], scheduled_at=when)
    context = page.context.browser.new_context(timezone_id="Asia/Tokyo", viewport={"width": 1280, "height": 800})
    tokyo = context.new_page()
    tokyo.goto(f"{live_server.url}/app/posts")  # the sign-in page tells the server the browser's zone
    tokyo.fill("#id_username", "alice")
    tokyo.fill("#id_password", "alice-password-123")
    tokyo.click("button[type=submit]")
    expect(tokyo.locator(".clock")).to_have_text("Times in Asia/Tokyo")
    day = tokyo.locator(f"[data-scheduled-day='{when:%Y-%m-%d}']")
    expect(day.locator("[data-scheduled-time]")).to_have_text("23:07")  # not 14:07, the UTC time
    expect(tokyo.locator("h3.day")).to_have_text(f"{when:%A, %Y-%m-%d}")
    tokyo.screenshot(path=SHOTS / "times-tokyo-posts.png", full_page=True)

    # Scheduling from Tokyo: the field is read on the same clock, and the list shows what was typed.
    tokyo.goto(f"{live_server.url}/app/posts/new")
    expect(tokyo.locator("#id_scheduled_at_helptext")).to_contain_text("Times are in Asia/Tokyo.")
    tokyo.fill("#id_parts-0-text", "Also late")
    later = when + timedelta(days=1, minutes=30)
    tokyo.fill("#id_scheduled_at", f"{later:%Y-%m-%dT%H:%M}")
    tokyo.click("button[value=publish]")
    expect(tokyo.locator(".messages")).to_contain_text(f"for {later:%Y-%m-%d} 23:37.")
    expect(tokyo.locator(f"[data-scheduled-day='{later:%Y-%m-%d}'] [data-scheduled-time]")).to_have_text("23:37")
    assert Post.objects.get(parts__text="Also late").scheduled_at == later
    context.close()


# --- The composer ---------------------------------------------------------------------------------------------------
def test_the_last_used_channel_is_chosen_and_a_refused_submission_puts_focus_on_the_first_error(
    page, live_server, user, channel
):
    other = second_channel(user)
    Post.objects.create(user=user, channel=other, status=Post.Status.PUBLISHED, published_at=timezone.now())
    log_in_browser(page, live_server, user)
    page.goto(f"{live_server.url}/app/posts/new")
    expect(page.locator(f"#channel-{other.pk}")).to_be_checked()  # the last used of the two that can publish
    page.check(f"#channel-{channel.pk}")
    page.fill("#id_parts-0-text", "")
    page.click("button[value=publish]")
    expect(page.locator("#id_parts-0-text_error")).to_contain_text("Write something or add an image.")
    expect(page.locator("#id_parts-0-text")).to_be_focused()
    expect(page.locator(f"#channel-{channel.pk}")).to_be_checked()  # the choice survives the refusal

    page.fill("#id_parts-0-text", "x" * 301)
    page.fill("#id_langs", "not a language, nor this, nor that, nor four")
    page.click("button[value=publish]")
    expect(page.locator("#id_parts-0-text")).to_be_focused()  # the first of two errors, in the page's order


def test_the_button_says_schedule_thumbnails_show_before_sending_and_alt_text_is_asked_for_in_the_browser(
    page, live_server, user, channel, settings, tmp_path
):
    settings.MEDIA_ROOT = tmp_path / "media"
    log_in_browser(page, live_server, user)
    page.goto(f"{live_server.url}/app/posts/new")
    publish = page.locator("button[value=publish]")
    expect(publish).to_have_text("Publish")
    page.fill("#id_scheduled_at", (timezone.now() + timedelta(days=1)).strftime("%Y-%m-%dT%H:%M"))
    expect(publish).to_have_text("Schedule")
    page.fill("#id_scheduled_at", "")
    expect(publish).to_have_text("Publish")
    later = accept(
        user,
        channel,
        [PartRequest("Later", link_card=None)],
        scheduled_at=timezone.now() + timedelta(days=1),
    )
    page.goto(f"{live_server.url}/app/posts/{later.pk}/edit")
    expect(page.locator("button[value=publish]")).to_have_text("Save changes")  # an edit saves, whatever its time
    page.goto(f"{live_server.url}/app/posts/new")

    # All four slots can be reached with the keyboard at once; an image shows as soon as it is chosen.
    for slot in range(1, 5):
        tab_to(page, f"#id_parts-0-image_{slot}")
    expect(page.locator("#id_parts-0-alt_1")).to_be_hidden()  # no alt text field for a free slot
    page.set_input_files("#id_parts-0-image_2", small_png(tmp_path))
    thumb = page.locator("[data-slot]:nth-child(2) [data-thumb]")
    expect(thumb).to_be_visible()
    page.wait_for_function("document.querySelector('[data-slot]:nth-child(2) [data-thumb]').naturalWidth > 0")
    expect(page.locator("#id_parts-0-alt_2")).to_be_visible()
    page.screenshot(path=SHOTS / "compose-thumbnail.png", full_page=True)

    page.fill("#id_parts-0-text", "A picture")
    page.click("button[value=preview]:not([tabindex])")  # no alt text: the browser says so, nothing is sent
    expect(page.locator("#id_parts-0-alt_2_client_error")).to_have_text(
        "Every image needs alt text: a short description of it for people who cannot see it."
    )
    expect(page.locator("#id_parts-0-alt_2")).to_be_focused()
    expect(page.locator("#id_parts-0-alt_2")).to_have_attribute("aria-invalid", "true")
    assert "/app/posts/new" in page.url and not page.locator("[data-preview]").count()
    page.fill("#id_parts-0-alt_2", "A pink square")
    page.click("button[value=preview]:not([tabindex])")
    expect(page.locator(".preview img[alt='A pink square']")).to_have_count(1)

    # A file chosen by mistake can be dropped before anything is sent.
    page.set_input_files("#id_parts-0-image_3", small_png(tmp_path))
    page.click("[data-slot]:nth-child(3) [data-clear]")
    expect(page.locator("[data-slot]:nth-child(3) [data-thumb]")).to_be_hidden()
    expect(page.locator("#id_parts-0-image_3")).to_be_focused()
    assert page.evaluate("document.querySelector('#id_parts-0-image_3').files.length") == 0


@pytest.mark.parametrize("viewport", VIEWPORTS)
def test_a_three_part_thread_keeps_the_page_compact(page, live_server, user, channel, viewport, settings, tmp_path):
    settings.MEDIA_ROOT = tmp_path / "media"
    page.set_viewport_size(VIEWPORTS[viewport])
    log_in_browser(page, live_server, user)
    page.goto(f"{live_server.url}/app/posts/new")
    page.fill("#id_parts-0-text", "One " * 20)
    page.set_input_files("#id_parts-0-image_1", small_png(tmp_path))
    page.fill("#id_parts-0-alt_1", "A pink square")
    for index in (1, 2):
        page.click("[data-add-part]")
        page.fill(f"#id_parts-{index}-text", f"Part {index + 1} of the thread")
    expect(page.locator("[data-part]")).to_have_count(3)
    height = page.evaluate("document.documentElement.scrollHeight")
    page.screenshot(path=SHOTS / f"compose-three-parts-{viewport}.png", full_page=True)
    # It was about 2,100 px at 1280 px wide (2,350 on a phone) before the slots and parts were made compact.
    assert height < {"desktop": 1400, "phone": 1900}[viewport], height


def test_the_preview_looks_like_the_post_will(
    page, live_server, user, channel, use_pds, account, target, site, settings, tmp_path
):
    from tests.bluesky.posts.test_linkcards import OG_PAGE, png

    settings.MEDIA_ROOT = tmp_path / "media"
    settings.INTEGRATIONS_LINK_CARDS = True
    site.routes["/og"] = OG_PAGE
    site.routes["/img/card.png"] = (200, {"Content-Type": "image/png"}, png(1200, 630))
    use_pds.set_profile(account, "Alice on Bluesky")
    services.update_profile(channel)
    _, uri, _, address = target
    log_in_browser(page, live_server, user)
    page.goto(f"{live_server.url}/app/posts/new")
    page.click("summary:has-text('Reply to or quote a post')")
    page.fill("#id_quote", address)
    expect(page.locator("[data-reference=quote] [data-target]")).to_contain_text("The post being answered")
    page.fill("#id_parts-0-text", f"Two pictures and a quote, see @{account.handle} #skyport")
    for slot in (1, 2):
        page.set_input_files(f"#id_parts-0-image_{slot}", small_png(tmp_path))
        page.fill(f"#id_parts-0-alt_{slot}", f"Square {slot}")
    page.click("[data-add-part]")
    page.fill("#id_parts-1-text", f"And a card: {site.url}/og")
    expect(page.locator("[data-part]:nth-child(2) [data-card-box]")).to_be_visible()
    page.click("button[value=preview]:not([tabindex])")

    preview = page.locator("[data-preview]")
    expect(preview).to_be_visible()
    first, second = preview.locator("article.preview").nth(0), preview.locator("article.preview").nth(1)
    expect(first.locator(".preview-head")).to_contain_text(f"Alice on Bluesky @{account.handle}")
    expect(first.locator(".preview-avatar .avatar")).to_be_visible()
    expect(first.locator(f".preview-text a[href='https://bsky.app/profile/{account.handle}']")).to_have_count(1)
    expect(first.locator(".preview-text a[href='https://bsky.app/hashtag/skyport']")).to_have_count(1)
    expect(first.locator(".preview-images.count-2 img")).to_have_count(2)
    expect(first.locator(".preview-quote")).to_contain_text("The post being answered")
    card = second.locator(".preview-card")
    expect(card).to_contain_text("Skyport & friends")
    expect(card).to_contain_text(site.url.removeprefix("http://"))  # the host with its port
    page.wait_for_function("document.querySelector('.preview-card img').naturalWidth > 0")
    box = first.locator(".preview-images").bounding_box()
    assert box["width"] > 300  # a grid of pictures, not a list of file names
    preview.screenshot(path=SHOTS / "compose-preview-like-a-post.png")

    page.click("button[value=publish]")
    expect(page.locator(".messages")).to_contain_text("Published on @")
    by_uri = {r["uri"]: r["value"] for r in records(use_pds, account.did)}
    first_record = by_uri[Post.objects.get().parts.all()[0].uri]
    assert first_record["embed"]["$type"] == "app.bsky.embed.recordWithMedia"
    assert first_record["embed"]["record"]["record"]["uri"] == uri


# --- Replies and quotes ---------------------------------------------------------------------------------------------
def test_reply_from_the_channel_feed_opens_the_composer_filled_in_and_publishes_the_reply(
    page, live_server, user, channel, use_pds, account
):
    first = accept(user, channel, [PartRequest("Something to answer", link_card=None)])
    publish(first.pk, claimed=first)
    first_part = first.parts.get()
    log_in_browser(page, live_server, user)
    page.goto(f"{live_server.url}/app/channels/{channel.pk}")
    page.click("[data-reply]")
    expect(page.locator("#id_reply_to")).to_have_value(first_part.uri)
    expect(page.locator("[data-reference=reply_to] [data-target]")).to_contain_text("Something to answer")
    expect(page.locator(f"#channel-{channel.pk}")).to_be_checked()
    page.screenshot(path=SHOTS / "compose-reply-from-feed.png", full_page=True)
    page.fill("#id_parts-0-text", "The answer")
    page.click("button[value=publish]")
    expect(page.locator(".messages")).to_contain_text("Published on @")
    reply = next(r["value"] for r in records(use_pds, account.did) if r["value"]["text"] == "The answer")
    assert reply["reply"]["parent"] == {"uri": first_part.uri, "cid": first_part.cid}

    page.goto(f"{live_server.url}/app/channels/{channel.pk}")
    page.locator("[data-quote]").first.click()
    expect(page.locator("#id_quote")).not_to_have_value("")
    expect(page.locator("[data-reference=quote] [data-target]")).to_be_visible()


# --- Confirmations --------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("script", [True, False], ids=["with-script", "without-script"])
def test_cancel_and_disconnect_ask_first_and_a_cancelled_post_stays_in_the_history(
    page, live_server, user, channel, use_pds, account, script
):
    post = accept(
        user,
        channel,
        [PartRequest("Maybe tomorrow", link_card=None)],
        scheduled_at=timezone.now() + timedelta(days=1),
    )
    context = page.context.browser.new_context(java_script_enabled=script, viewport={"width": 375, "height": 812})
    page = context.new_page()
    log_in_browser(page, live_server, user)
    page.goto(f"{live_server.url}/app/posts")
    row = page.locator(f"[data-post='{post.pk}']")
    row.locator("summary:has-text('Cancel…')").click()
    expect(row.locator("details.confirm form")).to_contain_text("stays in your history as cancelled")
    assert Post.objects.get(pk=post.pk).status == Post.Status.SCHEDULED  # opening the question changed nothing
    row.locator("button:has-text('Cancel the post')").click()
    expect(page.locator(".messages")).to_contain_text("Cancelled the post scheduled on @")
    expect(page.locator(".messages")).not_to_contain_text("Deleted")
    expect(page.locator(f"[data-post='{post.pk}'] .badge")).to_have_text("Cancelled")
    expect(page.locator(f"[data-post='{post.pk}']")).to_contain_text("Maybe tomorrow")

    page.goto(f"{live_server.url}/app/channels/{channel.pk}")
    page.click("summary:has-text('Disconnect…')")
    expect(page.locator("details.confirm form")).to_contain_text(f"Disconnect @{account.handle}?")
    assert Channel.objects.get(pk=channel.pk).status == Channel.Status.ACTIVE
    page.click("details.confirm button:has-text('Disconnect')")
    expect(page.locator(".messages")).to_contain_text("signed out on Bluesky")
    expect(page.locator(".badge.disconnected")).to_have_count(1)
    context.close()


# --- Small things ---------------------------------------------------------------------------------------------------
def test_small_things_icon_headings_gaps_and_the_admins_select(page, live_server, user, channel, admin_user):
    from tests.browser.test_browser import seed_posts

    seed_posts(user, channel)
    accept(
        user,
        channel,
        [PartRequest("Soon", link_card=None)],
        scheduled_at=timezone.now() + timedelta(days=1),
    )
    log_in_browser(page, live_server, user)
    page.goto(f"{live_server.url}/app/posts")
    icon = page.locator("link[rel=icon]").get_attribute("href")
    assert page.request.get(live_server.url + icon).status == 200
    answer = page.request.get(f"{live_server.url}/favicon.ico", max_redirects=0)
    assert answer.status == 301 and answer.headers["location"] == icon

    sizes = page.evaluate(
        "['#scheduled-heading', 'h3.day'].map(s => parseFloat(getComputedStyle(document.querySelector(s)).fontSize))"
    )
    assert sizes[0] > sizes[1], sizes  # "Scheduled" is the larger heading

    def gaps():
        return page.evaluate(
            """() => [...document.querySelectorAll('main .card')].slice(1).map(card => {
                let before = card.previousElementSibling;
                return before && before.classList.contains('card')
                    ? card.getBoundingClientRect().top - before.getBoundingClientRect().bottom : null;
            }).filter(gap => gap !== null)"""
        )

    page.goto(f"{live_server.url}/app/channels/{channel.pk}")
    assert gaps() and min(gaps()) >= 12, gaps()  # the profile and "Scheduled" cards do not touch

    # A thread's delete question says every part goes.
    page.goto(f"{live_server.url}/app/posts")
    thread = page.locator(".post", has_text="A published thread, part one")
    thread.locator("summary:has-text('Delete…')").click()
    expect(thread.locator("details.confirm form")).to_contain_text(
        "Delete this thread, all 2 parts, here and from Bluesky?"
    )

    # The admin's "Accounts on other servers" shows its choice whole on a phone.
    page.set_viewport_size(VIEWPORTS["phone"])
    log_in_browser(page, live_server, admin_user)
    page.goto(f"{live_server.url}/admin/api-integration/bluesky")
    fits = page.evaluate(
        """() => {
            const select = document.querySelector('#id_other_servers');
            const span = document.createElement('span');
            span.style.font = getComputedStyle(select).font;
            span.style.whiteSpace = 'pre';
            document.body.append(span);
            const widths = [...select.options].map(o => { span.textContent = o.text; return span.offsetWidth; });
            span.remove();
            const box = select.getBoundingClientRect();
            return {widest: Math.max(...widths), width: box.width, right: box.right, viewport: innerWidth};
        }"""
    )
    # Its longest choice fits beside the arrow (it used to be cut off: "Not set here (BLUESKY_OTHER_SERVEI").
    assert fits["widest"] + 20 <= fits["width"] and fits["right"] <= fits["viewport"], fits


# --- Accessibility of the new pages ---------------------------------------------------------------------------------
@pytest.mark.parametrize("viewport", VIEWPORTS)
def test_the_new_pages_are_accessible_and_fit_the_screen(
    page, live_server, axe_script, viewport, user, channel, use_pds, target, settings, tmp_path, monkeypatch
):
    settings.MEDIA_ROOT = tmp_path / "media"
    page.set_viewport_size(VIEWPORTS[viewport])
    _, uri, _, address = target
    scheduled = accept(
        user,
        channel,
        [
            PartRequest("Will be cancelled", link_card=None),
            PartRequest("part two", link_card=None),
        ],
        scheduled_at=timezone.now() + timedelta(days=1),
        reply_to=address,
    )
    kept = accept(
        user,
        channel,
        [PartRequest("Stays", link_card=None)],
        scheduled_at=timezone.now() + timedelta(days=2),
    )
    log_in_browser(page, live_server, user)
    problems = []

    page.goto(f"{live_server.url}/app/posts/{scheduled.pk}/cancel")  # the confirmation page (no script needed)
    expect(page.locator("h1")).to_contain_text("Cancel the post scheduled for")
    problems += check_page(page, axe_script, "confirm-cancel", viewport)
    page.click("button:has-text('Cancel the post')")
    expect(page.locator(".badge.cancelled")).to_have_count(1)
    page.locator(f"[data-post='{kept.pk}'] summary").nth(0).click()
    problems += check_page(page, axe_script, "posts-cancelled", viewport)
    page.goto(f"{live_server.url}/app/channels/{channel.pk}/disconnect")
    problems += check_page(page, axe_script, "confirm-disconnect", viewport)

    page.goto(f"{live_server.url}/app/posts/new?channel={channel.pk}&reply_to={uri}")
    expect(page.locator("[data-reference=reply_to] [data-target]")).to_be_visible()
    page.fill("#id_quote", "https://example.com/not/a/post")
    page.fill("#id_parts-0-text", "x" * 301)
    page.click("button[value=publish]")
    expect(page.locator("#id_quote_error")).to_be_visible()
    problems += check_page(page, axe_script, "compose-reference-errors", viewport)
    page.fill("#id_quote", uri)
    page.fill("#id_parts-0-text", "A reply that quotes")
    page.set_input_files("#id_parts-0-image_1", {"name": "moving.gif", "mimeType": "image/gif", "buffer": animation()})
    page.fill("#id_parts-0-alt_1", "Three colours")
    page.click("button[value=preview]:not([tabindex])")
    expect(page.locator("button[value='frame-0-1']")).to_be_visible()
    problems += check_page(page, axe_script, "compose-animated", viewport)
    page.click("button[value='frame-0-1']")
    expect(page.locator("#id_parts-0-alt_1")).to_have_value("Three colours")
    page.click("button[value=preview]:not([tabindex])")
    expect(page.locator("[data-preview] .preview-quote")).to_be_visible()
    problems += check_page(page, axe_script, "compose-preview-reply", viewport)

    IntegrationOption.objects.create(key="bluesky_integration_status", value="disabled")
    monkeypatch.setattr(services, "channel_feed", fake_feed)
    page.goto(f"{live_server.url}/app/channels/{channel.pk}")
    expect(page.locator("[data-reply]")).to_have_count(3)
    expect(page.locator(".notice")).to_contain_text("Posts you publish or schedule wait")
    problems += check_page(page, axe_script, "channel-feed-switched-off", viewport)
    page.goto(f"{live_server.url}/app/posts/new")
    problems += check_page(page, axe_script, "compose-switched-off", viewport)
    assert not problems, "\n".join(problems)


def test_the_zone_is_named_once_on_each_page(page, live_server, user, channel):
    log_in_browser(page, live_server, user)
    for path in ("/app/channels", f"/app/channels/{channel.pk}", "/app/posts", "/app/posts/new"):
        page.goto(live_server.url + path)
        text = page.locator("body").inner_text()
        assert len(re.findall(r"\bUTC\b", text)) == 1, (path, text)
