"""E-mails to channel owners carry absolute links (`INTEGRATIONS_SITE_URL`), and production is warned without it."""

import pytest
from django.core import mail

from integrations import checks
from integrations.bluesky.posts.plans import PartInput
from integrations.bluesky.posts.store import create_post
from integrations.bluesky.posts.submit import publish


@pytest.mark.pds
@pytest.mark.django_db
def test_every_email_links_with_the_sites_address(
    use_pds, user, channel, account, settings, django_capture_on_commit_callbacks
):
    settings.INTEGRATIONS_SITE_URL = "https://skyport.example.com/"
    user.email = "alice@example.com"
    user.save()
    use_pds.deactivate(account)  # the post fails, and the channel newly has a problem: two e-mails
    post = create_post(user, channel, [PartInput(text="hello", langs=["en"])])
    with django_capture_on_commit_callbacks(execute=True):
        assert publish(post.pk).error.code == "account_deactivated"

    bodies = {message.subject: message.body for message in mail.outbox}
    problem = next(body for subject, body in bodies.items() if "Account deactivated" in subject)
    failed = next(body for subject, body in bodies.items() if "could not be published" in subject)
    assert f"Open the channel: https://skyport.example.com/app/channels/{channel.pk}\n" in problem
    assert "Publish it again from your posts: https://skyport.example.com/app/posts\n" in failed
    for body in bodies.values():  # no link is left relative
        assert " /app/" not in body and "\n/app/" not in body


def ids(messages) -> list[str]:
    return [message.id for message in messages]


def test_production_without_the_sites_address_is_warned(settings):
    settings.DEBUG = False
    settings.INTEGRATIONS_SITE_URL = ""
    [warning] = checks.check_site_url()
    assert warning.id == "integrations.W006" and "relative" in warning.msg and "SITE_URL" in warning.hint
    settings.INTEGRATIONS_NOTIFY_OWNERS = False  # no e-mails, no links
    assert checks.check_site_url() == []
    settings.INTEGRATIONS_NOTIFY_OWNERS = True
    settings.INTEGRATIONS_SITE_URL = "https://skyport.example.com"
    assert checks.check_site_url() == []
    settings.DEBUG, settings.INTEGRATIONS_SITE_URL = True, ""
    assert checks.check_site_url() == []  # development: a local server, nobody else reads the links


@pytest.mark.parametrize("value", ["skyport.example.com", "ftp://skyport.example.com", "https://", "https://x/?a=1"])
def test_a_site_address_that_is_no_address_is_an_error(settings, value):
    settings.INTEGRATIONS_SITE_URL = value
    assert ids(checks.check_site_url()) == ["integrations.E004"]
