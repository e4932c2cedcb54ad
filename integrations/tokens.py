"""A user's API tokens: what the token page (`/app/api-token`) lists, creates, revokes and regenerates.

The API authenticates with DRF's `Token` (`Authorization: Token <key>`), one per user today. The page works on rows
(`ApiToken`), each named by an `id` that is not its key, so named and scoped tokens can join the list later without
changing the page's shape. A key leaves this module once, as the return value of `create` or `regenerate`, for the
page that shows it; it is never logged, never put in a message or the session, and never shown again.
"""

import logging
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from django.db import IntegrityError, transaction
from django.utils.crypto import constant_time_compare, salted_hmac
from django.views.decorators.debug import sensitive_variables
from rest_framework.authtoken.models import Token

logger = logging.getLogger(__name__)


class TokenExists(Exception):
    """The user has a token already (one per user today): regenerate it instead."""


class TokenNotFound(Exception):
    """No token of the user's has this id (revoked or regenerated meanwhile, or not theirs)."""


@dataclass(frozen=True)
class ApiToken:
    """What the page may show of a token: never its key."""

    id: str
    name: str
    created: datetime


@sensitive_variables("key")
def _row_id(key: str) -> str:
    """The id a token is named by on the page and in its forms: derived from the key, which it does not reveal."""
    return salted_hmac("integrations.tokens.row", key, algorithm="sha256").hexdigest()[:24]


def _row(token: Token) -> ApiToken:
    return ApiToken(id=_row_id(token.key), name="API token", created=token.created)


def tokens_of(user: Any) -> list[ApiToken]:
    """The user's tokens, newest first (at most one today)."""
    return [_row(token) for token in Token.objects.filter(user=user).order_by("-created")]


@sensitive_variables("token")
def create(user: Any) -> str:
    """A new token for `user`; returns its key, for the one page that shows it. Raises TokenExists when the user
    has one already (a form sent twice creates one token, not two)."""
    try:
        with transaction.atomic():
            if Token.objects.filter(user=user).exists():
                raise TokenExists()
            token = Token.objects.create(user=user)
    except IntegrityError:  # another request created it between the check and the insert
        raise TokenExists() from None
    logger.info("API token created user=%s", user.pk)
    return token.key


def _locked(user: Any, token_id: str) -> Token:
    """The user's token with this id, locked; TokenNotFound when there is none (another user's never matches)."""
    for token in Token.objects.select_for_update().filter(user=user):
        if constant_time_compare(_row_id(token.key), token_id):
            return token
    raise TokenNotFound()


@sensitive_variables("token")
def revoke(user: Any, token_id: str) -> ApiToken:
    """Delete the user's token `token_id`: calls with its key are refused (401) from now on. Returns what it was;
    raises TokenNotFound when it is gone already."""
    with transaction.atomic():
        token = _locked(user, token_id)
        revoked = _row(token)
        token.delete()
    logger.info("API token revoked user=%s", user.pk)
    return revoked


@sensitive_variables("token", "new")
def regenerate(user: Any, token_id: str) -> str:
    """Replace the user's token `token_id` with a new one (the old key stops working at once); returns the new key.
    Raises TokenNotFound when that token is gone already, so a confirmation sent twice replaces it once."""
    with transaction.atomic():
        token = _locked(user, token_id)
        token.delete()
        new = Token.objects.create(user=user)
    logger.info("API token regenerated user=%s", user.pk)
    return new.key
