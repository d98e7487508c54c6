"""Order attribution: the published rules, and the pixel endpoint's refusals."""

from __future__ import annotations

import base64
import json
import re
from datetime import timedelta
from decimal import Decimal

import pytest
from django.core import signing
from django.utils import timezone

from recommender.exchange import attribution, tokens
from recommender.management.commands import network_status
from recommender.models import AttributedOrder, Click, Impression
from recommender.web import stats
from stores.models import Store
from tests.factories import make_store

pytestmark = pytest.mark.django_db


@pytest.fixture
def stores():
    return {
        "sender": make_store("sender", currency="USD"),
        "receiver": make_store("receiver", currency="EUR"),
        "other": make_store("other", currency="USD"),
    }


def click(source, target, *, ago=timedelta(minutes=5)) -> Click:
    return Click.objects.create(
        source_store=source, target_store=target, target_product_id=1, impression_id="i",
        token_id="t", visitor_hash="v", billable=True, reason="billable",
        created_at=timezone.now() - ago,
    )  # fmt: skip


def order(order_id="1001", total="40.00", currency="USD", lines=2) -> attribution.ReportedOrder:
    return attribution.reported_order(
        order_id=order_id, total=total, currency=currency, lines=lines
    )


def record_confirmed(**report) -> str:
    """An order as the pixel reports it, then confirmed as Shopify confirms it
    (``verify_order``, tested against the simulator in test_order_confirmation.py): for
    the figures' tests, which are about what confirmed orders add up to."""
    outcome = attribution.record_order(**report)
    AttributedOrder.objects.filter(verified_at__isnull=True).update(verified_at=timezone.now())
    return outcome


def confirmed_orders(sender, receiver, count: int, *, total: str, currency: str) -> None:
    """``count`` orders of ``total`` each, after clicks from ``sender``'s widget, confirmed."""
    for n in range(count):
        ref = attribution.click_reference(click(sender, receiver))
        record_confirmed(store=receiver, reference=ref,
                         order=order(order_id=str(2000 + n), total=total, currency=currency))  # fmt: skip


def pixel_post(client, store, **fields):
    body = {"key": attribution.pixel_key(store.shop_domain), "shop": store.shop_domain, **fields}
    return client.post("/pixel/events", data=json.dumps(body), content_type="text/plain")


def test_order_within_the_window_is_attributed_to_the_clicks_source_once(stores):
    sender, receiver = stores["sender"], stores["receiver"]
    ref = attribution.click_reference(click(sender, receiver, ago=timedelta(days=6, hours=23)))

    first = attribution.record_order(store=receiver, reference=ref, order=order())
    again = attribution.record_order(store=receiver, reference=ref, order=order())

    assert (first, again) == ("attributed", "already attributed")
    saved = AttributedOrder.objects.get()
    assert (saved.store, saved.source_store, saved.order_id) == (receiver, sender, "1001")
    assert (saved.total, saved.currency, saved.line_count) == (Decimal("40.00"), "USD", 2)


def test_order_after_the_window_is_not_attributed(stores):
    sender, receiver = stores["sender"], stores["receiver"]
    ref = attribution.click_reference(
        click(sender, receiver, ago=attribution.ATTRIBUTION_WINDOW + timedelta(minutes=1))
    )

    outcome = attribution.record_order(store=receiver, reference=ref, order=order())

    assert outcome == "click older than the attribution window"
    assert not AttributedOrder.objects.exists()


def test_the_order_is_the_last_clicks_within_the_window_whichever_link_was_opened_last(
    client, stores
):
    """The browser reports the references it landed with, newest landing first: an old
    link opened last (a shared or bookmarked one), a forged reference and another store's
    reference take nothing from the last click that is still within its window."""
    sender, receiver, other = stores["sender"], stores["receiver"], stores["other"]
    stale = attribution.click_reference(click(other, receiver, ago=timedelta(days=30)))
    earlier = attribution.click_reference(click(other, receiver, ago=timedelta(days=2)))
    last = click(sender, receiver, ago=timedelta(hours=1))
    elsewhere = attribution.click_reference(click(sender, other))

    response = pixel_post(client, receiver, event="checkout_completed", ref=stale,
                          earlier=["forged", elsewhere, attribution.click_reference(last), earlier],
                          order={"id": "1001", "total": "40.00", "currency": "USD", "lines": 2})  # fmt: skip

    assert (response.status_code, response.json()) == (202, {"result": "attributed"})
    assert AttributedOrder.objects.get().click == last


def test_with_no_reference_within_the_window_the_order_is_not_attributed(client, stores):
    sender, receiver = stores["sender"], stores["receiver"]
    old = [attribution.click_reference(click(sender, receiver, ago=timedelta(days=d)))
           for d in (9, 30)]  # fmt: skip

    response = pixel_post(client, receiver, event="checkout_completed", ref=old[0],
                          earlier=[old[1], 7, None, ["x"]],
                          order={"id": "1001", "total": "40.00", "currency": "USD", "lines": 2})  # fmt: skip

    assert response.json() == {"result": "click older than the attribution window"}
    assert not AttributedOrder.objects.exists()


def test_a_link_opened_after_its_clicks_window_is_no_landing(stores):
    sender, receiver = stores["sender"], stores["receiver"]
    old = click(sender, receiver, ago=attribution.ATTRIBUTION_WINDOW + timedelta(minutes=1))

    outcome = attribution.record_landing(store=receiver, reference=attribution.click_reference(old))

    assert outcome == "click older than the attribution window"
    old.refresh_from_db()
    assert old.landed_at is None


def test_two_stores_of_one_currency_see_the_same_amount_sent_and_received():
    """Ten orders of 10.00 EUR between two euro stores: 100.00 EUR received on one page and
    sent on the other (each order rounded in dollars, then summed and converted back, gave
    99.98)."""
    sender, receiver = (
        make_store("eu-sender", currency="EUR"),
        make_store("eu-shop", currency="EUR"),
    )
    confirmed_orders(sender, receiver, 10, total="10.00", currency="EUR")

    since = timezone.now() - timedelta(days=1)
    figures = attribution.store_sales(since=since)
    page = {s.pk: stats.store_stats(s, days=7) for s in (sender, receiver)}

    assert figures[receiver.pk]["revenue_received"] == figures[sender.pk]["revenue_sent"] == 100.0
    assert page[receiver.pk]["totals"]["revenue_received"] == 100.0
    assert page[sender.pk]["totals"]["revenue_sent"] == 100.0
    [row] = [p for p in page[sender.pk]["partners"] if p["store_id"] == receiver.pk]
    assert row["revenue_sent"] == 100.0
    assert sum(day["revenue_sent"] for day in page[sender.pk]["days"]) == 100.0


def test_the_settings_page_and_network_status_give_one_total_sent_across_currencies():
    """Orders of a euro store on several days, sent by a dollar store: the settings page
    converted each day's sum and added the rounded results, a cent or more away from the
    total network_status gives, which converts the sum once."""
    sender, receiver = (
        make_store("us-sender", currency="USD"),
        make_store("eu-shop", currency="EUR"),
    )
    confirmed_orders(sender, receiver, 12, total="10.03", currency="EUR")
    for n, saved in enumerate(AttributedOrder.objects.order_by("pk")):  # over six days
        saved.created_at = timezone.now() - timedelta(days=n % 6, hours=1)
        saved.save(update_fields=["created_at"])

    page = stats.store_stats(sender, days=7)["totals"]["revenue_sent"]
    network = attribution.store_sales(since=timezone.now() - timedelta(days=7))[sender.pk]

    assert page == network["revenue_sent"]
    assert page == float(
        attribution.convert(Decimal("120.36"), from_currency="EUR", to_currency="USD")
    )


def test_amounts_are_in_the_receiving_stores_currency_and_the_reference_currency(stores):
    sender, receiver = stores["sender"], stores["receiver"]  # receiver sells in EUR
    ref = attribution.click_reference(click(sender, receiver))

    record_confirmed(store=receiver, reference=ref, order=order(total="108.00"))

    saved = AttributedOrder.objects.get()
    rate = attribution.REFERENCE_RATES["EUR"]
    assert saved.total_reference == Decimal("108.00")
    assert saved.total_store_currency == (Decimal("108.00") / rate).quantize(Decimal("0.01"))
    assert saved.store_currency == "EUR"
    # The sender sees what it brought in its own currency (USD), at the reference rate.
    since = timezone.now() - timedelta(days=1)
    sales = attribution.store_sales(since=since)
    assert sales[sender.pk]["revenue_sent"] == 108.0
    assert sales[receiver.pk]["revenue_received"] == float(saved.total_store_currency)


def test_a_store_that_changed_its_currency_sums_no_two_currencies(stores):
    """Each order's total is kept in its store's currency of that day. A store that moved
    from euros to naira had its euro orders summed with its naira ones under "NGN" (and,
    until its details were read again, naira ones under "EUR"): the total a merchant saw
    was neither. Where a rate allows, the old orders are converted; where none does, they
    are counted and the page says they are not in the amount."""
    sender, receiver = stores["sender"], stores["receiver"]  # receiver sells in EUR
    record_confirmed(store=receiver, reference=attribution.click_reference(click(sender, receiver)),
                     order=order(order_id="1", total="40.00", currency="EUR"))  # fmt: skip
    Store.objects.filter(pk=receiver.pk).update(currency="NGN")
    receiver.refresh_from_db()
    Click.objects.update(impression_id="j", token_id="u")  # a second click, as the first
    record_confirmed(store=receiver, reference=attribution.click_reference(click(sender, receiver)),
                     order=order(order_id="2", total="27000.00", currency="NGN"))  # fmt: skip
    since = timezone.now() - timedelta(days=1)

    sales = attribution.store_sales(since=since)[receiver.pk]
    page = stats.store_stats(receiver, days=1)

    assert (sales["orders_received"], sales["revenue_received"]) == (2, 27000.0)
    assert sales["orders_received_unpriced"] == 1  # the euro order: no naira rate
    assert (page["totals"]["orders_received"], page["totals"]["revenue_received"]) == (2, 27000.0)
    assert page["orders_received_unpriced"] == 1
    assert page["currency"] == "NGN"


def test_refund_removes_the_order_for_both_stores_and_is_safe_to_repeat(stores):
    sender, receiver = stores["sender"], stores["receiver"]
    ref = attribution.click_reference(click(sender, receiver))
    record_confirmed(store=receiver, reference=ref, order=order(order_id="gid://shopify/Order/77"))
    since = timezone.now() - timedelta(days=1)
    before = attribution.store_sales(since=since)

    first = attribution.remove_refunded(store=receiver, order_id=77)
    again = attribution.remove_refunded(store=receiver, order_id=77)
    after = attribution.store_sales(since=since)

    assert before[receiver.pk]["orders_received"] == before[sender.pk]["orders_sent"] == 1
    assert (first, again) == ("refunded order removed", "refunded order removed")
    assert after[receiver.pk]["orders_received"] == after[sender.pk]["orders_sent"] == 0
    assert after[sender.pk]["revenue_sent"] == 0.0


def test_revenue_per_1000_impressions_is_what_a_store_sent_over_its_viewable_impressions(stores):
    sender, receiver = stores["sender"], stores["receiver"]
    Impression.objects.bulk_create(
        Impression(store=sender, impression_id=f"v{n}", visitor_hash=str(n)) for n in range(8)
    )
    ref = attribution.click_reference(click(sender, receiver))
    record_confirmed(store=receiver, reference=ref, order=order(total="20.00"))

    figures = attribution.store_sales(since=timezone.now() - timedelta(days=1))[sender.pk]

    assert figures["revenue_sent_per_1000_impressions"] == 2500.0  # 20.00 / 8 views x 1,000


def test_settings_stats_report_the_same_figures_as_the_network_summary(stores):
    sender, receiver = stores["sender"], stores["receiver"]
    for n, total in enumerate(["10.00", "15.55", "7.45"]):
        ref = attribution.click_reference(click(sender, receiver))
        record_confirmed(store=receiver, reference=ref, order=order(str(n + 1), total=total))
    attribution.remove_refunded(store=receiver, order_id="3")

    page = {s: stats.store_stats(stores[s], days=30) for s in ("sender", "receiver")}
    network = attribution.store_sales(since=stats.period_start(30))

    for name in ("sender", "receiver"):
        totals, figures = page[name]["totals"], network[stores[name].pk]
        for key in ("orders_received", "revenue_received", "orders_sent", "revenue_sent"):
            assert totals[key] == figures[key], (name, key)
    assert page["sender"]["totals"]["orders_sent"] == 2
    [row] = page["sender"]["partners"]  # a partner with orders but no billed click yet
    assert (row["shop_domain"], row["orders_sent"], row["revenue_sent"]) == (
        "receiver.myshopify.com", 2, 25.55,
    )  # fmt: skip


def test_network_status_reports_what_the_settings_pages_show(stores):
    sender, receiver = stores["sender"], stores["receiver"]
    ref = attribution.click_reference(click(sender, receiver))
    record_confirmed(store=receiver, reference=ref, order=order(total="54.00"))

    status = network_status.network_status()["attributed_sales"]

    assert (status["orders"], status["revenue"], status["currency"]) == (1, 54.0, "USD")
    for store in (sender, receiver):
        totals = stats.store_stats(store, days=network_status.SALES_DAYS)["totals"]
        figures = status["stores"][store.shop_domain]
        assert {k: figures[k] for k in ("orders_received", "revenue_received", "orders_sent",
                                        "revenue_sent")} == {
            k: totals[k] for k in ("orders_received", "revenue_received", "orders_sent",
                                   "revenue_sent")
        }  # fmt: skip
    assert "other.myshopify.com" not in status["stores"]  # no orders either way


def test_pixel_endpoint_attributes_an_order_and_says_so_once(client, stores):
    ref = attribution.click_reference(click(stores["sender"], stores["receiver"]))
    event = {"event": "checkout_completed", "ref": ref,
             "order": {"id": "5", "total": 12.5, "currency": "USD", "lines": 1}}  # fmt: skip

    first = pixel_post(client, stores["receiver"], **event)
    second = pixel_post(client, stores["receiver"], **event)

    assert (first.status_code, first.json()) == (202, {"result": "attributed"})
    assert (second.status_code, second.json()) == (202, {"result": "already attributed"})
    assert first["Access-Control-Allow-Origin"] == "*"
    assert AttributedOrder.objects.count() == 1


def test_pixel_endpoint_records_the_landing(client, stores):
    sent = click(stores["sender"], stores["receiver"])

    response = pixel_post(
        client, stores["receiver"], event="landing", ref=attribution.click_reference(sent)
    )

    assert (response.status_code, response.json()) == (202, {"result": "landed"})
    sent.refresh_from_db()
    assert sent.landed_at is not None


def test_a_partner_reading_its_landing_urls_learns_nothing_of_the_network(stores):
    """``il_ref`` reaches the partner's analytics, logs and referrers with every landing.
    Signed but readable, it told them the network's click count (the click's id, one
    sequence for every store) and our store ids: a partner watching its own landings
    could chart the whole exchange's volume."""
    sender, receiver = stores["sender"], stores["receiver"]
    sent = click(sender, receiver)
    ref = attribution.click_reference(sent)

    readable = b"".join(
        base64.urlsafe_b64decode(part + "=" * (-len(part) % 4))
        for part in re.split(r"[^A-Za-z0-9_-]+", ref)
        if len(part) % 4 != 1
    )

    for told in (f'"c":{sent.pk}', f'"d":{receiver.pk}', '"c"', '"d"'):
        assert told.encode() not in readable
    assert attribution.click_reference(sent) != ref  # nothing repeats to be compared
    # Nor does its length tell how many digits the click's id has.
    later = click(sender, receiver)
    Click.objects.filter(pk=later.pk).update(id=10**12)
    later.pk = 10**12
    assert len(attribution.click_reference(later)) == len(ref)
    assert record_confirmed(store=receiver, reference=ref, order=order()) == "attributed"


def test_references_given_before_they_were_private_still_attribute(stores):
    """A reference lives seven days: the ones in URLs from before (signed, readable) still
    count after the change."""
    sender, receiver = stores["sender"], stores["receiver"]
    sent = click(sender, receiver)
    before = tokens.seal({"c": sent.pk, "d": receiver.pk}, purpose="interlayer.click-reference")

    assert record_confirmed(store=receiver, reference=before, order=order()) == "attributed"


@pytest.mark.parametrize(
    ("forge", "status", "error"),
    [
        ("bad key", 401, "pixel key is not valid"),
        ("key of another shop", 403, "pixel key belongs to another shop"),
        ("tampered reference", 401, "click reference is not valid"),
        ("reference with a character added", 401, "click reference is not valid"),
        ("another store's reference", 403, "click reference is for another store"),
        ("reference of a click that never was", 401, "click reference is not valid"),
        ("malformed order", 400, "order id must be Shopify's order id"),
    ],
)
def test_forged_pixel_requests_are_refused_with_a_clear_error(client, stores, forge, status, error):
    sender, receiver, other = stores["sender"], stores["receiver"], stores["other"]
    ref = attribution.click_reference(click(sender, receiver))
    body = {
        "key": attribution.pixel_key(receiver.shop_domain),
        "shop": receiver.shop_domain,
        "event": "checkout_completed",
        "ref": ref,
        "order": {"id": "9", "total": "30.00", "currency": "USD", "lines": 1},
    }
    if forge == "bad key":
        body["key"] = receiver.shop_domain + ":forged"
    elif forge == "key of another shop":
        body["key"] = attribution.pixel_key(other.shop_domain)
    elif forge == "tampered reference":
        body["ref"] = ref[:-3] + ("abc" if not ref.endswith("abc") else "xyz")
    elif forge == "reference with a character added":  # not base64url: not skipped over
        body["ref"] = ref[:20] + "*" + ref[20:]
    elif forge == "another store's reference":  # the other store's pixel replays B's click
        body.update(key=attribution.pixel_key(other.shop_domain), shop=other.shop_domain)
    elif forge == "reference of a click that never was":
        body["ref"] = signing.dumps(
            {"c": 10**9, "d": receiver.pk}, salt="interlayer.click-reference"
        )
    elif forge == "malformed order":
        body["order"]["id"] = "not-an-order"

    response = client.post("/pixel/events", data=json.dumps(body), content_type="text/plain")

    assert (response.status_code, response.json()) == (status, {"error": error})
    assert not AttributedOrder.objects.exists()


def test_a_pixel_body_nested_too_deep_to_parse_is_400_not_a_server_error(client):
    # Anyone can post here; Python's JSON parser gives up on deep nesting with a
    # RecursionError, not the ValueError of other malformed JSON.
    response = client.post("/pixel/events", data="[" * 3000, content_type="text/plain")

    assert (response.status_code, response.json()) == (400, {"error": "invalid JSON"})


@pytest.mark.parametrize("field", ["key", "shop", "event", "ref"])
def test_a_pixel_field_no_text_column_can_hold_is_400_not_a_server_error(client, stores, field):
    # JSON may carry a lone surrogate ("\ud800"), which is no UTF-8 (the key's signer
    # encodes what precedes its last ":"); and a NUL, which PostgreSQL's text refuses.
    # Anyone can post here: neither may reach a signer or a query.
    receiver = stores["receiver"]
    for bad in ("\ud800:x", "a\x00:b"):
        body = {"key": attribution.pixel_key(receiver.shop_domain), "shop": receiver.shop_domain,
                "event": "landing", "ref": "x", field: bad}  # fmt: skip
        response = client.post("/pixel/events", data=json.dumps(body), content_type="text/plain")

        assert (response.status_code, response.json()) == (
            400,
            {"error": "send key, shop, event and ref"},
        )
    assert not AttributedOrder.objects.exists()


def checkout(stores, **order) -> dict:
    """The receiving store's pixel reporting an order after a genuine click from the
    sender; ``order`` overrides what it says of the order."""
    sender, receiver = stores["sender"], stores["receiver"]
    return {
        "key": attribution.pixel_key(receiver.shop_domain),
        "shop": receiver.shop_domain,
        "event": "checkout_completed",
        "ref": attribution.click_reference(click(sender, receiver)),
        "order": {"id": "9", "total": "30.00", "currency": "USD", "lines": 1, **order},
    }


@pytest.mark.parametrize("currency", ["USD\n", "usd", "US", "USDX", "\nUSD"])
def test_a_currency_code_with_anything_around_it_is_400(client, stores, currency):
    # "USD\n" passed a "^[A-Z]{3}$" check ($ matches before a final newline) and then did
    # not fit the three-character column on PostgreSQL: a 500 for anyone holding a pixel
    # key and a reference, which every shopper's browser does.
    body = checkout(stores, currency=currency)

    response = client.post("/pixel/events", data=json.dumps(body), content_type="text/plain")

    assert (response.status_code, response.json()) == (
        400,
        {"error": "currency must be a three-letter currency code"},
    )
    assert not AttributedOrder.objects.exists()


@pytest.mark.parametrize("order_id", ["9\n", "gid://shopify/Order/9\n"])
def test_an_order_id_with_a_line_break_after_it_is_400(client, stores, order_id):
    body = checkout(stores, id=order_id)

    response = client.post("/pixel/events", data=json.dumps(body), content_type="text/plain")

    assert response.status_code == 400
    assert not AttributedOrder.objects.exists()
