"""What the app reads from a session's tokens: the (unverified) claims of a JWT the PDS just gave us, and its times."""

import base64
import json
import math
from datetime import UTC, datetime, timedelta
from typing import Any

from integrations.bluesky.xrpc import errors

EARLIEST_TOKEN_TIME = datetime(2000, 1, 1, tzinfo=UTC)
LONGEST_TOKEN_LIFETIME = timedelta(days=400)  # refresh tokens live 90 days; anything past a year is garbage


def jwt_claims(token: str) -> dict[str, Any]:
    """The (unverified) claims of a JWT: we only read `exp` and `scope` of tokens the PDS just gave us."""
    try:
        payload = token.split(".")[1]
        payload += "=" * (-len(payload) % 4)
        claims = json.loads(base64.urlsafe_b64decode(payload))
    except (IndexError, ValueError) as exc:
        raise errors.InvalidResponse("The PDS returned a session token that is not a JWT.") from exc
    if not isinstance(claims, dict):
        raise errors.InvalidResponse("The PDS returned a session token with unreadable claims.")
    return claims


def claim_time(claims: dict[str, Any], name: str = "exp") -> datetime | None:
    """A JWT time claim as an aware datetime (None when absent).

    Raises InvalidResponse for a value that is not a plausible time (not a number, before 2000, or further ahead
    than any session lives), so an absurd claim can neither crash a save nor park a channel for centuries.
    """
    value = claims.get(name)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise errors.InvalidResponse(f"The PDS returned a session token whose {name!r} is not a time.")
    try:
        when = datetime.fromtimestamp(value, tz=UTC)
    except (OverflowError, OSError, ValueError):
        when = None
    if when is None or not EARLIEST_TOKEN_TIME <= when <= datetime.now(UTC) + LONGEST_TOKEN_LIFETIME:
        raise errors.InvalidResponse(f"The PDS returned a session token with an impossible {name!r} time.")
    return when
