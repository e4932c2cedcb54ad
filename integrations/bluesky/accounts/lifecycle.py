"""Where the session door lived before the reshape split it (`door`: calls and refreshes; `connection`: stored
sessions and disconnection; `identity.following`: following a moved identity).

Kept only while the publishing code still says `lifecycle.call` (it is being reshaped at the same time); remove
once nothing imports it.
"""

from integrations.bluesky.accounts.door import call

__all__ = ["call"]
