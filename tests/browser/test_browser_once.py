"""In Chromium: a double click on Publish sends the composer once, and the button says it is sending while the
post goes out (issue 16, item 14). The PDS is behind the fault proxy, which holds the write in flight."""

import json
import time

import pytest

from integrations.models import Channel, Post
from integrations.web.compose import views
from tests.bluesky.posts.test_publishing import records
from tests.browser.test_browser import SHOTS, log_in_browser, page  # noqa: F401 (a fixture)
from tests.support.faultproxy import FaultProxy

pytestmark = [pytest.mark.browser, pytest.mark.pds, pytest.mark.django_db(transaction=True)]

# The page cannot be read while it waits for its answer (Chromium has started to leave it), so the button's states
# are written down by the page itself and read on the next one.
RECORD_THE_BUTTON = """() => {
  const button = document.querySelector("button[value=publish]:not([tabindex])");
  new MutationObserver(() => {
    if (button.disabled) {
      sessionStorage.setItem("publish", JSON.stringify([button.textContent, button.getAttribute("aria-busy")]));
    }
  }).observe(button, {attributes: true, childList: true, characterData: true, subtree: true});
}"""


def test_a_double_click_on_publish_sends_one_post(
    page,  # noqa: F811
    live_server,
    user,
    channel,
    use_pds,
    account,
    monkeypatch,
):
    from playwright.sync_api import expect

    sent = []
    post = views.ComposeView.post
    monkeypatch.setattr(views.ComposeView, "post", lambda self, request: sent.append(1) or post(self, request))
    proxy = FaultProxy(upstream_port=use_pds.port)
    Channel.objects.filter(pk=channel.pk).update(pds_endpoint=proxy.url)
    try:
        log_in_browser(page, live_server, user)
        page.goto(f"{live_server.url}/app/posts/new")
        page.fill("#id_parts-0-text", "Sent once, however often it is clicked")
        page.evaluate(RECORD_THE_BUTTON)
        held = proxy.hold("com.atproto.repo.applyWrites")
        page.locator("button[value=publish]:not([tabindex])").dblclick(no_wait_after=True)
        assert held.reached.wait(30)  # the first send is being published...
        time.sleep(0.5)  # ...while the second click has had every chance to send the form again
        held.release()
        page.wait_for_url(f"{live_server.url}/app/posts")
        expect(page.locator(".messages")).to_contain_text("Published on @")
        page.screenshot(path=SHOTS / "compose-sent-once.png")
        assert len(sent) == 1  # the browser sent the form once
        assert json.loads(page.evaluate("sessionStorage.getItem('publish') || 'null'")) == ["Sending…", "true"]
        assert Post.objects.count() == 1 and len(records(use_pds, account.did)) == 1
        assert sum("applyWrites" in path for path in proxy.seen) == 1
    finally:
        proxy.stop()
