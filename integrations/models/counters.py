"""Rate-limit counters kept in the database."""

from django.db import models


class RateCounter(models.Model):
    """How many hits one limit counted for one client in one fixed window (`integrations.security.throttling`). In the
    database, where other users' traffic cannot evict it as it can evict a cache entry."""

    key = models.CharField(max_length=255, unique=True)  # scope:ident:window start
    count = models.PositiveBigIntegerField(default=0)  # hits, or units such as bytes
    ends_at = models.BigIntegerField(db_index=True)  # the window's end, in seconds since the epoch

    def __str__(self) -> str:
        return f"{self.key}: {self.count}"
