"""The clicks table keeps only the indexes something reads: every index is written by the
click's INSERT (the storefront's hottest write path) and again by its settling UPDATE.

Gone: (visitor, product, time) and (address, time) over every click, which the rules stopped
reading when they moved to the partial indexes of billable clicks (0010); the foreign keys'
own indexes, which the (store, time) indexes lead with; and the unique index over
``billed_impression`` with its pattern-matching twin, replaced by a unique index over the
rows that have one (clicks that did not bill, nearly all of them, are no longer in it).
Measured on the click redirect under load (bench/storefront_load.py's gunicorn and wrk
setup, four runs): 66 → 39 buffer pages touched per click, and the settling connections'
CPU per click 59-87 → 43-45 us; the INSERT's own CPU (410-550 us either way) is mostly the
statement and its commit, not the indexes.

On PostgreSQL the new unique index is built concurrently before the old one is dropped, so
clicks are written all along and one billable click per impression holds throughout.
"""

from django.db import migrations, models

ONE_BILLED = models.UniqueConstraint(
    fields=["billed_impression"],
    condition=models.Q(billed_impression__isnull=False),
    name="recommender_click_one_billed_per_impression",
)


class AddUniqueConstraintWithoutBlockingWrites(migrations.AddConstraint):
    """CREATE UNIQUE INDEX CONCURRENTLY on PostgreSQL (a plain one would hold up every click
    while it reads the table); SQLite builds it plainly."""

    def database_forwards(self, app_label, schema_editor, from_state, to_state):
        if schema_editor.connection.vendor != "postgresql":
            return super().database_forwards(app_label, schema_editor, from_state, to_state)
        model = to_state.apps.get_model(app_label, self.model_name)
        # A build interrupted on an earlier try leaves an invalid index of that name behind.
        self._drop(schema_editor)
        statement = str(self.constraint.create_sql(model, schema_editor))
        schema_editor.execute(
            statement.replace("CREATE UNIQUE INDEX", "CREATE UNIQUE INDEX CONCURRENTLY", 1)
        )

    def database_backwards(self, app_label, schema_editor, from_state, to_state):
        if schema_editor.connection.vendor != "postgresql":
            return super().database_backwards(app_label, schema_editor, from_state, to_state)
        self._drop(schema_editor)

    def _drop(self, schema_editor):
        name = schema_editor.quote_name(self.constraint.name)
        schema_editor.execute(f"DROP INDEX CONCURRENTLY IF EXISTS {name}")


def store_key_without_its_own_index(name: str, *, related_name: str) -> migrations.AlterField:
    """The (store, created_at) indexes lead with the key: its own index is never read."""
    return migrations.AlterField(
        model_name="click",
        name=name,
        field=models.ForeignKey(
            db_index=False,
            on_delete=models.deletion.PROTECT,
            related_name=related_name,
            to="stores.store",
        ),
    )


class Migration(migrations.Migration):
    atomic = False  # CREATE INDEX CONCURRENTLY cannot run inside a transaction

    dependencies = [
        ("recommender", "0010_click_billable_indexes"),
        ("stores", "0004_webhook_processing_lease"),
    ]

    operations = [
        AddUniqueConstraintWithoutBlockingWrites(model_name="click", constraint=ONE_BILLED),
        migrations.AlterField(
            model_name="click",
            name="billed_impression",
            field=models.CharField(blank=True, max_length=64, null=True),
        ),
        migrations.RemoveIndex(model_name="click", name="recommender_visitor_45e3b0_idx"),
        migrations.RemoveIndex(model_name="click", name="recommender_ip_hash_6bf3b2_idx"),
        store_key_without_its_own_index("source_store", related_name="clicks_sent"),
        store_key_without_its_own_index("target_store", related_name="clicks_received"),
    ]
