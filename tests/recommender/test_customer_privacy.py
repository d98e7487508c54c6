"""Shopify's customer requests (customers/redact, customers/data_request) through the
webhook endpoint, for a store holding orders the exchange brought: what is erased, what is
handed to the merchant, and that nothing of the customer is kept on the way."""

from __future__ import annotations

import json
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from django.utils import timezone

from recommender import lifecycle
from recommender.exchange import attribution, ledger
from recommender.models import AttributedOrder, Click, Impression
from stores import services, webhooks
from stores.models import CustomerDataRequest, WebhookDelivery
from tests.factories import make_store
from tests.stores.test_webhooks import captured, post_webhook

pytestmark = pytest.mark.django_db


@pytest.fixture
def orders():
    """Two orders alpha received from shoppers bravo's widget sent: 299938 (one of the
    customer's) and 555 (someone else's)."""
    alpha = make_store("alpha", currency="USD")
    bravo = make_store("bravo", name="Bravo Books", currency="USD")
    for order_id in ("299938", "555"):
        Impression.objects.create(store=bravo, impression_id=f"view-{order_id}",
                                  visitor_hash="visitor", ip_hash="address")  # fmt: skip
        click = Click.objects.create(
            source_store=bravo, target_store=alpha, target_product_id=1,
            impression_id=f"view-{order_id}", billed_impression=f"view-{order_id}",
            token_id=f"t{order_id}", visitor_hash="visitor",
            ip_hash="address", user_agent="Mozilla/5.0 (Shopper's phone)", billable=True,
            reason="billable", created_at=timezone.now() - timedelta(minutes=30),
            landed_at=timezone.now() - timedelta(minutes=29),
        )  # fmt: skip
        reported = attribution.reported_order(
            order_id=order_id, total="40.00", currency="USD", lines=2
        )
        reference = attribution.click_reference(click)
        assert attribution.record_order(store=alpha, reference=reference, order=reported) == (
            "attributed"
        )
    # Both confirmed by Shopify (test_order_confirmation.py): in the store's figures.
    AttributedOrder.objects.update(verified_at=timezone.now())
    return alpha


def deliver(client, topic: str, payload: dict, event_id: str = "evt-1") -> WebhookDelivery:
    response = post_webhook(client, topic, payload, event_id=event_id)
    assert response.status_code == 200
    webhooks.process_pending()
    return WebhookDelivery.objects.get(event_id=event_id)


def test_customers_redact_erases_what_ties_the_customers_orders_to_them(client, orders):
    since = timezone.now() - timedelta(days=1)
    before = attribution.store_sales(since=since)[orders.pk]

    delivery = deliver(client, "customers/redact", captured("customers_redact"))

    assert delivery.status == WebhookDelivery.Status.DONE
    kept = AttributedOrder.objects.get(store=orders, order_id="555")
    assert kept.click.user_agent == "Mozilla/5.0 (Shopper's phone)"  # someone else's: kept
    redacted = AttributedOrder.objects.exclude(pk=kept.pk).get()
    assert "299938" not in redacted.order_id and redacted.click is None
    # Its day stays (for the figures), not its time, nor the click's: noon of its day
    # where the shop is (UTC here).
    assert (redacted.created_at.hour, redacted.created_at.minute) == (12, 0)
    assert redacted.clicked_at == redacted.created_at
    # The click that brought it keeps what the partners' ledgers need, nothing of the shopper
    # nor the view it came from, whose hashes go too.
    (stripped,) = Click.objects.exclude(pk=kept.click_id)
    assert (stripped.billable, stripped.user_agent, stripped.visitor_hash, stripped.ip_hash) == (
        True, "", "", ""
    )  # fmt: skip
    assert (stripped.impression_id, stripped.landed_at) == ("", None)
    assert stripped.billed_impression == f"redacted-{stripped.pk}"  # not the view's id
    assert Impression.objects.get(impression_id="view-299938").visitor_hash == ""
    assert Impression.objects.get(impression_id="view-555").visitor_hash == "visitor"
    # The store's figures keep the sale.
    assert attribution.store_sales(since=since)[orders.pk] == before
    assert before["orders_received"] == 2
    assert "shopper@example.net" not in json.dumps(delivery.payload)


def test_a_redacted_order_keeps_its_day_in_the_shops_time_zone(client, orders):
    """Its time of day goes; its day, as the shop's figures count days, stays: an order at
    10:00 in Los Angeles was moved to midnight UTC, 16:00 the day before there."""
    los_angeles = ZoneInfo("America/Los_Angeles")
    orders.__class__.objects.filter(pk=orders.pk).update(time_zone="America/Los_Angeles")
    placed = datetime(2026, 11, 24, 10, 0, tzinfo=los_angeles)
    AttributedOrder.objects.filter(order_id="299938").update(created_at=placed, clicked_at=placed)

    deliver(client, "customers/redact", captured("customers_redact"))

    redacted = AttributedOrder.objects.exclude(order_id="555").get()
    local = redacted.created_at.astimezone(los_angeles)
    assert (local.date(), local.hour, local.minute) == (placed.date(), 12, 0)
    assert redacted.clicked_at == redacted.created_at


def test_an_unconfirmed_order_of_the_customer_is_deleted_not_kept(client, orders):
    AttributedOrder.objects.filter(order_id="299938").update(verified_at=None)

    deliver(client, "customers/redact", captured("customers_redact"))

    assert list(AttributedOrder.objects.values_list("order_id", flat=True)) == ["555"]
    # The click behind it loses the shopper as a confirmed order's does, and so does its view.
    stripped = Click.objects.get(token_id="t299938")
    assert (stripped.user_agent, stripped.visitor_hash, stripped.ip_hash) == ("", "", "")
    assert stripped.billable  # the partners' ledgers keep it
    assert Impression.objects.get(impression_id="view-299938").visitor_hash == ""
    assert Click.objects.get(token_id="t555").user_agent == "Mozilla/5.0 (Shopper's phone)"


def test_customers_data_request_lists_what_is_held_of_the_orders_for_the_merchant(client, orders):
    delivery = deliver(client, "customers/data_request", captured("customers_data_request"))

    assert delivery.status == WebhookDelivery.Status.DONE
    request = CustomerDataRequest.objects.get(store=orders)
    assert request.request_id == "9999"
    assert request.order_ids == ["299938", "280263", "220458"]
    (record,) = request.held  # the one of the three orders alpha holds
    assert record["order_id"] == "299938"
    assert (record["total"], record["currency"], record["items"]) == ("40.00", "USD", 2)
    assert record["status"] == "confirmed by Shopify"
    assert (record["referred_by"], record["browser"]) == (
        "Bravo Books", "Mozilla/5.0 (Shopper's phone)"
    )  # fmt: skip
    # Everything held of the click behind it: the product it led to, the landing, whether
    # it was billed, and the widget's view it came from.
    click = Click.objects.get(token_id="t299938")
    view = Impression.objects.get(impression_id="view-299938")
    assert record["clicked_product_id"] == "1"
    assert record["landed_at"] == click.landed_at.isoformat()
    assert record["click_billed"] == "billed"
    assert record["widget_viewed_at"] == view.created_at.isoformat()
    assert "shopper@example.net" not in json.dumps(delivery.payload)
    assert "555-625-1199" not in json.dumps(delivery.payload)


def test_a_data_request_says_a_click_held_for_review_was_not_billed_yet(orders):
    click = Click.objects.get(token_id="t299938")
    ledger.credit_click(click, held=True)  # its source store was under review

    (record,) = lifecycle.customer_order_data(None, store=orders, order_ids=["299938"])

    assert record["click_billed"] == "held for review"


def test_the_merchant_sees_the_answer_on_the_settings_page(client, simulator, install):
    store = install("alpha")
    CustomerDataRequest.objects.create(
        store=store, request_id="9999", order_ids=["299938"],
        held=[{"order_id": "299938", "total": "40.00", "referred_by": "Bravo Books"}],
    )  # fmt: skip

    html = client.get("/", simulator.embedded_query("alpha")).content.decode()

    assert 'id="data-requests"' in html
    assert "Order 299938" in html and "referred by: Bravo Books" in html
    # Said at the top of the page too: the list is at its end, where a merchant who opens
    # the app for its figures never scrolls.
    notice = html.index('id="data-request-notice"')
    assert notice < html.index('id="setup"')
    assert "1 customer data request to pass on" in html[notice - 200 : notice + 400]


def test_a_later_redaction_and_the_retention_take_data_requests_away(client, orders):
    deliver(client, "customers/data_request", captured("customers_data_request"))
    other = CustomerDataRequest.objects.create(store=orders, request_id="1", order_ids=["555"])
    old = CustomerDataRequest.objects.create(
        store=orders, request_id="2", order_ids=["7"],
        created_at=timezone.now() - services.DATA_REQUEST_RETENTION - timedelta(days=1),
    )  # fmt: skip

    deliver(client, "customers/redact", captured("customers_redact"), event_id="evt-2")
    pruned = services.prune_records()

    assert list(CustomerDataRequest.objects.all()) == [other]
    assert (
        pruned["data_requests_deleted"] == 1
        and not CustomerDataRequest.objects.filter(pk=old.pk).exists()
    )


@pytest.mark.parametrize(
    "orders_field",
    [["1", "x"], "299938", [True], [{"id": 1}], list(range(webhooks.MAX_REQUESTED_ORDERS + 1))],
)
def test_malformed_order_lists_are_refused_and_nothing_is_recorded(client, orders_field):
    payload = {**captured("customers_redact"), "orders_to_redact": orders_field}

    response = post_webhook(client, "customers/redact", payload)

    assert response.status_code == 400
    assert not WebhookDelivery.objects.exists()
