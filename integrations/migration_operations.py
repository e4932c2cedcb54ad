"""Migration operations that stay safe on big tables."""

from typing import Any

from django.db import NotSupportedError
from django.db.migrations.operations import AddIndex


class AddIndexConcurrently(AddIndex):
    """Django's `django.contrib.postgres.operations.AddIndexConcurrently` on PostgreSQL, a plain `AddIndex` elsewhere.

    On PostgreSQL the index is built `CONCURRENTLY`: the table stays writable while it is built (a plain
    `CREATE INDEX` holds a write lock for as long as a big table takes), so the migration must say `atomic = False`.
    An index such a build left invalid (it was interrupted) is dropped and built again. SQLite has no such build,
    and Django's own operation refuses to run there; this one is what the app's migrations use on every database.
    It imports nothing PostgreSQL-specific, so projects without psycopg load it too.
    """

    atomic = False

    def describe(self) -> str:
        return f"{super().describe()} (concurrently on PostgreSQL)"

    def database_forwards(self, app_label: str, schema_editor: Any, from_state: Any, to_state: Any) -> None:
        model = to_state.apps.get_model(app_label, self.model_name)
        if not self.allow_migrate_model(schema_editor.connection.alias, model):
            return
        if schema_editor.connection.vendor != "postgresql":
            schema_editor.add_index(model, self.index)
            return
        if not schema_editor.collect_sql:  # `sqlmigrate` only prints the statement
            self._ensure_not_in_transaction(schema_editor)
            self._drop_if_invalid(schema_editor)
        schema_editor.add_index(model, self.index, concurrently=True)

    def database_backwards(self, app_label: str, schema_editor: Any, from_state: Any, to_state: Any) -> None:
        model = from_state.apps.get_model(app_label, self.model_name)
        if not self.allow_migrate_model(schema_editor.connection.alias, model):
            return
        if schema_editor.connection.vendor != "postgresql":
            schema_editor.remove_index(model, self.index)
            return
        if not schema_editor.collect_sql:
            self._ensure_not_in_transaction(schema_editor)
        schema_editor.remove_index(model, self.index, concurrently=True)

    def _ensure_not_in_transaction(self, schema_editor: Any) -> None:
        if schema_editor.connection.in_atomic_block:
            raise NotSupportedError(
                f"{type(self).__name__} cannot run inside a transaction on PostgreSQL (set atomic = False on the "
                "migration)."
            )

    def _drop_if_invalid(self, schema_editor: Any) -> None:
        with schema_editor.connection.cursor() as cursor:
            cursor.execute(
                "SELECT 1 FROM pg_index JOIN pg_class ON pg_class.oid = pg_index.indexrelid "
                "WHERE pg_class.relname = %s AND NOT pg_index.indisvalid",
                [self.index.name],
            )
            invalid = cursor.fetchone() is not None
        if invalid:
            schema_editor.execute(f"DROP INDEX CONCURRENTLY IF EXISTS {schema_editor.quote_name(self.index.name)}")
