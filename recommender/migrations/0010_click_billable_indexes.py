from django.db import migrations, models

from recommender.schema_operations import AddIndexWithoutBlockingWrites


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
