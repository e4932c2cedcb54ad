"""The API token page in headless Chromium, as a user meets it: from the navigation, create a token and copy its key
(shown once), use it, revoke it after confirming, at phone and desktop widths, with the axe audit.

Every wait is Playwright's auto-retrying `expect`. Screenshots land beside the other browser tests'
($SKYPORT_SCREENSHOTS).
"""

import re

import httpx
import pytest
from playwright.sync_api import expect

from tests.browser import test_browser
from tests.browser.test_browser import SHOTS, VIEWPORTS, check_page, log_in_browser

page = test_browser.page
axe_script = test_browser.axe_script

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def call_api(live_server, key):
    """GET /api/v1/channels/ with the token alone (no browser cookie)."""
    return httpx.get(f"{live_server.url}/api/v1/channels/", headers={"Authorization": f"Token {key}"}, timeout=10)


@pytest.mark.parametrize("viewport", VIEWPORTS)
def test_a_user_creates_uses_and_revokes_a_token_in_the_browser(page, live_server, axe_script, viewport, user):
    page.set_viewport_size(VIEWPORTS[viewport])
    log_in_browser(page, live_server, user)
    problems = []

    page.goto(f"{live_server.url}/app/channels")
    page.click("header nav >> text=API token")
    expect(page.locator("h1")).to_have_text("API token")
    expect(page.locator(".empty")).to_contain_text("No API token yet.")
    problems += check_page(page, axe_script, "api-token-empty", viewport)

    page.click("button:has-text('Create a token')")
    key_box = page.locator("#new-key")
    expect(key_box).to_have_text(re.compile(r"^[0-9a-f]{40}$"))
    expect(page.locator("[data-new-key]")).to_contain_text("shown only this once")
    key = key_box.inner_text()
    problems += check_page(page, axe_script, "api-token-created", viewport)
    assert call_api(live_server, key).status_code == 200

    page.goto(f"{live_server.url}/app/api-token")  # any later visit: that it exists and when, never the key
    expect(page.locator("[data-token]")).to_have_count(1)
    expect(page.locator("[data-token-created]")).to_contain_text("Created ")
    expect(page.locator("#new-key")).to_have_count(0)
    assert key not in page.content()
    problems += check_page(page, axe_script, "api-token-list", viewport)

    page.click("summary:has-text('Revoke…')")  # asks first, in place
    confirm = page.locator("details.confirm[open] form")
    expect(confirm).to_contain_text("Revoke your API token?")
    page.screenshot(path=SHOTS / f"api-token-revoke-{viewport}.png", full_page=True)
    confirm.locator("button:has-text('Revoke')").click()
    expect(page.locator(".messages")).to_contain_text("Revoked your API token.")
    expect(page.locator(".empty")).to_contain_text("No API token yet.")
    assert call_api(live_server, key).status_code == 401
    assert not problems, "\n".join(problems)


def test_without_javascript_revoking_asks_on_a_page_of_its_own(page, live_server, user):
    context = page.context.browser.new_context(java_script_enabled=False, viewport=VIEWPORTS["desktop"])
    plain = context.new_page()
    log_in_browser(plain, live_server, user)
    plain.goto(f"{live_server.url}/app/api-token")
    plain.click("button:has-text('Create a token')")
    key = plain.locator("#new-key").inner_text()
    plain.goto(f"{live_server.url}/app/api-token")
    plain.click("summary:has-text('Regenerate…')")  # <details> opens without script
    plain.locator("details.confirm[open] button:has-text('Regenerate')").click()
    new_key = plain.locator("#new-key")
    expect(new_key).not_to_have_text(key)
    assert call_api(live_server, key).status_code == 401
    assert call_api(live_server, new_key.inner_text()).status_code == 200

    token_id = plain.locator("[data-token]").get_attribute("data-token")
    plain.goto(f"{live_server.url}/app/api-token/{token_id}/revoke")  # the question, not the deed
    expect(plain.locator("h1")).to_have_text("Revoke your API token?")
    plain.screenshot(path=SHOTS / "api-token-revoke-page.png", full_page=True)
    plain.click("button:has-text('Revoke')")
    expect(plain.locator(".messages")).to_contain_text("Revoked your API token.")
    context.close()
