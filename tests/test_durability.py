"""`unsynced_atomic`: a commit that does not wait for the disk, scoped to its own transaction."""

import pytest
from django.db import connection, transaction

from integrations.durability import unsynced_atomic
from integrations.models import IntegrationOption

pytestmark = pytest.mark.django_db(transaction=True)


def sync_level() -> str:
    """How the connection's next commit reaches the disk: PostgreSQL's synchronous_commit, SQLite's synchronous."""
    with connection.cursor() as cursor:
        cursor.execute("SHOW synchronous_commit" if connection.vendor == "postgresql" else "PRAGMA synchronous")
        return str(cursor.fetchone()[0])


RELAXED = {"postgresql": "off", "sqlite": "1"}


def test_only_its_own_transaction_is_relaxed_and_what_it_wrote_is_committed():
    before = sync_level()
    assert before != RELAXED[connection.vendor]
    with unsynced_atomic():
        assert sync_level() == RELAXED[connection.vendor]
        IntegrationOption.objects.create(key="bluesky_integration_status", value="enabled")
    assert sync_level() == before
    assert not connection.in_atomic_block
    assert IntegrationOption.objects.filter(value="enabled").exists()


def test_a_failed_block_rolls_back_and_puts_the_level_back():
    before = sync_level()
    with pytest.raises(ZeroDivisionError), unsynced_atomic():
        IntegrationOption.objects.create(key="bluesky_integration_status", value="enabled")
        1 / 0
    assert sync_level() == before
    assert not IntegrationOption.objects.exists()


def test_inside_another_transaction_the_outer_one_decides():
    before = sync_level()
    with transaction.atomic():
        with unsynced_atomic():
            assert sync_level() == before
            IntegrationOption.objects.create(key="bluesky_integration_status", value="enabled")
        assert connection.in_atomic_block
    assert IntegrationOption.objects.exists()
