"""Tell a channel's owner by e-mail, once, when it newly needs reconnection or its account is deactivated or
suspended ("alert on the first 401, not the tenth"), and when one of their posts fails for good.

A receiver of `channel_health_changed`: it runs when a channel's health *moves* into a problem state, so the tenth
failed call of a channel already needing reconnection sends nothing. Switch it off with
`INTEGRATIONS_NOTIFY_OWNERS = False`; the adapter decides the recipients and the link; the words come from the
templates `integrations/email/channel_problem_subject.txt` and `channel_problem.txt`, which a project can override.
"""

import logging
from typing import Any

from django.core.mail import send_mail
from django.dispatch import receiver
from django.template.loader import render_to_string

from integrations.adapter import get_adapter
from integrations.conf import app_settings
from integrations.signals import channel_health_changed, post_failed

logger = logging.getLogger(__name__)

PROBLEM_STATES = frozenset({"needs_reconnection", "deactivated", "suspended"})


def _email_owner(channel: Any, template: str, context: dict[str, Any], about: str) -> None:
    """Render `template` (+ `_subject`) and mail it to whom the adapter names for `channel`; never raises."""
    if not app_settings.NOTIFY_OWNERS:
        return
    recipients = get_adapter().problem_email_recipients(channel)
    if not recipients:
        return
    subject = " ".join(render_to_string(f"integrations/email/{template}_subject.txt", context).split())
    body = render_to_string(f"integrations/email/{template}.txt", context)
    try:
        send_mail(subject, body, None, recipients)
    except Exception:  # a mail server being down must not fail the refresh or the publishing that noticed it
        logger.warning("could not e-mail the owner of channel %s about %s", channel.pk, about, exc_info=True)


@receiver(channel_health_changed, dispatch_uid="integrations.email_owner_about_a_new_problem")
def email_owner_about_a_new_problem(sender: type, channel: Any, old_state: str, new_state: str, **kwargs: Any) -> None:
    """Send one e-mail to the channel's owner when its health newly enters a problem state."""
    if new_state not in PROBLEM_STATES:
        return
    adapter = get_adapter()
    label, advice = adapter.describe_health(
        new_state, ends_at=channel.refresh_expires_at, retry_at=channel.next_retry_at
    )
    context = {
        "channel": channel,
        "state": new_state,
        "label": label,
        "advice": advice,
        "channel_url": adapter.channel_url(channel),
    }
    _email_owner(channel, "channel_problem", context, new_state)


@receiver(post_failed, dispatch_uid="integrations.email_owner_about_a_failed_post")
def email_owner_about_a_failed_post(sender: type, post: Any, error_code: str, message: str, **kwargs: Any) -> None:
    """Send one e-mail to the post's owner when it fails for good, with the reason and where to retry it."""
    context = {"post": post, "channel": post.channel, "message": message, "posts_url": get_adapter().posts_url(post)}
    _email_owner(post.channel, "post_failed", context, f"post {post.pk} ({error_code})")
