"""Migration operations of the exchange's busiest tables, shared by the migrations that
use them."""

from django.contrib.postgres.operations import AddIndexConcurrently
from django.db import migrations


class AddIndexWithoutBlockingWrites(AddIndexConcurrently):
    """CREATE INDEX CONCURRENTLY on PostgreSQL: the clicks table takes a write on every
    click redirect, and a plain CREATE INDEX would hold those up while it reads the whole
    table. SQLite (the zero-setup default) has no such statement and builds it plainly."""

    def _way(self, schema_editor):
        postgres = schema_editor.connection.vendor == "postgresql"
        return AddIndexConcurrently if postgres else migrations.AddIndex

    def database_forwards(self, app_label, schema_editor, from_state, to_state):
        way = self._way(schema_editor)
        way.database_forwards(self, app_label, schema_editor, from_state, to_state)

    def database_backwards(self, app_label, schema_editor, from_state, to_state):
        way = self._way(schema_editor)
        way.database_backwards(self, app_label, schema_editor, from_state, to_state)
