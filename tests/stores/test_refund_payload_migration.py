"""Refund deliveries stored before only their order id was kept are trimmed to it."""

import pytest
from django.db import connection
from django.db.migrations.executor import MigrationExecutor

BEFORE = [("stores", "0005_customer_data_requests")]
AFTER = [("stores", "0006_trim_stored_refunds")]


@pytest.mark.django_db(transaction=True)
def test_refunds_stored_whole_keep_only_their_order():
    executor = MigrationExecutor(connection)
    executor.migrate(BEFORE)
    old = executor.loader.project_state(BEFORE).apps
    Delivery = old.get_model("stores", "WebhookDelivery")
    refund = {"order_id": 450789469, "note": "Returned", "transactions": [
        {"payment_details": {"credit_card_name": "Ana Example"}}]}  # fmt: skip
    Delivery.objects.create(event_id="r1", topic="refunds/create", shop_domain="a.myshopify.com",
                            payload=refund)  # fmt: skip
    # One already emptied by retention: it stays empty.
    Delivery.objects.create(event_id="r2", topic="refunds/create", shop_domain="a.myshopify.com",
                            payload={})  # fmt: skip
    product = {"id": 1, "title": "Mug"}
    Delivery.objects.create(event_id="p1", topic="products/update", shop_domain="a.myshopify.com",
                            payload=product)  # fmt: skip

    executor = MigrationExecutor(connection)
    executor.loader.build_graph()
    executor.migrate(AFTER)
    new = executor.loader.project_state(AFTER).apps.get_model("stores", "WebhookDelivery")

    payloads = dict(new.objects.values_list("event_id", "payload"))
    assert payloads == {"r1": {"order_id": 450789469}, "r2": {}, "p1": product}
    new.objects.all().delete()
    MigrationExecutor(connection).migrate(MigrationExecutor(connection).loader.graph.leaf_nodes())
