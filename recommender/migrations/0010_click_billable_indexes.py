from django.contrib.postgres.operations import AddIndexConcurrently
from django.db import migrations, models


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


def billed(fields: list[str], name: str) -> AddIndexWithoutBlockingWrites:
    return AddIndexWithoutBlockingWrites(
        model_name="click",
        index=models.Index(condition=models.Q(("billable", True)), fields=fields, name=name),
    )


class Migration(migrations.Migration):
    atomic = False  # CREATE INDEX CONCURRENTLY cannot run inside a transaction

    dependencies = [
        ("recommender", "0009_feedback_kept_per_day"),
        ("stores", "0004_webhook_processing_lease"),
    ]

    operations = [
        billed(["visitor_hash", "created_at"], "recommender_click_billed_v"),
        billed(["ip_hash", "created_at"], "recommender_click_billed_ip"),
        billed(["source_store", "created_at"], "recommender_click_billed_src"),
    ]
