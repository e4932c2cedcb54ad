"""Sending once: each composer page carries a one-time token, so a form sent twice (a double click, a resent
request) makes one post."""

import secrets
import time

from django.contrib.auth.base_user import AbstractBaseUser
from django.core import signing

from integrations.security.throttling import first_use

SUBMIT_TOKEN_SALT = "integrations.composer.submit"
SUBMIT_TOKEN_MAX_AGE = 24 * 3600  # a composer left open overnight asks to be sent again


def new_submit_token(user: AbstractBaseUser) -> str:
    """A one-time token for a composer page, signed for this user (another user's page cannot lend theirs)."""
    value = {"user": user.pk, "nonce": secrets.token_urlsafe(16), "at": int(time.time())}
    return signing.dumps(value, salt=SUBMIT_TOKEN_SALT)


def spend_submit_token(user: AbstractBaseUser, token: str) -> bool | None:
    """Use the page's token for this submission: True the first time, False when it was used already (the same
    form sent again), None when it is not a token this server gave this user within a day. One statement in the
    database decides (the rate-limit counters: at most one use per token), so two requests at once cannot both
    win."""
    try:
        value = signing.loads(token, salt=SUBMIT_TOKEN_SALT, max_age=SUBMIT_TOKEN_MAX_AGE)
    except signing.BadSignature:
        return None
    if not isinstance(value, dict) or value.get("user") != user.pk or not isinstance(value.get("nonce"), str):
        return None
    issued = value.get("at") if isinstance(value.get("at"), int) else int(time.time())
    return first_use("composer-submit", value["nonce"], keep_until=issued + SUBMIT_TOKEN_MAX_AGE + 60)
