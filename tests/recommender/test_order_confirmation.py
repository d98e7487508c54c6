"""Orders count once Shopify confirms them: what a pixel reports is a claim (its key and
the click reference travel through shoppers' browsers, so anyone can send one), checked
against the receiving shop's orders through the Admin API of the simulator, over HTTP."""

from __future__ import annotations

import json
from datetime import timedelta
from decimal import Decimal

import pytest
from django.utils import timezone

from recommender import tasks
from recommender.exchange import attribution, rules
from recommender.models import AttributedOrder, Click
from simulator import pixels
from stores import shopify, webhooks
from stores.models import Store, WebhookDelivery
from tests.factories import make_store
from tests.stores.test_webhooks import post_webhook

pytestmark = pytest.mark.django_db


@pytest.fixture
def shop(simulator, install):
    """alpha installed (its token the app uses to ask Shopify), a partner whose widget sent
    a shopper there five minutes ago, and the reference that click carried."""
    receiver = install("alpha")
    sender = make_store("sender")
    click = Click.objects.create(
        source_store=sender, target_store=receiver, target_product_id=1000, impression_id="i",
        token_id="t", visitor_hash="v", billable=True, reason="billable",
        created_at=timezone.now() - timedelta(minutes=5),
    )  # fmt: skip
    return {"receiver": receiver, "sender": sender, "click": click,
            "ref": attribution.click_reference(click)}  # fmt: skip


def report(client, shop, *, order_id, total="20.00", currency="USD", lines=1):
    """The pixel's checkout_completed, as any browser can send it."""
    receiver = shop["receiver"]
    body = {"key": attribution.pixel_key(receiver.shop_domain), "shop": receiver.shop_domain,
            "event": "checkout_completed", "ref": shop["ref"],
            "order": {"id": str(order_id), "total": total, "currency": currency, "lines": lines}}  # fmt: skip
    response = client.post("/pixel/events", data=json.dumps(body), content_type="text/plain")
    assert response.status_code == 202, response.content
    return response.json()["result"]


@pytest.fixture
def bought(client, simulator, shop, django_capture_on_commit_callbacks):
    """A real order of alpha's product 1000, reported by the pixel (``reported`` overrides
    what the report says); ``shopify_says`` changes what the Admin API answers about it."""

    def buy(*, quantity: int = 1, shopify_says: dict | None = None, **reported) -> dict:
        placed = pixels.place_order(simulator.world, simulator.shop("alpha"), 1000, quantity)
        placed.update(shopify_says or {})
        with django_capture_on_commit_callbacks(execute=True):
            report(client, shop, order_id=placed["id"], **reported)
        return placed

    return buy


def sales(shop) -> tuple[int, float]:
    figures = attribution.store_sales(since=timezone.now() - timedelta(days=1))
    return figures[shop["receiver"].pk]["orders_received"], figures[shop["sender"].pk][
        "revenue_sent"
    ]


def confirm(task_queue) -> list[str]:
    """Run the confirmation tasks the reports queued, as the worker does."""
    queued = [args for func, args in task_queue.new() if func == "recommender.tasks.verify_order"]
    for (pk,) in queued:
        tasks.verify_order(pk)
    task_queue.mark()
    return [str(pk) for (pk,) in queued]


def test_a_forged_order_counts_for_nothing_and_is_dropped(
    client, shop, task_queue, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks(execute=True):
        outcome = report(client, shop, order_id=10**12 + 5, total="800000", currency="CHF")

    assert outcome == "attributed"  # taken in, as any report is...
    assert sales(shop) == (0, 0.0)  # ...but in no figure before Shopify confirms it
    assert len(confirm(task_queue)) == 1
    assert sales(shop) == (0, 0.0)  # Shopify has no such order: it never counts...
    forged = AttributedOrder.objects.get()
    later = forged.created_at + attribution.ORDER_VISIBLE_WITHIN + timedelta(minutes=1)
    assert attribution.verify_order(forged, now=later) == "not an order of this shop: rejected"
    forged.refresh_from_db()
    assert forged.rejected_at is not None and sales(shop) == (0, 0.0)  # ...and it never will


def test_a_real_order_counts_with_shopifys_total_and_lines_not_the_reports(
    bought, shop, task_queue
):
    bought(quantity=2, total="999.00", lines=9)

    confirm(task_queue)

    confirmed = AttributedOrder.objects.get()
    assert (confirmed.total, confirmed.currency, confirmed.line_count) == (
        Decimal("40.00"), "USD", 2
    )  # fmt: skip
    assert confirmed.verified_at is not None
    assert sales(shop) == (1, 40.0)


def test_an_order_placed_before_the_click_is_rejected(bought, shop, task_queue):
    a_day_ago = (timezone.now() - timedelta(days=1)).strftime("%Y-%m-%dT%H:%M:%SZ")
    bought(shopify_says={"created_at": a_day_ago})

    confirm(task_queue)

    assert AttributedOrder.objects.get().rejected_at is not None
    assert sales(shop) == (0, 0.0)


def test_with_shopify_away_the_order_waits_and_reconciliation_asks_again(
    bought, simulator, shop, task_queue
):
    bought()
    simulator.fault("alpha", "graphql", "503", count=20)

    with pytest.raises(shopify.ShopifyUnavailable):
        confirm(task_queue)  # the task fails; the queue may retry it, or it is lost

    assert AttributedOrder.objects.get().verified_at is None
    assert sales(shop) == (0, 0.0)
    simulator.shop("alpha").faults.queues.clear()  # Shopify is back
    AttributedOrder.objects.update(asked_at=timezone.now() - attribution.ASK_AGAIN_AFTER)
    asked = attribution.confirm_pending_orders()
    confirm(task_queue)
    assert asked == 1 and sales(shop) == (1, 20.0)


def pending_order(
    shop, order_id: str, *, age: timedelta, asked: bool, other_click: bool = False
) -> AttributedOrder:
    now = timezone.now()
    return AttributedOrder.objects.create(
        store=shop["receiver"], source_store=shop["sender"],
        click=None if other_click else shop["click"],
        order_id=order_id, total=Decimal("5"), currency="USD",
        total_store_currency=Decimal("5"), store_currency="USD", total_reference=Decimal("5"),
        clicked_at=shop["click"].created_at, created_at=now - age,
        asked_at=now - age if asked else None,
    )  # fmt: skip


def test_an_order_shopify_never_answers_about_is_rejected_once_asked_about_long_enough(
    shop, task_queue
):
    old = attribution.CONFIRM_WITHIN + timedelta(minutes=1)
    asked = pending_order(shop, "1", age=old, asked=True)
    # Never asked (the worker was down throughout): asked now, not rejected unasked.
    never_asked = pending_order(shop, "2", age=old, asked=False)

    attribution.confirm_pending_orders()

    asked.refresh_from_db()
    never_asked.refresh_from_db()
    assert asked.rejected_at is not None
    assert never_asked.rejected_at is None and never_asked.asked_at is not None
    assert [args for func, args in task_queue.new() if func.endswith("verify_order")] == [
        (never_asked.pk,)
    ]


def test_an_order_not_visible_yet_is_asked_about_again_then_dropped(
    client, shop, task_queue, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks(execute=True):
        report(client, shop, order_id=10**12 + 7)

    confirm(task_queue)
    waiting = AttributedOrder.objects.get()  # a moment old: Shopify may not show it yet
    assert waiting.verified_at is None
    later = waiting.created_at + attribution.ORDER_VISIBLE_WITHIN + timedelta(minutes=1)
    assert attribution.verify_order(waiting, now=later) == "not an order of this shop: rejected"
    assert sales(shop) == (0, 0.0)


@pytest.mark.parametrize("kind", ["cancelled", "test"])
def test_a_cancelled_or_test_order_is_rejected(bought, task_queue, kind):
    if kind == "cancelled":
        bought(shopify_says={"cancelled_at": timezone.now().strftime("%Y-%m-%dT%H:%M:%SZ")})
    else:
        bought(shopify_says={"test": True})

    confirm(task_queue)

    assert AttributedOrder.objects.get().rejected_at is not None


def test_an_order_reported_with_a_bots_click_is_rejected_without_asking_shopify(
    bought, simulator, shop, task_queue
):
    Click.objects.filter(pk=shop["click"].pk).update(billable=False, reason=rules.BOT)
    simulator.fault("alpha", "graphql", "503", count=20)  # Shopify is not even asked
    bought()

    confirm(task_queue)

    assert AttributedOrder.objects.get().rejected_at is not None


def test_one_click_brings_a_bounded_number_of_orders_rejected_ones_included(client, shop):
    outcomes = [
        report(client, shop, order_id=10**12 + n) for n in range(attribution.MAX_ORDERS_PER_CLICK)
    ]
    AttributedOrder.objects.update(rejected_at=timezone.now())  # Shopify had none of them

    again = report(client, shop, order_id=10**12 + 99)

    assert outcomes == ["attributed"] * attribution.MAX_ORDERS_PER_CLICK
    assert again == "too many orders for one click"  # a rejected report frees no place


def test_a_store_asks_shopify_about_a_bounded_number_of_orders_an_hour(
    client, shop, task_queue, django_capture_on_commit_callbacks
):
    for n in range(attribution.CONFIRMATIONS_PER_STORE_PER_HOUR):
        pending_order(shop, f"9{n}", age=timedelta(minutes=1), asked=True, other_click=True)
    task_queue.mark()

    with django_capture_on_commit_callbacks(execute=True):
        assert report(client, shop, order_id=10**12 + 1) == "attributed"

    assert not [f for f, _ in task_queue.new() if f.endswith("verify_order")]  # it waits
    assert AttributedOrder.objects.get(order_id=str(10**12 + 1)).asked_at is None


def test_a_real_order_after_a_click_that_billed_nothing_still_counts(bought, shop, task_queue):
    # Seen on Wi-Fi, clicked on mobile data: the click bills nothing, the sale is real.
    Click.objects.filter(pk=shop["click"].pk).update(billable=False, reason=rules.ANOTHER_SHOPPER)
    bought()

    confirm(task_queue)

    assert sales(shop) == (1, 20.0)


def sold_in(currency: str, total: str, bought, shop, task_queue):
    """The receiving store sells in ``currency``: one order of ``total`` reported and
    confirmed in it, counted in the store's own currency. Returns the order and the
    network's figures."""
    Store.objects.filter(pk=shop["receiver"].pk).update(currency=currency)
    bought(currency=currency, total=total, shopify_says={"currency": currency, "total": total})
    confirm(task_queue)
    saved = AttributedOrder.objects.get()
    assert saved.verified_at is not None and saved.rejected_at is None
    assert (saved.total_store_currency, saved.store_currency) == (Decimal(total), currency)
    return saved, attribution.store_sales(since=timezone.now() - timedelta(days=1))


def test_an_order_in_a_currency_without_a_reference_rate_counts_in_that_stores_figures(
    bought, shop, task_queue
):
    """A store selling in a currency no reference rate is published for (the naira here)
    had every order refused when its pixel reported it: "Orders the network brought you"
    stayed at 0. Its own figures need no rate (Shopify gives the order in the shop's
    currency); the partner that sent the shopper counts the order, but cannot price it in
    its own currency, and is told so rather than shown a figure converted at 1:1."""
    saved, figures = sold_in("NGN", "27000", bought, shop, task_queue)

    assert saved.total_reference is None
    received, sent = figures[shop["receiver"].pk], figures[shop["sender"].pk]
    assert (received["orders_received"], received["revenue_received"]) == (1, 27000.0)
    assert received["currency"] == "NGN"
    assert (sent["orders_sent"], sent["revenue_sent"], sent["orders_sent_unpriced"]) == (1, 0.0, 1)


def test_an_order_in_a_currency_of_large_numbers_counts_at_what_it_is_worth(
    client, bought, shop, task_queue
):
    """Rp 2,500,000 is about 140 US dollars: an everyday order of a store selling in
    rupiah, which a bound of a million in any currency refused at the pixel and again
    when Shopify confirmed it."""
    saved, figures = sold_in("IDR", "2500000", bought, shop, task_queue)

    assert Decimal("100") < saved.total_reference < Decimal("200")
    assert figures[shop["receiver"].pk]["revenue_received"] == 2500000.0
    assert 100 < figures[shop["sender"].pk]["revenue_sent"] < 200


def test_an_order_worth_more_than_a_million_dollars_is_no_shoppers_and_never_counts(
    client, bought, shop, task_queue
):
    body = {"key": attribution.pixel_key(shop["receiver"].shop_domain),
            "shop": shop["receiver"].shop_domain, "event": "checkout_completed",
            "ref": shop["ref"], "order": {"id": "77", "total": "900000", "currency": "GBP",
                                          "lines": 1}}  # fmt: skip
    refused = client.post("/pixel/events", data=json.dumps(body), content_type="text/plain")
    assert (refused.status_code, refused.json()) == (400, {"error": "total is out of range"})

    bought(shopify_says={"currency": "USD", "total": "1500000.00"})  # reported as 20.00
    confirm(task_queue)

    saved = AttributedOrder.objects.get()
    assert saved.rejected_at is not None and saved.verified_at is None
    assert sales(shop) == (0, 0.0)


def test_a_store_in_a_currency_without_a_reference_rate_sees_partners_sales_in_the_reference(
    bought, shop, task_queue
):
    Store.objects.filter(pk=shop["sender"].pk).update(currency="NGN")
    bought(shopify_says={"currency": "USD", "total": "20.00"})

    confirm(task_queue)

    sent = attribution.store_sales(since=timezone.now() - timedelta(days=1))[shop["sender"].pk]
    assert (sent["orders_sent"], sent["revenue_sent"], sent["sent_currency"]) == (1, 20.0, "USD")
    assert sent["currency"] == "NGN"


def test_a_cancelled_order_leaves_the_figures_and_its_customer_is_never_stored(
    bought, client, shop, task_queue
):
    placed = bought()
    confirm(task_queue)
    assert sales(shop) == (1, 20.0)
    # Unpaid, cancelled days later: no refund is made, orders/cancelled is all there is.
    payload = {"id": placed["id"], "cancelled_at": "2026-11-25T10:00:00Z", "cancel_reason":
               "customer", "email": "shopper@example.com",
               "customer": {"id": 207119551, "email": "shopper@example.com"},
               "shipping_address": {"address1": "1 Example Street"}}  # fmt: skip

    response = post_webhook(client, "orders/cancelled", payload, event_id="evt-cancel")
    webhooks.process_pending()

    assert response.status_code == 200
    delivery = WebhookDelivery.objects.get(event_id="evt-cancel")
    assert delivery.payload == {"id": placed["id"], "cancelled_at": "2026-11-25T10:00:00Z"}
    assert delivery.outcome == "refunded order removed"
    assert sales(shop) == (0, 0.0)


def test_a_refund_leaves_the_figures_and_nothing_of_it_but_the_order_is_stored(
    bought, client, simulator, shop, task_queue
):
    placed = bought()
    confirm(task_queue)
    pixels.refund_order(simulator.world, simulator.shop("alpha"), placed["id"])
    # A refund as Shopify sends it: its note, lines and transactions can name the customer
    # and the card (the cardholder's name in payment_details).
    payload = {"id": 890088186, "order_id": placed["id"], "note": "Returned: wrong size",
               "refund_line_items": [{"line_item": {"properties": [{"name": "Engraving",
                                                                    "value": "For Ana"}]}}],
               "transactions": [{"kind": "refund", "amount": "20.00", "payment_details": {
                   "credit_card_name": "Ana Example", "credit_card_number": "•••• 4242"},
                   "receipt": {"authorization": "ch_1"}}]}  # fmt: skip

    response = post_webhook(client, "refunds/create", payload, event_id="evt-refund")
    webhooks.process_pending()

    assert response.status_code == 200
    delivery = WebhookDelivery.objects.get(event_id="evt-refund")
    assert delivery.payload == {"order_id": placed["id"]}
    assert delivery.outcome == "refunded order removed"
    assert sales(shop) == (0, 0.0)


def refund(client, simulator, placed, amount: str | None = None, event_id: str = "evt-r"):
    """The merchant refunds ``amount`` of the order (all of it by default); Shopify sends
    refunds/create, and the worker takes it."""
    pixels.refund_order(simulator.world, simulator.shop("alpha"), placed["id"], amount=amount)
    post_webhook(client, "refunds/create", {"order_id": placed["id"]}, event_id=event_id)
    webhooks.process_pending()
    return WebhookDelivery.objects.get(event_id=event_id).outcome


def test_a_partial_refund_leaves_what_is_left_of_the_order_in_the_figures(
    bought, client, simulator, shop, task_queue
):
    """A 5.00 refund of a 20.00 order took the whole order out of both stores' figures."""
    placed = bought()
    confirm(task_queue)

    assert refund(client, simulator, placed, "5.00") == "partly refunded: counts for what is left"
    assert sales(shop) == (1, 15.0)
    assert refund(client, simulator, placed, "0.00", event_id="evt-r2").startswith("partly")
    assert sales(shop) == (1, 15.0)  # a refund of nothing (a restock alone) takes nothing
    assert refund(client, simulator, placed, "15.00", event_id="evt-r3") == (
        "refunded order removed"
    )
    assert sales(shop) == (0, 0.0)


def test_of_two_refunds_counted_at_once_the_later_answer_stays(
    bought, client, simulator, shop, task_queue
):
    """Two workers count two refunds of one order at once; the one that read Shopify first
    writes last. What it read (less refunded) must not put back what the other took off."""
    placed = bought()
    confirm(task_queue)
    refund(client, simulator, placed, "5.00")
    refund(client, simulator, placed, "5.00", event_id="evt-r2")
    assert sales(shop) == (1, 10.0)

    simulator.shop("alpha").orders[placed["id"]]["refunds"].pop()  # Shopify as read before
    outcome = attribution.recount_refunded(store=shop["receiver"], order_id=placed["id"])

    assert outcome == "partly refunded: counts for what is left"
    assert sales(shop) == (1, 10.0)


def test_an_order_partly_refunded_before_it_is_confirmed_counts_for_the_rest(
    bought, client, simulator, shop, task_queue
):
    """The refund comes while Shopify is being asked about the order: an answer on its way
    may be from before the refund, so the order is asked about again, and only the answer
    to the latest question is taken."""
    placed = bought()  # reported; its question to Shopify queued
    on_its_way = AttributedOrder.objects.get()  # a worker has read the order, and asks

    assert refund(client, simulator, placed, "8.00") == (
        "order not confirmed yet: asked again, with its refund"
    )
    assert attribution.verify_order(on_its_way) == "asked again meanwhile: the newer answer counts"
    assert AttributedOrder.objects.get().verified_at is None

    confirm(task_queue)
    assert sales(shop) == (1, 12.0)  # the newer answer, with the refund


def test_a_free_order_counts_as_an_order_of_nothing(bought, client, simulator, shop, task_queue):
    """Confirmed with a total of 0.00 and nothing refunded, an order was taken for one
    refunded in full and left every figure."""
    placed = bought(shopify_says={"total": "0.00"})
    confirm(task_queue)
    assert sales(shop) == (1, 0.0)

    assert refund(client, simulator, placed, "0.00") == "nothing refunded"  # a restock
    assert sales(shop) == (1, 0.0)


def test_a_refund_shopify_cannot_be_asked_about_takes_the_order_out(
    bought, client, simulator, shop, task_queue
):
    """The store's token refused by the time the refund comes: the refund cannot be sized,
    and the order leaves the figures rather than count in full."""
    placed = bought()
    confirm(task_queue)
    simulator.shop("alpha").access_tokens.clear()  # Shopify refuses the store's token
    simulator.shop("alpha").refresh_tokens.clear()  # and its refresh

    assert refund(client, simulator, placed, "5.00") == "refunded order removed"
    assert sales(shop) == (0, 0.0)


def test_forged_reports_from_one_address_do_not_lock_out_other_shoppers_orders(
    bought, client, shop, task_queue, monkeypatch
):
    """The pixel key is public and any click makes a reference: one address follows a few
    partner links and posts made-up orders until the store's queue of unconfirmed reports
    is full. Every real order reported after that used to be refused (the pixel does not
    report twice), so the partner lost its sales. Now one address's clicks can keep only
    a few reports waiting; the store's own bound is for floods from many addresses."""
    monkeypatch.setattr(attribution, "MAX_UNCONFIRMED_PER_STORE", 20)
    receiver, sender = shop["receiver"], shop["sender"]
    for n in range(4):
        click = Click.objects.create(
            source_store=sender, target_store=receiver, target_product_id=1000,
            impression_id=f"forger-{n}", token_id=f"forger-{n}", visitor_hash=f"agent-{n}",
            ip_hash="forger-address", reason=rules.NO_VIEW, created_at=timezone.now(),
        )  # fmt: skip
        forger = {**shop, "ref": attribution.click_reference(click)}
        for m in range(5):
            report(client, forger, order_id=9_000_000 + 10 * n + m)

    bought()  # a real shopper's order
    confirm(task_queue)

    assert sales(shop) == (1, 20.0)
    waiting = AttributedOrder.objects.filter(verified_at__isnull=True, rejected_at__isnull=True)
    assert waiting.count() <= attribution.MAX_UNCONFIRMED_PER_ADDRESS


ALREADY = {"result": "already attributed"}
NOT_AN_ID = {"error": "order id must be Shopify's order id"}


@pytest.mark.parametrize(
    ("written", "answer"),
    [(lambda n: f"00{n}", ALREADY), (lambda n: f"gid://shopify/Order/0{n}", ALREADY),
     (lambda n: f"gid://shopify/OrderIdentity/{n}", ALREADY),
     (lambda n: str(n).translate(str.maketrans("0123456789", "٠١٢٣٤٥٦٧٨٩")), NOT_AN_ID)],
    ids=["leading zeros", "gid with a leading zero", "order identity gid", "arabic-indic digits"],
)  # fmt: skip
def test_one_order_reported_again_with_its_id_written_differently_counts_once(
    bought,
    client,
    simulator,
    shop,
    task_queue,
    django_capture_on_commit_callbacks,
    written,
    answer,
):
    """Shopify reads an order id as the number it writes, so "0123" is order 123 to it:
    reported again with leading zeros, the same order was a second attribution, confirmed
    by Shopify, and out of reach of the refund (which names the order as 123)."""
    placed = bought()
    receiver = shop["receiver"].shop_domain
    body = {"key": attribution.pixel_key(receiver), "shop": receiver,
            "event": "checkout_completed", "ref": shop["ref"],
            "order": {"id": written(placed["id"]), "total": "20.00", "currency": "USD",
                      "lines": 1}}  # fmt: skip

    with django_capture_on_commit_callbacks(execute=True):
        again = client.post("/pixel/events", data=json.dumps(body), content_type="text/plain")
    confirm(task_queue)

    assert again.json() == answer
    assert sales(shop) == (1, 20.0)
    pixels.refund_order(simulator.world, simulator.shop("alpha"), placed["id"])
    post_webhook(client, "refunds/create", {"order_id": placed["id"]}, event_id="evt-refund-0")
    webhooks.process_pending()
    assert sales(shop) == (0, 0.0)


def test_an_order_refunded_before_it_is_reported_does_not_count(
    client, simulator, shop, task_queue, django_capture_on_commit_callbacks
):
    """The refund's webhook found no attributed order to remove (the report came later: the
    shopper's browser, or anyone holding the click reference and the order id, sends it
    when it likes), so Shopify's answer about the order must say it was refunded."""
    placed = pixels.place_order(simulator.world, simulator.shop("alpha"), 1000)
    pixels.refund_order(simulator.world, simulator.shop("alpha"), placed["id"])
    post_webhook(client, "refunds/create", {"order_id": placed["id"]}, event_id="evt-early")
    webhooks.process_pending()
    assert WebhookDelivery.objects.get(event_id="evt-early").outcome == "order not attributed"

    with django_capture_on_commit_callbacks(execute=True):
        assert report(client, shop, order_id=placed["id"]) == "attributed"
    confirm(task_queue)

    assert sales(shop) == (0, 0.0)


@pytest.mark.parametrize("status", [Store.Status.NEEDS_REAUTH, Store.Status.FROZEN])
def test_an_order_placed_while_the_store_is_out_of_the_exchange_still_counts(
    bought, shop, task_queue, status
):
    """A store Shopify refused our token for (or froze a while) keeps its storefront, its
    web pixel and its shoppers' orders; a shopper a partner sent there days before buys.
    The report was refused ("unknown shop") and, as the pixel reports once, lost to the
    partner for good, though Shopify confirms it once the store is back."""
    Store.objects.filter(pk=shop["receiver"].pk).update(status=status)

    bought()  # reported: the pixel is answered 202
    Store.objects.filter(pk=shop["receiver"].pk).update(status=Store.Status.ACTIVE)
    confirm(task_queue)

    assert sales(shop) == (1, 20.0)


def test_an_uninstalled_stores_pixel_is_refused(client, shop):
    Store.objects.filter(pk=shop["receiver"].pk).update(status=Store.Status.UNINSTALLED)
    receiver = shop["receiver"].shop_domain
    body = {"key": attribution.pixel_key(receiver), "shop": receiver, "event": "landing",
            "ref": shop["ref"]}  # fmt: skip

    response = client.post("/pixel/events", data=json.dumps(body), content_type="text/plain")

    assert (response.status_code, response.json()) == (404, {"error": "unknown shop"})


@pytest.mark.parametrize(
    "odd",
    [{"total": "NaN"}, {"created_at": "not a time"},
     {"line_items": [{"product_id": 1000, "quantity": -3, "price": "20.00"}]}],
)  # fmt: skip
def test_an_answer_from_shopify_that_cannot_be_read_rejects_the_order(
    bought, shop, task_queue, odd
):
    # Each raised in the confirmation task (a NaN compared, a time that is none, a negative
    # count the column refuses): the order stayed unconfirmed and was asked about every
    # half hour for 14 days, spending the store's hourly questions.
    bought(shopify_says=odd)

    confirm(task_queue)

    order = AttributedOrder.objects.get()
    assert (order.verified_at, order.rejected_at is not None) == (None, True)
    assert sales(shop) == (0, 0.0)


def test_an_order_time_without_a_zone_is_read_as_utc(bought, shop, task_queue):
    # fromisoformat gave a time without a zone, which cannot be compared with the click's.
    bought(shopify_says={"created_at": timezone.now().strftime("%Y-%m-%dT%H:%M:%S")})

    confirm(task_queue)

    assert AttributedOrder.objects.get().verified_at is not None


def test_a_wholesale_order_of_many_units_counts_them(bought, shop, task_queue):
    # Shopify's count is of units (the report's is of lines): 20,000 is an order, not an
    # answer that cannot be read.
    bought(shopify_says={"line_items": [{"product_id": 1000, "quantity": 20_000, "price": "1.00"}]})

    confirm(task_queue)

    order = AttributedOrder.objects.get()
    assert (order.verified_at is not None, order.line_count) == (True, 20_000)
