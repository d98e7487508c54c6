from datetime import timedelta

from django.db import migrations
from django.db.models import F
from django.utils import timezone

# attribution.CONFIRM_WITHIN when this was written: reconciliation still asks Shopify about
# orders younger than this; older ones it would drop unasked.
CONFIRM_WITHIN = timedelta(days=14)


def keep_what_cannot_be_asked_about(apps, schema_editor):
    """Orders recorded before confirmation existed: those too old for reconciliation to ask
    Shopify about stay in the figures they were in, marked as recorded (verified_at is their
    recording time); younger ones are left unconfirmed, for reconciliation to ask about."""
    AttributedOrder = apps.get_model("recommender", "AttributedOrder")
    old = AttributedOrder.objects.filter(
        verified_at__isnull=True, created_at__lt=timezone.now() - CONFIRM_WITHIN
    )
    old.update(verified_at=F("created_at"))


class Migration(migrations.Migration):
    dependencies = [
        ("recommender", "0014_attributed_orders_confirmed_by_shopify"),
    ]

    operations = [migrations.RunPython(keep_what_cannot_be_asked_about, migrations.RunPython.noop)]
