"""A transaction whose commit does not wait for the disk: for a fact that is reconciled if a crash loses it.

Publishing stores two facts: the plan before the write reaches the PDS (it must survive anything: without it a
retry would plan new keys and publish twice) and the result after (without it the post stays `publishing`, and its
next attempt reads the planned keys back and finds the records). Only the second is written with `unsynced_atomic`.

What it gives up: the commit is made (visible, atomic, in order) but not yet flushed when the block ends, so a
crash of the machine (SQLite) or of the database server (PostgreSQL, at most about three `wal_writer_delay`s) can
undo it; a crash of our process cannot. Later transactions are never kept without it: SQLite's WAL and
PostgreSQL's WAL are written in order, and the next synchronous commit flushes it too.

- PostgreSQL: `SET LOCAL synchronous_commit TO OFF`, for this transaction only.
- SQLite in WAL mode: `PRAGMA synchronous = NORMAL` around the transaction (WAL stays consistent; the commit is
  flushed at the next synchronous commit or checkpoint), then the connection's own level again. In another journal
  mode, or already at NORMAL or OFF, nothing changes.
- Inside another transaction the outer one decides, as it commits: the block is a plain savepoint.
"""

from collections.abc import Iterator
from contextlib import contextmanager

from django.db import DEFAULT_DB_ALIAS, connections, transaction

_SQLITE_NORMAL = 1  # PRAGMA synchronous: 0 OFF, 1 NORMAL, 2 FULL, 3 EXTRA


@contextmanager
def unsynced_atomic(using: str = DEFAULT_DB_ALIAS) -> Iterator[None]:
    """`transaction.atomic()` whose commit returns before it is flushed to disk (see the module's docstring)."""
    connection = connections[using]
    if connection.in_atomic_block or connection.vendor not in ("postgresql", "sqlite"):
        with transaction.atomic(using=using):
            yield
        return
    if connection.vendor == "postgresql":
        with transaction.atomic(using=using):
            with connection.cursor() as cursor:
                cursor.execute("SET LOCAL synchronous_commit TO OFF")
            yield
        return
    with connection.cursor() as cursor:
        cursor.execute("PRAGMA journal_mode")
        wal = str(cursor.fetchone()[0]).lower() == "wal"
        cursor.execute("PRAGMA synchronous")
        level = int(cursor.fetchone()[0])
    relax = wal and level > _SQLITE_NORMAL
    if relax:
        with connection.cursor() as cursor:
            cursor.execute(f"PRAGMA synchronous = {_SQLITE_NORMAL}")
    try:
        with transaction.atomic(using=using):
            yield
    finally:
        if relax:
            with connection.cursor() as cursor:
                cursor.execute(f"PRAGMA synchronous = {level}")
