"""Clicks an operator voided in review stay counted by review and the limits, beside the
billable ones: the partial indexes those read hold billable clicks only, so the day's
voided clicks get one of their own (few rows). Built concurrently on PostgreSQL, so clicks
are written all along."""

from django.db import migrations, models

from recommender.schema_operations import AddIndexWithoutBlockingWrites


class Migration(migrations.Migration):
    atomic = False  # CREATE INDEX CONCURRENTLY cannot run inside a transaction

    dependencies = [
        ("recommender", "0020_sync_failure_in_the_merchants_words"),
    ]

    operations = [
        AddIndexWithoutBlockingWrites(
            model_name="click",
            index=models.Index(
                condition=models.Q(("reason", "voided in review")),
                fields=["created_at"],
                name="recommender_click_voided",
            ),
        ),
    ]
