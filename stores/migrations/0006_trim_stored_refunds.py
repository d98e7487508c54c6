"""Refund deliveries stored before only their order id was kept: trimmed to it. A refund's
note, lines and transactions can name the customer and the card, and the app reads only
which order was refunded."""

from django.db import migrations


def trim_refunds(apps, schema_editor):
    WebhookDelivery = apps.get_model("stores", "WebhookDelivery")
    stored = WebhookDelivery.objects.filter(topic="refunds/create").exclude(payload={})
    for delivery in stored.only("pk", "payload").iterator(chunk_size=500):
        payload = delivery.payload if isinstance(delivery.payload, dict) else {}
        kept = {"order_id": payload.get("order_id")}
        if payload != kept:
            WebhookDelivery.objects.filter(pk=delivery.pk).update(payload=kept)


class Migration(migrations.Migration):
    dependencies = [
        ("stores", "0005_customer_data_requests"),
    ]

    operations = [
        migrations.RunPython(trim_refunds, migrations.RunPython.noop),
    ]
