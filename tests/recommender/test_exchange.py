"""The credit exchange: the published rules, append-only ledger, and real concurrency."""

from __future__ import annotations

import importlib
import threading
from datetime import timedelta
from decimal import Decimal

import pytest
from django.core import signing
from django.db import connections
from django.db.models import F
from django.test import override_settings
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from recommender import runtime
from recommender.exchange import clicks, impressions, ledger, review, rules, tokens
from recommender.models import Click, Impression, LedgerEntry, WidgetSettings
from recommender.web import stats
from stores import services
from stores.models import Store
from tests.factories import make_store

BROWSER = "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 Chrome/156.0 Safari/537.36"


@pytest.fixture
def pair(db):
    sender, receiver = make_store("sender"), make_store("receiver")
    ledger.grant_starter_credits(sender)
    ledger.grant_starter_credits(receiver)
    return sender, receiver


def token_for(
    sender, receiver, product_id=555, impression="imp-1", *, ip="203.0.113.9", seen=True,
    user_agent=BROWSER,
):  # fmt: skip
    """A click token as the widget hands it out, for a view the shopper really saw (the
    impression recorded through the impression endpoint's service) unless ``seen=False``."""
    visitor = rules.visitor(ip=ip, user_agent=user_agent)
    if seen:
        raw = tokens.sign_impression(
            store_id=sender.pk, impression_id=impression, items=4, partner_items=3, visitor=visitor
        )
        impressions.record_impression(host=sender, raw=raw, ip=ip, user_agent=user_agent)
    signed = tokens.issue_click_token(
        impression_id=impression,
        source_store_id=sender.pk,
        target_store_id=receiver.pk,
        target_product_id=product_id,
    )
    return tokens.read_click_token(signed)


def settled_click(*, token, ip: str, user_agent: str) -> Click:
    """A click as the storefront makes one: recorded before the redirect, settled after."""
    click = clicks.record_click(token=token, ip=ip, user_agent=user_agent)
    clicks.settle_clicks()
    click.refresh_from_db()
    return click


def test_starter_grant_is_given_once(pair):
    sender, _ = pair

    assert ledger.grant_starter_credits(sender) is False
    assert ledger.balance(sender) == rules.STARTER_GRANT


def test_billable_click_earns_the_sender_and_charges_the_receiver(pair):
    sender, receiver = pair

    click = settled_click(token=token_for(sender, receiver), ip="203.0.113.9", user_agent=BROWSER)

    assert click.billable and click.reason == "billable"
    assert ledger.balance(sender) == rules.STARTER_GRANT + rules.EARN_PER_CLICK
    assert ledger.balance(receiver) == rules.STARTER_GRANT - rules.SPEND_PER_CLICK
    assert rules.EARN_PER_CLICK < rules.SPEND_PER_CLICK  # the network cannot inflate


@pytest.mark.parametrize(
    ("user_agent", "reason"),
    [
        ("Googlebot/2.1 (+http://www.google.com/bot.html)", "bot"),
        ("python-httpx/0.28", "bot"),
        ("", "bot"),
    ],
)
def test_bot_clicks_are_recorded_but_not_billed(pair, user_agent, reason):
    sender, receiver = pair

    click = settled_click(
        token=token_for(sender, receiver), ip="203.0.113.9", user_agent=user_agent
    )

    assert (click.billable, click.reason) == (False, reason)
    assert Click.objects.count() == 1
    assert LedgerEntry.objects.exclude(kind=LedgerEntry.Kind.GRANT).count() == 0


def test_same_visitor_same_product_bills_once_per_24_hours(pair):
    sender, receiver = pair
    first = settled_click(token=token_for(sender, receiver), ip="203.0.113.9", user_agent=BROWSER)
    second = settled_click(
        token=token_for(sender, receiver, impression="imp-2"), ip="203.0.113.9", user_agent=BROWSER
    )
    assert (first.billable, second.billable, second.reason) == (True, False, "repeat within 24h")

    Click.objects.filter(pk=first.pk).update(created_at=timezone.now() - timedelta(hours=25))
    third = settled_click(
        token=token_for(sender, receiver, impression="imp-3"), ip="203.0.113.9", user_agent=BROWSER
    )

    assert third.billable


def test_own_store_click_is_never_billable(pair):
    sender, _ = pair

    click = settled_click(token=token_for(sender, sender), ip="203.0.113.9", user_agent=BROWSER)

    assert (click.billable, click.reason) == (False, "own store")


def test_replayed_token_bills_once_by_its_shopper_and_never_for_another_visitor(pair):
    sender, receiver = pair
    token = token_for(sender, receiver)

    first = settled_click(token=token, ip="203.0.113.9", user_agent=BROWSER)
    replay = settled_click(token=token, ip="203.0.113.9", user_agent=BROWSER)
    elsewhere = settled_click(token=token, ip="198.51.100.7", user_agent=BROWSER)

    assert first.billable and not replay.billable and not elsewhere.billable
    assert replay.reason == "impression already clicked"
    assert elsewhere.reason == "not the shopper it was shown to"


def test_tampered_and_forged_tokens_are_rejected(pair):
    sender, receiver = pair
    signed = tokens.issue_click_token(
        impression_id="i",
        source_store_id=sender.pk,
        target_store_id=receiver.pk,
        target_product_id=1,
    )
    payload, signature = signed.rsplit(".", 1)
    forged = {"t": "x", "i": "i", "s": sender.pk, "d": receiver.pk, "p": 2, "v": "v", "w": "w"}
    with override_settings(SECRET_KEY="not-our-secret"):
        forged_seal = tokens.seal(forged, purpose="interlayer.click")
    forged_in_the_old_format = signing.dumps(forged, key="not-our-secret", salt="interlayer.click")
    # Our own seal, made for another purpose (an impression), is not a click token either.
    other_purpose = tokens.seal(forged, purpose="interlayer.impression")

    with pytest.raises(tokens.InvalidClickToken, match="tampered"):
        tokens.read_click_token(payload + "." + signature[::-1])
    with pytest.raises(tokens.InvalidClickToken, match="tampered"):
        tokens.read_click_token(payload[:-2] + ("A" if payload[-2] != "A" else "B")
                                + payload[-1:] + "." + signature)  # fmt: skip
    for token in (forged_seal, forged_in_the_old_format, other_purpose, "", ".", "é.é"):
        with pytest.raises(tokens.InvalidClickToken, match="tampered"):
            tokens.read_click_token(token)


def test_expired_token_is_rejected(pair, monkeypatch):
    sender, receiver = pair
    signed = tokens.issue_click_token(
        impression_id="i",
        source_store_id=sender.pk,
        target_store_id=receiver.pk,
        target_product_id=1,
    )

    monkeypatch.setattr(rules, "CLICK_TOKEN_MAX_AGE", timedelta(seconds=-1))

    with pytest.raises(tokens.InvalidClickToken, match="expired"):
        tokens.read_click_token(signed)


def test_visitor_hash_is_salted_and_rotates(pair):
    now = timezone.now()

    current, previous = rules.visitor_hashes(ip="203.0.113.9", user_agent=BROWSER, now=now)
    tomorrow, today = rules.visitor_hashes(
        ip="203.0.113.9", user_agent=BROWSER, now=now + rules.VISITOR_SALT_PERIOD
    )

    assert current != previous and today == current and tomorrow != current
    assert "203.0.113.9" not in current


def test_partner_ledger_shows_sent_and_received_per_partner(pair):
    sender, receiver = pair
    for n in range(3):
        settled_click(
            token=token_for(sender, receiver, product_id=n, impression=f"sent-{n}"),
            ip="203.0.113.9",
            user_agent=BROWSER,
        )
    settled_click(
        token=token_for(receiver, sender, product_id=9, impression="received", ip="203.0.113.50"),
        ip="203.0.113.50",
        user_agent=BROWSER,
    )

    (row,) = ledger.partner_ledger(sender)

    assert (row["shop_domain"], row["clicks_sent"], row["clicks_received"]) == (
        "receiver.myshopify.com",
        3,
        1,
    )
    assert row["net"] == 3 * rules.EARN_PER_CLICK - rules.SPEND_PER_CLICK


@pytest.mark.django_db(transaction=True)
def test_concurrent_clicks_never_lose_or_double_count_credits():
    sender, receiver = make_store("sender"), make_store("receiver")
    ledger.grant_starter_credits(sender)
    ledger.grant_starter_credits(receiver)
    barrier = threading.Barrier(16, timeout=60)  # a thread that fails first fails the test
    errors = []

    def click(ip: str, product_id: int) -> None:
        try:
            token = token_for(sender, receiver, product_id=product_id, impression=ip, ip=ip)
            barrier.wait()
            settled_click(token=token, ip=ip, user_agent=BROWSER)
        except Exception as error:  # collected for the assertion
            errors.append(error)
        finally:
            connections.close_all()

    # 8 distinct visitors, and one visitor hammering the same product 8 times at once.
    threads = [threading.Thread(target=click, args=(f"198.51.100.{n}", 1)) for n in range(8)]
    threads += [threading.Thread(target=click, args=("203.0.113.77", 2)) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert errors == []
    assert Click.objects.count() == 16
    assert Click.objects.filter(billable=True).count() == 9
    # Nine views, nine clicks: review holds what comes after the first few. Every billable
    # click is earned once (available or held), and each one not held is paid for once.
    available, held = ledger.balance(sender), ledger.held_earnings(sender)
    assert available + held == rules.STARTER_GRANT + 9 * rules.EARN_PER_CLICK
    paid = LedgerEntry.objects.filter(kind=LedgerEntry.Kind.EARN).count()
    assert ledger.balance(receiver) == rules.STARTER_GRANT - paid * rules.SPEND_PER_CLICK
    earned = LedgerEntry.objects.filter(kind__in=[LedgerEntry.Kind.EARN, LedgerEntry.Kind.HELD])
    assert sum(e.amount for e in earned) == Decimal("0.80") * 9


def test_a_click_without_a_viewable_impression_is_raw_not_billable(pair):
    sender, receiver = pair

    click = settled_click(
        token=token_for(sender, receiver, seen=False), ip="203.0.113.9", user_agent=BROWSER
    )

    assert (click.billable, click.reason) == (False, "no viewable impression")
    assert ledger.balance(sender) == rules.STARTER_GRANT


def test_an_impression_seen_by_another_visitor_does_not_make_the_click_billable(pair):
    sender, receiver = pair
    # The view was reported for one visitor; the token was served to another.
    token_for(sender, receiver, impression="shared", ip="198.51.100.1")
    token = token_for(sender, receiver, impression="shared", ip="198.51.100.2", seen=False)

    click = settled_click(token=token, ip="198.51.100.2", user_agent=BROWSER)

    assert (click.billable, click.reason) == (False, "not the shopper it was shown to")


@pytest.mark.parametrize(
    ("limit", "ips"),
    [
        ("visitor limit", ["203.0.113.9"] * 4),  # one shopper, four products in an hour
        ("address limit", None),  # many agents behind one address
    ],
)
def test_hourly_limits_leave_clicks_raw(pair, limit, ips):
    sender, receiver = pair
    results = []
    if limit == "visitor limit":
        for n, ip in enumerate(ips):
            token = token_for(sender, receiver, product_id=n, impression=f"v{n}", ip=ip)
            results.append(settled_click(token=token, ip=ip, user_agent=BROWSER))
        allowed = rules.BILLABLE_CLICKS_PER_VISITOR_PER_HOUR
    else:
        allowed = rules.BILLABLE_CLICKS_PER_IP_PER_HOUR
        for n in range(allowed + 2):
            agent = BROWSER.replace("156.0", f"156.{n}")
            visitor = rules.visitor(ip="192.0.2.1", user_agent=agent)
            raw = tokens.sign_impression(store_id=sender.pk, impression_id=f"a{n}", items=4,
                                         partner_items=3, visitor=visitor)  # fmt: skip
            impressions.record_impression(host=sender, raw=raw, ip="192.0.2.1", user_agent=agent)
            signed = tokens.issue_click_token(impression_id=f"a{n}", source_store_id=sender.pk,
                                              target_store_id=receiver.pk, target_product_id=n)  # fmt: skip
            token = tokens.read_click_token(signed)
            results.append(settled_click(token=token, ip="192.0.2.1", user_agent=agent))

    assert [c.billable for c in results[:allowed]] == [True] * allowed
    assert {c.reason for c in results[allowed:]} == {limit}


@pytest.mark.parametrize("release", [True, False])
def test_held_clicks_charge_nobody_until_released_and_nothing_once_voided(pair, release):
    sender, receiver = pair
    for n in range(2):
        click = Click.objects.create(
            source_store=sender, target_store=receiver, target_product_id=n, impression_id=f"h{n}",
            token_id=f"h{n}", visitor_hash="v", billable=True, reason="held for review",
        )  # fmt: skip
        ledger.credit_click(click, held=True)
    assert ledger.held_earnings(sender) == 2 * rules.EARN_PER_CLICK
    assert ledger.balance(sender) == rules.STARTER_GRANT
    assert ledger.balance(receiver) == rules.STARTER_GRANT  # not charged while held

    resolved = ledger.resolve_held(sender, release=release)
    again = ledger.resolve_held(sender, release=not release)

    assert resolved == ((2, 0) if release else (0, 2))
    assert again == (0, 0)
    assert ledger.held_earnings(sender) == 0
    if release:
        assert ledger.balance(sender) == rules.STARTER_GRANT + 2 * rules.EARN_PER_CLICK
        assert ledger.balance(receiver) == rules.STARTER_GRANT - 2 * rules.SPEND_PER_CLICK
    else:
        assert ledger.balance(sender) == rules.STARTER_GRANT
        assert ledger.balance(receiver) == rules.STARTER_GRANT


def test_releasing_a_held_click_the_partner_can_no_longer_pay_voids_it(pair):
    sender, receiver = pair
    click = Click.objects.create(
        source_store=sender, target_store=receiver, target_product_id=1, impression_id="h",
        token_id="h", visitor_hash="v", billable=True, reason="held for review",
    )  # fmt: skip
    ledger.credit_click(click, held=True)
    LedgerEntry.objects.create(store=receiver, kind=LedgerEntry.Kind.SPEND,
                               amount=-(rules.STARTER_GRANT - Decimal("0.40")))  # fmt: skip

    assert ledger.resolve_held(sender, release=True) == (0, 1)
    assert ledger.balance(receiver) == Decimal("0.40")
    assert ledger.balance(sender) == rules.STARTER_GRANT


def held_click(sender, receiver, n: int = 1) -> Click:
    click = Click.objects.create(
        source_store=sender, target_store=receiver, target_product_id=n, impression_id=f"h{n}",
        token_id=f"h{n}", visitor_hash="v", billable=True, reason=rules.HELD_FOR_REVIEW,
    )  # fmt: skip
    ledger.credit_click(click, held=True)
    return click


@pytest.mark.parametrize(
    "change",
    ["blocked by the partner", "blocking the partner", "partner paused", "partner uninstalled"],
)
def test_releasing_a_held_click_the_rules_no_longer_allow_voids_it(pair, change):
    """A release bills as settling would now: a partner that blocked the source since (often
    for that very traffic), paused, or left is not charged."""
    sender, receiver = pair
    held_click(sender, receiver)
    if change == "blocked by the partner":
        WidgetSettings.objects.get(store=receiver).blocked_stores.add(sender)
    elif change == "blocking the partner":
        WidgetSettings.objects.get(store=sender).blocked_stores.add(receiver)
    elif change == "partner paused":
        WidgetSettings.objects.filter(store=receiver).update(enabled=False)
    else:
        Store.objects.filter(pk=receiver.pk).update(status=Store.Status.UNINSTALLED)

    assert ledger.resolve_held(sender, release=True) == (0, 1)
    assert ledger.balance(receiver) == rules.STARTER_GRANT
    assert ledger.balance(sender) == rules.STARTER_GRANT


@pytest.mark.parametrize("out", [Store.Status.FROZEN, Store.Status.NEEDS_REAUTH])
def test_a_held_click_whose_partner_is_out_for_a_while_stays_held(pair, out):
    """Shopify froze the partner, or it must authorise the app again: a release then would
    lose the source its earning for good, so the click waits for a later release."""
    sender, receiver = pair
    held_click(sender, receiver)
    Store.objects.filter(pk=receiver.pk).update(status=out)

    waiting = ledger.resolve_held(sender, release=True)
    Store.objects.filter(pk=receiver.pk).update(status=Store.Status.ACTIVE)
    later = ledger.resolve_held(sender, release=True)

    assert waiting == (0, 0)
    assert later == (1, 0)
    assert ledger.balance(sender) == rules.STARTER_GRANT + rules.EARN_PER_CLICK


def test_a_click_still_held_for_review_is_not_among_the_partners_billable_clicks(pair):
    """A held click charges the partner nothing until an operator releases it: the
    partner's page counted it among its billable clicks received all the same, beside
    credits spent and a partner row that did not, so its figures disagreed."""
    sender, receiver = pair
    held = held_click(sender, receiver, 1)
    received = stats.store_stats(receiver, days=1)["totals"]
    assert (received["received"], received["received_billable"], received["spent"]) == (1, 0, 0)

    assert ledger.resolve_held(sender, release=True) == (1, 0)

    received = stats.store_stats(receiver, days=1)["totals"]
    assert (received["received_billable"], received["spent"]) == (1, float(rules.SPEND_PER_CLICK))
    assert Click.objects.get(pk=held.pk).billable


def test_voided_clicks_leave_the_billable_figures_of_both_stores(pair):
    """A click an operator voided was never billable: neither store's page counts it (both
    used to show it among billable clicks sent and received, with nothing paid for it)."""
    sender, receiver = pair
    released = held_click(sender, receiver, 1)
    assert ledger.resolve_held(sender, release=True) == (1, 0)
    voided = held_click(sender, receiver, 2)
    assert ledger.resolve_held(sender, release=False) == (0, 1)

    sent = stats.store_stats(sender, days=1)["totals"]
    received = stats.store_stats(receiver, days=1)["totals"]
    (partner,) = ledger.partner_ledger(sender)

    assert (sent["sent"], sent["sent_billable"]) == (2, 1)
    assert (received["received"], received["received_billable"]) == (2, 1)
    assert partner["clicks_sent"] == 1
    # Voided days after it was held: a period holding the void and not the click counts
    # neither (it used to count minus one).
    LedgerEntry.objects.filter(click=voided).exclude(kind=LedgerEntry.Kind.VOID).update(
        created_at=timezone.now() - timedelta(days=3)
    )
    (today,) = ledger.partner_ledger(sender, since=timezone.now() - timedelta(hours=1))
    assert today["clicks_sent"] == 1
    assert Click.objects.get(pk=released.pk).billable
    assert (Click.objects.get(pk=voided.pk).billable, Click.objects.get(pk=voided.pk).reason) == (
        False, rules.VOIDED_IN_REVIEW,
    )  # fmt: skip


def test_review_smooths_small_stores_and_flags_a_store_that_clicks_every_view():
    network = review.FALLBACK_NETWORK_CTR
    limit = review.CTR_MULTIPLE * network

    new_store = review.smoothed_ctr(clicks=1, views=3, network_ctr=network)
    clicks_everything = review.smoothed_ctr(clicks=10, views=10, network_ctr=network)
    typical = review.smoothed_ctr(clicks=20, views=1000, network_ctr=network)

    assert new_store < limit and typical < limit < clicks_everything
    assert 1 <= review.CLICKS_BEFORE_A_HOLD <= 10


def test_a_source_clicking_far_above_the_network_has_new_earnings_held(pair, settings):
    settings.RECOMMENDER_STATE_TTL_SECONDS = 0
    sender, receiver = pair
    for n in range(review.CLICKS_BEFORE_A_HOLD + 3):
        ip = f"198.51.100.{n + 1}"
        token = token_for(sender, receiver, product_id=n, impression=f"r{n}", ip=ip)
        settled_click(token=token, ip=ip, user_agent=BROWSER)

    reasons = list(Click.objects.order_by("pk").values_list("reason", flat=True))
    assert reasons[: review.CLICKS_BEFORE_A_HOLD] == ["billable"] * review.CLICKS_BEFORE_A_HOLD
    assert set(reasons[review.CLICKS_BEFORE_A_HOLD :]) == {"held for review"}
    assert ledger.held_earnings(sender) == 3 * rules.EARN_PER_CLICK
    assert review.under_review(sender.pk)


@pytest.mark.django_db
def test_throwaway_stores_cannot_drag_the_network_rate_below_its_floor(settings):
    settings.RECOMMENDER_STATE_TTL_SECONDS = 0
    # Development stores with plenty of views and no clicks, and paying stores likewise.
    for n in range(4):
        for plan in ("Development", "Basic"):
            store = make_store(f"{plan.lower()}{n}", plan_name=plan,
                               plan_partner_development=plan == "Development")  # fmt: skip
            Impression.objects.bulk_create(
                Impression(
                    store=store,
                    impression_id=f"{store.pk}-{v}",
                    visitor_hash=str(v),
                    items=4,
                    partner_items=3,
                )
                for v in range(review.MIN_VIEWS_FOR_MEDIAN)
            )

    assert review.network_ctr() == review.FALLBACK_NETWORK_CTR


# --- every rule at its boundary (each test fails when its rule is switched off) ---------


def billed_before(sender, receiver, *, count, ip="203.0.113.9", ago=timedelta(minutes=5)):
    """``count`` billable clicks already sent from ``ip`` (other visitors, other products)."""
    address, _ = rules.ip_hashes(ip)
    Click.objects.bulk_create(
        Click(source_store=sender, target_store=receiver, target_product_id=10_000 + n,
              impression_id=f"before-{n}", token_id=f"before-{n}", visitor_hash=f"other-{n}",
              ip_hash=address, billable=True, reason="billable",
              created_at=timezone.now() - ago)
        for n in range(count)
    )  # fmt: skip


@pytest.mark.parametrize(
    ("limit", "ago", "ip_count"),
    [
        ("hour", timedelta(minutes=5), rules.BILLABLE_CLICKS_PER_IP_PER_HOUR),
        ("day", timedelta(hours=3), rules.BILLABLE_CLICKS_PER_IP_PER_DAY),
    ],
)
def test_the_address_limits_bill_up_to_their_number_and_not_one_more(pair, limit, ago, ip_count):
    sender, receiver = pair
    billed_before(sender, receiver, count=ip_count - 1, ago=ago)
    last = settled_click(token=token_for(sender, receiver, impression="last"),
                               ip="203.0.113.9", user_agent=BROWSER)  # fmt: skip
    over = settled_click(token=token_for(sender, receiver, 556, "over", ip="203.0.113.9"),
                               ip="203.0.113.9", user_agent=BROWSER)  # fmt: skip

    assert last.billable
    assert (over.billable, over.reason) == (False, "address limit")


def test_the_source_store_limit_bills_up_to_its_number_and_not_one_more(pair):
    sender, receiver = pair
    limit = rules.BILLABLE_CLICKS_PER_SOURCE_STORE_PER_HOUR
    Click.objects.bulk_create(
        Click(source_store=sender, target_store=receiver, target_product_id=20_000 + n,
              impression_id=f"busy-{n}", token_id=f"busy-{n}", visitor_hash=f"shopper-{n}",
              ip_hash=f"address-{n}", billable=True, reason="billable",
              created_at=timezone.now() - timedelta(minutes=30))
        for n in range(limit - 1)
    )  # fmt: skip

    last = settled_click(token=token_for(sender, receiver, impression="last"),
                               ip="203.0.113.9", user_agent=BROWSER)  # fmt: skip
    over = settled_click(
        token=token_for(sender, receiver, 556, "over", ip="203.0.113.10"),
        ip="203.0.113.10", user_agent=BROWSER,
    )  # fmt: skip

    assert last.billable
    assert (over.billable, over.reason) == (False, "store limit")


@pytest.mark.parametrize(
    ("change", "reason"),
    [
        ("source uninstalled", "store not active"),
        ("partner uninstalled", "partner not active"),
        ("partner widget off", "partner not participating"),
        ("source blocks partner", "blocked"),
        ("partner blocks source", "blocked"),
        ("partner holds 0.99", "partner cannot pay"),
        ("partner holds 1.00", "billable"),
    ],
)
def test_billing_state_is_read_again_when_the_click_is_settled(pair, change, reason):
    sender, receiver = pair
    token = token_for(sender, receiver)  # the view happened while everything was fine
    if change == "source uninstalled":
        Store.objects.filter(pk=sender.pk).update(status=Store.Status.UNINSTALLED)
    elif change == "partner uninstalled":
        Store.objects.filter(pk=receiver.pk).update(status=Store.Status.UNINSTALLED)
    elif change == "partner widget off":
        WidgetSettings.objects.filter(store=receiver).update(enabled=False)
    elif change == "source blocks partner":
        WidgetSettings.objects.get(store=sender).blocked_stores.add(receiver)
    elif change == "partner blocks source":
        WidgetSettings.objects.get(store=receiver).blocked_stores.add(sender)
    else:
        left = Decimal(change.rsplit(" ", 1)[1])
        LedgerEntry.objects.create(store=receiver, kind=LedgerEntry.Kind.SPEND,
                                   amount=-(rules.STARTER_GRANT - left))  # fmt: skip

    click = settled_click(token=token, ip="203.0.113.9", user_agent=BROWSER)

    assert click.reason == reason
    assert click.billable is (reason == "billable")
    assert ledger.balance(receiver) >= 0


def test_impressions_from_one_address_are_capped_across_visitors(pair):
    sender, _ = pair
    results = []
    for n in range(rules.IMPRESSIONS_PER_IP_PER_10_MIN + 1):
        agent = BROWSER.replace("156.0", f"156.{n}")
        visitor = rules.visitor(ip="192.0.2.7", user_agent=agent)
        raw = tokens.sign_impression(store_id=sender.pk, impression_id=f"cap-{n}", items=4,
                                     partner_items=3, visitor=visitor)  # fmt: skip
        results.append(
            impressions.record_impression(host=sender, raw=raw, ip="192.0.2.7", user_agent=agent)
        )

    assert results[:-1] == ["counted"] * rules.IMPRESSIONS_PER_IP_PER_10_MIN
    assert results[-1] == "rate limited"


@pytest.mark.parametrize(("balance", "shown"), [("1.00", True), ("0.99", False)])
def test_a_store_is_exhausted_below_the_price_of_one_click(pair, balance, shown):
    sender, receiver = pair
    LedgerEntry.objects.create(store=receiver, kind=LedgerEntry.Kind.SPEND,
                               amount=-(rules.STARTER_GRANT - Decimal(balance)))  # fmt: skip

    exhausted = ledger.exhausted_store_ids([sender.pk, receiver.pk])

    assert (receiver.pk not in exhausted) is shown
    assert ledger.can_pay_a_click(receiver.pk) is shown
    assert sender.pk not in exhausted


def traffic(store, partner, *, views: int, clicks_by_address: dict[str, int]) -> None:
    """``views`` viewable impressions with partner items, and billable clicks per address."""
    Impression.objects.bulk_create(
        Impression(store=store, impression_id=f"{store.pk}-view-{n}", visitor_hash=f"v{n}",
                   items=4, partner_items=3)
        for n in range(views)
    )  # fmt: skip
    Click.objects.bulk_create(
        Click(source_store=store, target_store=partner, target_product_id=n,
              impression_id=f"{store.pk}-{address}-{n}", token_id=f"{address}-{n}",
              visitor_hash=f"{address}-{n}", ip_hash=address, billable=True, reason="billable")
        for address, count in clicks_by_address.items()
        for n in range(count)
    )  # fmt: skip


@pytest.mark.parametrize(
    ("views", "clicks_by_address", "held"),
    [
        (500, {f"a{n}": 1 for n in range(20)}, False),  # 4 %: an ordinary widget
        (10, {f"a{n}": 1 for n in range(5)}, False),  # smoothed 6/60: at the limit, not over
        (10, {f"a{n}": 1 for n in range(7)}, True),  # smoothed 8/60: over it
        (500, {"one": 4, "a": 1, "b": 1, "c": 1, "d": 1}, False),  # half from a heavy address
        (500, {"one": 4, "two": 3}, True),  # more than half
        (500, {"one": 4}, False),  # fewer clicks than the pattern needs
        (500, {"one": 5}, True),
    ],
)
def test_review_holds_at_the_published_thresholds(pair, settings, views, clicks_by_address, held):
    settings.RECOMMENDER_STATE_TTL_SECONDS = 0
    sender, receiver = pair
    traffic(sender, receiver, views=views, clicks_by_address=clicks_by_address)

    assert review.under_review(sender.pk) is held


def test_one_address_clicking_a_store_heavily_holds_its_own_clicks_not_the_stores(pair, settings):
    """Anyone can view a small store's widget and click it five times in an hour from one
    address (two agents: the limits allow it). That used to put the whole store under
    review: every shopper's click it sent was held for a day, and again the next day. Now
    the address pattern holds the clicks of the heavy address alone."""
    settings.RECOMMENDER_STATE_TTL_SECONDS = 0
    sender, receiver = pair
    traffic(sender, receiver, views=500, clicks_by_address={})  # an ordinary rate
    griefer, other = "192.0.2.50", "Mozilla/5.0 Firefox/150.0"

    def griefers_click(n: int, agent: str) -> Click:
        token = token_for(sender, receiver, product_id=100 + n, impression=f"g{n}", ip=griefer,
                          user_agent=agent)  # fmt: skip
        return settled_click(token=token, ip=griefer, user_agent=agent)

    first = [griefers_click(n, agent) for n, agent in enumerate([BROWSER] * 3 + [other] * 2)]
    shopper = "198.51.100.20"
    real = settled_click(
        token=token_for(sender, receiver, product_id=200, impression="real", ip=shopper),
        ip=shopper, user_agent=BROWSER,
    )  # fmt: skip
    sixth = griefers_click(5, "Mozilla/5.0 Safari/620.1")

    assert [click.reason for click in first] == ["billable"] * 5
    assert (real.billable, real.reason) == (True, "billable")
    assert (sixth.billable, sixth.reason) == (True, rules.HELD_FOR_REVIEW)


def test_an_address_clicking_across_the_daily_salt_change_is_one_address_to_review(pair, settings):
    """Addresses are hashed with a salt that changes every day, and review grouped a day's
    clicks by the hash alone: a script clicking from one address around the change was two
    addresses, neither heavy, for the day after it (3 clicks before, 3 after). Each click
    also keeps its address under the day before's salt: review groups by that."""
    settings.RECOMMENDER_STATE_TTL_SECONDS = 0
    sender, receiver = pair
    now = timezone.now()
    change = rules.salt_period_start(now)
    traffic(sender, receiver, views=500, clicks_by_address={})  # an ordinary rate
    Impression.objects.update(created_at=change - timedelta(hours=1))
    address = "192.0.2.77"

    def clicked(when, n: int) -> Click:
        current, previous = rules.ip_hashes(address, now=when)
        return Click.objects.create(
            source_store=sender, target_store=receiver, target_product_id=n,
            impression_id=f"s{n}", token_id=f"s{n}", visitor_hash=f"v{n}", ip_hash=current,
            previous_ip_hash=previous, billable=True, reason="billable", created_at=when,
        )  # fmt: skip

    for n in range(3):
        clicked(change - timedelta(minutes=30 - n), n)
    soon = min(now - change, timedelta(minutes=1))  # within the window of the clicks before
    after = [clicked(change + soon * k / 4, 3 + k) for k in (1, 2, 3)]
    assert after[0].ip_hash != Click.objects.get(token_id="s0").ip_hash  # two salts

    last = after[-1]
    assert review.held_at(sender.pk, last.created_at)  # the address pattern holds
    assert review.held_at(sender.pk, last.created_at, address=review.address_of(last))
    # Another address's click that day is not held.
    other = rules.ip_hashes("198.51.100.20", now=last.created_at)
    assert not review.held_at(sender.pk, last.created_at, address=other[1])


@pytest.mark.parametrize(
    ("stores", "views", "median"), [(3, 50, 0.04), (2, 50, 0.02), (3, 49, 0.02)]
)
@pytest.mark.django_db
def test_the_network_rate_is_the_median_of_enough_paying_stores(settings, stores, views, median):
    settings.RECOMMENDER_STATE_TTL_SECONDS = 0
    partner = make_store("partner")
    for n in range(stores):
        store = make_store(f"shop{n}")
        clicks_made = round(views * median) if stores >= 3 and views >= 50 else 3
        traffic(
            store,
            partner,
            views=views,
            clicks_by_address={f"s{n}-{c}": 1 for c in range(clicks_made)},
        )

    assert review.network_ctr() == pytest.approx(median)


def test_running_balances_match_the_ledger_and_add_only_newer_entries(
    pair, django_assert_num_queries
):
    sender, receiver = pair
    old = timezone.now() - timedelta(hours=1)
    LedgerEntry.objects.filter(kind=LedgerEntry.Kind.GRANT).update(created_at=old)
    LedgerEntry.objects.create(store=receiver, kind=LedgerEntry.Kind.SPEND, amount=-3,
                               created_at=old)  # fmt: skip
    first = ledger.running_balances()
    LedgerEntry.objects.create(store=sender, kind=LedgerEntry.Kind.EARN, amount=Decimal("0.80"))
    LedgerEntry.objects.create(store=sender, kind=LedgerEntry.Kind.HELD, amount=Decimal("0.80"))

    with django_assert_num_queries(1):  # only the entries after the settled base
        second = ledger.running_balances()

    authoritative = ledger.balances([sender.pk, receiver.pk])
    assert first == {sender.pk: rules.STARTER_GRANT, receiver.pk: rules.STARTER_GRANT - 3}
    assert second == authoritative
    assert second[sender.pk] == rules.STARTER_GRANT + Decimal("0.80")  # held left out


@pytest.mark.parametrize(
    ("plan", "development", "granted"),
    [("Basic", False, True), ("Plus", False, True), ("Basic", True, False),
     ("Development", True, False), ("Trial", False, False), ("", False, False)],
)  # fmt: skip
def test_only_paying_plans_get_the_starter_grant(db, plan, development, granted):
    store = make_store("newcomer", plan_name=plan, plan_partner_development=development)

    assert ledger.grant_starter_credits(store) is granted
    assert ledger.balance(store) == (rules.STARTER_GRANT if granted else 0)


def test_running_balances_never_pass_over_an_entry_written_out_of_time_order(pair):
    sender, receiver = pair
    old = timezone.now() - timedelta(hours=1)
    LedgerEntry.objects.filter(kind=LedgerEntry.Kind.GRANT).update(created_at=old)
    # A lower id stamped in the future (a clock ahead), then a settled higher id.
    LedgerEntry.objects.create(store=sender, kind=LedgerEntry.Kind.EARN, amount=Decimal("0.80"),
                               created_at=timezone.now() + timedelta(hours=1))  # fmt: skip
    LedgerEntry.objects.create(store=receiver, kind=LedgerEntry.Kind.SPEND, amount=-1,
                               created_at=old)  # fmt: skip

    first, second = ledger.running_balances(), ledger.running_balances()

    expected = ledger.balances([sender.pk, receiver.pk])
    assert first == second == expected


def impression_token(sender, *, impression="view", ip="192.0.2.8", **payload):
    visitor = rules.visitor(ip=ip, user_agent=BROWSER)
    if payload:  # a signed payload of another shape (as an old or broken widget would send)
        return signing.dumps(payload, salt="interlayer.impression")
    return tokens.sign_impression(store_id=sender.pk, impression_id=impression, items=4,
                                  partner_items=3, visitor=visitor)  # fmt: skip


@pytest.mark.parametrize(
    ("agent", "payload", "result"),
    [
        ("Googlebot/2.1 (+http://www.google.com/bot.html)", {}, "bot"),
        ("", {}, "bot"),
        (BROWSER, {"s": "PLACEHOLDER", "i": "x", "n": 4, "p": 3}, "invalid"),  # no visitor
        (BROWSER, {"s": "PLACEHOLDER", "i": "x", "v": "v", "n": "four", "p": 3}, "invalid"),
        (BROWSER, {}, "counted"),
    ],
)
def test_impressions_from_bots_or_of_the_wrong_shape_are_not_counted(pair, agent, payload, result):
    sender, _ = pair
    if payload:
        payload = {**payload, "s": sender.pk}
    raw = impression_token(sender, **payload)

    outcome = impressions.record_impression(host=sender, raw=raw, ip="192.0.2.8", user_agent=agent)

    assert outcome == result
    assert Impression.objects.count() == (1 if result == "counted" else 0)


def test_redacting_a_store_strips_every_shopper_hash_from_the_clicks_partners_keep(pair):
    sender, receiver = pair
    ip = "2001:db8:5::9"  # IPv6: the click keeps its site too
    click = settled_click(token=token_for(sender, receiver, ip=ip), ip=ip, user_agent=BROWSER)
    assert click.billable and click.previous_visitor_hash and click.previous_ip_hash
    assert click.site_hash and click.previous_site_hash
    Store.objects.filter(pk=sender.pk).update(status=Store.Status.UNINSTALLED)

    services.redact_shop(shop_domain=sender.shop_domain, triggered_at=None, keep_delivery_id=0)

    kept = Click.objects.get(pk=click.pk)  # the receiver's ledger still points at it
    assert (kept.user_agent, kept.visitor_hash, kept.previous_visitor_hash, kept.ip_hash,
            kept.previous_ip_hash, kept.site_hash, kept.previous_site_hash) == ("",) * 7  # fmt: skip


def test_a_partner_holding_exactly_the_price_of_a_click_pays_for_it(pair):
    sender, receiver = pair
    # 25.00 - 24.10 + 0.10 is 1.00 to the cent (summed as floats: 0.9999999999999986).
    LedgerEntry.objects.create(
        store=receiver, kind=LedgerEntry.Kind.SPEND, amount=Decimal("-24.10")
    )
    LedgerEntry.objects.create(store=receiver, kind=LedgerEntry.Kind.EARN, amount=Decimal("0.10"))

    click = settled_click(token=token_for(sender, receiver), ip="203.0.113.9", user_agent=BROWSER)

    assert (click.billable, click.reason) == (True, "billable")
    assert ledger.balances([receiver.pk]) == {receiver.pk: Decimal("0.00")}
    assert ledger.balance(receiver) == Decimal("0.00")


def test_a_token_that_names_no_visitor_never_bills_even_for_a_view_that_named_none(pair):
    sender, receiver = pair
    # A view counted before views were bound to their visitor, and a click token of then.
    Impression.objects.create(store=sender, impression_id="old-view", visitor_hash="")
    old = signing.dumps(
        {"t": "old", "i": "old-view", "s": sender.pk, "d": receiver.pk, "p": 555},
        salt="interlayer.click",
    )

    click = settled_click(token=tokens.read_click_token(old), ip="203.0.113.9", user_agent=BROWSER)

    assert (click.billable, click.reason) == (False, "not the shopper it was shown to")
    assert ledger.balance(sender) == rules.STARTER_GRANT


@pytest.mark.parametrize("shared", ["visitor", "address"])
def test_a_repeat_on_the_same_product_is_found_by_the_visitor_or_by_the_address(pair, shared):
    sender, receiver = pair
    first = settled_click(token=token_for(sender, receiver), ip="203.0.113.9", user_agent=BROWSER)
    # The same shopper on a second view of the page, or another browser behind the first
    # one's address (an office, a household), each clicking the same product again.
    agent = BROWSER if shared == "visitor" else BROWSER.replace("156.0", "157.0")
    token = token_for(sender, receiver, impression="imp-2", user_agent=agent)

    second = settled_click(token=token, ip="203.0.113.9", user_agent=agent)

    assert first.billable
    assert (second.billable, second.reason) == (False, "repeat within 24h")


def test_the_24_hour_and_hourly_windows_include_their_first_moment(pair):
    sender, receiver = pair
    day_old = settled_click(token=token_for(sender, receiver), ip="203.0.113.9", user_agent=BROWSER)
    Click.objects.filter(pk=day_old.pk).update(created_at=timezone.now() - timedelta(hours=23))
    hour = [
        settled_click(token=token_for(sender, receiver, 600 + n, f"h{n}"), ip="203.0.113.9",
                      user_agent=BROWSER)
        for n in range(rules.BILLABLE_CLICKS_PER_VISITOR_PER_HOUR)
    ]  # fmt: skip
    assert all(c.billable for c in [day_old, *hour])
    repeat = clicks.record_click(token=token_for(sender, receiver, impression="again"),
                                 ip="203.0.113.9", user_agent=BROWSER)  # fmt: skip
    over = clicks.record_click(token=token_for(sender, receiver, 701, "over"), ip="203.0.113.9",
                               user_agent=BROWSER)  # fmt: skip
    # The same product billed exactly 24 hours before the repeat, and the first of the
    # visitor's three clicks of the hour exactly an hour before the one over the limit.
    Click.objects.filter(pk=day_old.pk).update(created_at=repeat.created_at - rules.DEDUPE_WINDOW)
    Click.objects.filter(pk=hour[0].pk).update(created_at=over.created_at - timedelta(hours=1))

    clicks.settle_clicks()

    assert Click.objects.get(pk=repeat.pk).reason == "repeat within 24h"
    assert Click.objects.get(pk=over.pk).reason == "visitor limit"


def test_the_store_limit_counts_each_stores_own_clicks_of_the_hour_from_its_first_moment(pair):
    sender, receiver = pair
    limit = rules.BILLABLE_CLICKS_PER_SOURCE_STORE_PER_HOUR
    half_an_hour_ago = timezone.now() - timedelta(minutes=30)
    # The receiver sent its hour's limit; the sender is one click short of its own.
    Click.objects.bulk_create(
        Click(source_store=source, target_store=target, target_product_id=20_000 + n,
              impression_id=f"busy-{source.pk}-{n}", token_id=f"busy-{source.pk}-{n}",
              visitor_hash=f"shopper-{source.pk}-{n}", ip_hash=f"address-{source.pk}-{n}",
              billable=True, reason="billable", created_at=half_an_hour_ago)
        for source, target, count in ((receiver, sender, limit), (sender, receiver, limit - 1))
        for n in range(count)
    )  # fmt: skip
    # One round: a click the receiver sends, the sender's last allowed one, one more.
    theirs = clicks.record_click(token=token_for(receiver, sender, 557, "theirs", ip="203.0.113.11"),
                                 ip="203.0.113.11", user_agent=BROWSER)  # fmt: skip
    last = clicks.record_click(token=token_for(sender, receiver, impression="last"),
                               ip="203.0.113.9", user_agent=BROWSER)  # fmt: skip
    over = clicks.record_click(token=token_for(sender, receiver, 556, "over", ip="203.0.113.10"),
                               ip="203.0.113.10", user_agent=BROWSER)  # fmt: skip
    # The sender's earliest click of the hour, exactly an hour before the one over the limit.
    earliest = Click.objects.filter(source_store=sender, billable=True).order_by("pk").first()
    Click.objects.filter(pk=earliest.pk).update(created_at=over.created_at - timedelta(hours=1))

    clicks.settle_clicks()

    assert Click.objects.get(pk=theirs.pk).reason == "store limit"
    assert Click.objects.get(pk=last.pk).billable
    assert Click.objects.get(pk=over.pk).reason == "store limit"


def test_a_web_process_compiles_the_crawler_list_as_it_starts():
    """The WSGI module warms the crawler patterns, so no shopper's first click or view in
    a fresh process waits for their compilation."""
    from crawlerdetect import crawlerdetect  # noqa: PLC0415 -- the library's own cache

    import interlayer.wsgi  # noqa: PLC0415 -- loaded again below, as a starting process does

    crawlerdetect.get_compiled_crawler_regex.cache_clear()
    crawlerdetect.get_compiled_exclusions_regex.cache_clear()
    importlib.reload(interlayer.wsgi)
    assert crawlerdetect.get_compiled_crawler_regex.cache_info().currsize == 1
    assert crawlerdetect.get_compiled_exclusions_regex.cache_info().currsize == 1


def test_a_recorded_click_is_returned_as_it_was_stored(pair):
    """record_click hands back the click as the database holds it: every field loaded, each
    with its own value (the click redirect reads it without another query)."""
    sender, receiver = pair
    click = clicks.record_click(
        token=token_for(sender, receiver), ip="203.0.113.9", user_agent=BROWSER
    )

    stored = Click.objects.get(pk=click.pk)
    assert click.get_deferred_fields() == set()
    assert click.ip_hash == rules.ip_hashes("203.0.113.9")[0]
    for field in Click._meta.concrete_fields:
        assert getattr(click, field.attname) == getattr(stored, field.attname), field.name
    assert (click._state.adding, click._state.db) == (False, stored._state.db)


def test_the_addresses_of_one_ipv6_network_are_one_address_to_the_limits(pair):
    """A subscriber is given a whole /64: rotating through it is one address."""
    assert rules.ip_hashes("2001:db8:1:2::1") == rules.ip_hashes("2001:db8:1:2:ffff::7")
    assert rules.ip_hashes("2001:db8:1:2::1") != rules.ip_hashes("2001:db8:1:3::1")
    assert rules.ip_hashes("::ffff:198.51.100.7") == rules.ip_hashes("198.51.100.7")
    assert rules.ip_hashes("2002:c633:6407::1") == rules.ip_hashes("198.51.100.7")  # 6to4
    sender, receiver = pair
    allowed = rules.BILLABLE_CLICKS_PER_IP_PER_HOUR
    results = []
    for n in range(allowed + 2):  # each click from an address and browser of its own
        ip, agent = f"2001:db8:1:2::{n + 1:x}", BROWSER.replace("156.0", f"156.{n}")
        token = token_for(sender, receiver, product_id=n, impression=f"six{n}", ip=ip,
                          user_agent=agent)  # fmt: skip
        results.append(settled_click(token=token, ip=ip, user_agent=agent))

    assert sum(c.billable for c in results) == allowed
    assert {c.reason for c in results[allowed:]} == {"address limit"}


def site_click(sender, receiver, n: int, *, site: str = "2001:db8:77") -> Click:
    """A click from the n-th /64 of an IPv6 site (/48), each from a browser of its own,
    after its own view: what a script with a tunnelled /48 rotates through."""
    ip, agent = f"{site}:{n:x}::1", BROWSER.replace("156.0", f"156.{n}")
    token = token_for(sender, receiver, product_id=n, impression=f"{site}-{n}", ip=ip,
                      user_agent=agent)  # fmt: skip
    return settled_click(token=token, ip=ip, user_agent=agent)


def test_rotating_the_64s_of_one_ipv6_site_bills_no_more_than_the_sites_limit(pair):
    """A /48 (a tunnel broker gives one away) holds 65,536 /64s, each an address of its own
    to the address limits. A script viewing and clicking from a new /64 each time, its views
    padded so the rate looks ordinary, billed every click up to the store's hourly limit."""
    sender, receiver = pair
    traffic(sender, receiver, views=2_000, clicks_by_address={})  # an ordinary rate
    allowed = rules.BILLABLE_CLICKS_PER_SITE_PER_STORE_PER_HOUR

    results = [site_click(sender, receiver, n) for n in range(allowed + 3)]

    assert len({c.ip_hash for c in results}) == allowed + 3  # every /64 its own address
    assert sum(c.billable for c in results) == allowed
    assert {c.reason for c in results[allowed:]} == {rules.SITE_LIMIT}
    # Another site, and the same site's clicks between two other stores, are limited apart.
    assert site_click(sender, receiver, 0, site="2001:db8:78").billable
    other, elsewhere = make_store("other"), make_store("elsewhere")
    ledger.grant_starter_credits(elsewhere)
    assert site_click(other, elsewhere, allowed + 3).billable


def test_one_ipv6_site_cannot_make_a_partner_pay_its_limit_once_per_store_that_shows_it(pair):
    """The site limit counted per sending store alone: a script with one /48, a new /64 per
    click, clicking one partner's products in the widgets of five stores, had that partner
    pay the site's hourly limit five times over (and, once its balance ran out, taken out
    of every widget), nothing held for review. The limit holds per receiving store too."""
    _, victim = pair
    LedgerEntry.objects.create(store=victim, kind=LedgerEntry.Kind.EARN, amount=Decimal("500"))
    before = ledger.balance(victim)
    senders = [make_store(f"sender{n}") for n in range(5)]
    for sender in senders:
        traffic(sender, victim, views=2_000, clicks_by_address={})  # an ordinary rate
    allowed = rules.BILLABLE_CLICKS_PER_SITE_PER_STORE_PER_HOUR

    results = [
        site_click(sender, victim, n * allowed + k)
        for n, sender in enumerate(senders)
        for k in range(allowed)
    ]

    assert sum(c.billable for c in results) == allowed
    assert {c.reason for c in results[allowed:]} == {rules.SITE_LIMIT}
    assert before - ledger.balance(victim) == allowed * rules.SPEND_PER_CLICK


def test_the_sites_daily_limit_bills_up_to_its_number_and_not_one_more(pair):
    sender, receiver = pair
    traffic(sender, receiver, views=5_000, clicks_by_address={})
    block, _ = rules.site_hashes("2001:db8:77::1")
    Click.objects.bulk_create(
        Click(source_store=sender, target_store=receiver, target_product_id=30_000 + n,
              impression_id=f"site-before-{n}", token_id=f"site-before-{n}",
              visitor_hash=f"site-shopper-{n}", ip_hash=f"site-address-{n}", site_hash=block,
              billable=True, reason="billable", created_at=timezone.now() - timedelta(hours=3))
        for n in range(rules.BILLABLE_CLICKS_PER_SITE_PER_STORE_PER_DAY - 1)
    )  # fmt: skip

    last, over = site_click(sender, receiver, 1), site_click(sender, receiver, 2)

    assert last.billable
    assert (over.billable, over.reason) == (False, rules.SITE_LIMIT)


def test_an_ipv4_address_is_its_own_site(db):
    assert rules.site_hashes("198.51.100.7") == ("", "")
    assert rules.site_hashes("::ffff:198.51.100.7") == ("", "")
    assert rules.site_hashes("2001:db8:77:1::1") == rules.site_hashes("2001:db8:77:ffff::9")
    assert rules.site_hashes("2001:db8:77:1::1") != rules.site_hashes("2001:db8:78:1::1")
    assert rules.site_hashes("2001:db8:77:1::1")[0] not in rules.ip_hashes("2001:db8:77:1::1")


@pytest.mark.django_db
def test_stores_whose_clicks_are_held_cannot_raise_the_network_rate(settings, monkeypatch):
    """Sybil stores on a paying plan click every view they make: their clicks are held
    (costing them nothing) and must not count toward the rate review compares with, or
    the threshold climbs until review holds nothing."""
    settings.RECOMMENDER_STATE_TTL_SECONDS = 0
    monkeypatch.setattr(review, "MAX_NETWORK_CTR", 1.0)  # the exclusion alone, not the cap
    partner = make_store("partner")
    for n in range(3):
        sybil = make_store(f"sybil{n}", plan_name="Starter")
        traffic(sybil, partner, views=50, clicks_by_address={f"s{n}": 50})
        paid = Click.objects.filter(source_store=sybil).order_by("pk")[:4]
        Click.objects.filter(source_store=sybil).exclude(pk__in=paid).update(
            reason=rules.HELD_FOR_REVIEW
        )  # all but the first few, as review holds them

    assert review.network_ctr() == pytest.approx(4 / 50)  # their paid clicks only


@pytest.mark.django_db
def test_the_network_rate_review_compares_with_is_capped(settings):
    """Even with every click paid, a network median above a widget's plausible rate (a
    ring of colluding stores) cannot lift the hold threshold past what a script makes."""
    settings.RECOMMENDER_STATE_TTL_SECONDS = 0
    partner = make_store("partner")
    for n in range(3):
        ring = make_store(f"ring{n}")
        traffic(ring, partner, views=50, clicks_by_address={f"r{n}-{c}": 1 for c in range(25)})

    assert review.network_ctr() == review.MAX_NETWORK_CTR
    assert review.CTR_MULTIPLE * review.MAX_NETWORK_CTR < 1  # clicking every view is held
    assert review.smoothed_ctr(clicks=60, views=60, network_ctr=review.network_ctr()) > (
        review.CTR_MULTIPLE * review.network_ctr()
    )


@pytest.mark.django_db
def test_visitor_salts_are_random_shared_and_gone_after_two_days(settings):
    day = timezone.now()
    first = rules.visitor_hashes(ip="198.51.100.7", user_agent=BROWSER, now=day)
    runtime.reset()  # another process reads the same stored salts
    settings.SECRET_KEY = "another-key-" + "x" * 40  # nothing derives from the secret key

    again = rules.visitor_hashes(ip="198.51.100.7", user_agent=BROWSER, now=day)
    deleted = rules.forget_old_salts(now=day + timedelta(days=2))
    runtime.reset()
    afterwards = rules.visitor_hashes(ip="198.51.100.7", user_agent=BROWSER, now=day)

    assert again == first
    assert deleted >= 2  # that day's and the day before's visitor salts
    assert afterwards[0] != first[0]  # the salt is gone: that day's hash cannot be made again


def test_the_settlers_read_of_ipv6_sites_uses_their_index_for_a_full_batch(pair):
    """The billable clicks of a batch's shoppers are read through the partial indexes; the
    sites' index covers only rows with a site, which PostgreSQL proves of an IN list of at
    most 100 values by itself. A batch of more than 50 IPv6 shoppers (two hashes each) must
    not turn the read into a scan of every click the table holds."""
    if connections["default"].vendor != "postgresql":
        pytest.skip("the plan is PostgreSQL's")
    sender, receiver = pair
    now = timezone.now()
    with connections["default"].cursor() as cursor:
        cursor.execute(
            "INSERT INTO recommender_click (source_store_id, target_store_id, target_product_id,"
            " impression_id, token_id, visitor_hash, ip_hash, previous_visitor_hash,"
            " previous_ip_hash, site_hash, previous_site_hash, billable, reason, user_agent,"
            " created_at) SELECT %s, %s, i, 'i' || i, 't' || i, 'v' || i, 'a' || (i %% 50000),"
            " '', '', CASE WHEN i %% 2 = 1 THEN 's' || (i %% 30000) ELSE '' END, '', true,"
            " 'billable', '', %s - (i %% 1400) * interval '1 minute'"
            " FROM generate_series(1, 200000) i",
            [sender.pk, receiver.pk, now],
        )
        cursor.execute("ANALYZE recommender_click")
    batch = [
        Click(source_store=sender, target_store=receiver, target_product_id=n,
              impression_id=f"batch-{n}", visitor_hash=f"batch-v{n}", ip_hash=f"batch-a{n}",
              site_hash=f"batch-s{n}", previous_site_hash=f"batch-ps{n}", created_at=now)
        for n in range(60)
    ]  # fmt: skip
    book = clicks._Book(batch)
    with CaptureQueriesContext(connections["default"]) as read:
        assert book.by_shoppers == []
    billable, voided = read.captured_queries  # the voided ones are counted too

    for query, index in [(billable, "recommender_click_billed_site"),
                         (voided, "recommender_click_voided")]:  # fmt: skip
        with connections["default"].cursor() as cursor:
            cursor.execute(f"EXPLAIN {query['sql']}")
            plan = "\n".join(row[0] for row in cursor.fetchall())
        assert index in plan, plan
        assert "Seq Scan" not in plan, plan


def _bot_round(sender, receiver, start: int, count: int) -> list[str]:
    """A script clicking every view it makes, each click from an address of its own."""
    reasons = []
    for n in range(start, start + count):
        ip = f"198.51.{n // 250}.{n % 250 + 1}"
        token = token_for(sender, receiver, product_id=n, impression=f"bot{n}", ip=ip)
        reasons.append(settled_click(token=token, ip=ip, user_agent=BROWSER).reason)
    return reasons


def test_voiding_a_bots_held_clicks_does_not_hand_it_a_clean_record(pair, settings):
    """Voided clicks were no longer counted anywhere: once an operator voided a script's
    held clicks, its store's rate looked clean again with the script's views still in the
    day, and the script was paid afresh until held again, cycle after cycle. What the rules
    judged billable at the time stays counted by review and the limits, voided or not."""
    settings.RECOMMENDER_STATE_TTL_SECONDS = 0
    sender, receiver = pair
    first = _bot_round(sender, receiver, 0, 60)
    assert first.count("billable") == review.CLICKS_BEFORE_A_HOLD
    assert review.under_review(sender.pk)
    assert ledger.resolve_held(sender, release=False) == (0, 60 - review.CLICKS_BEFORE_A_HOLD)

    second = _bot_round(sender, receiver, 60, 20)

    assert second.count("billable") == 0
    assert set(second) == {rules.HELD_FOR_REVIEW}


def test_one_address_cannot_put_a_small_stores_shoppers_under_review(pair, settings):
    """One address clicking a small store's widget within its limits (four browsers, three
    hours): the pattern held its clicks, but held clicks still counted in the store's rate,
    which went over the line, and every shopper's click of the store was held for the day.
    Clicks the pattern holds are left out of the rate while it holds them."""
    settings.RECOMMENDER_STATE_TTL_SECONDS = 0
    sender, receiver = pair
    traffic(sender, receiver, views=200, clicks_by_address={f"shopper{n}": 1 for n in range(4)})
    griefer = "192.0.2.50"
    agents = [BROWSER.replace("156.0", f"156.{n}") for n in range(4)]
    n = 0
    for _hour in range(3):
        for i in range(rules.BILLABLE_CLICKS_PER_IP_PER_HOUR):
            agent = agents[i // rules.BILLABLE_CLICKS_PER_VISITOR_PER_HOUR]
            token = token_for(sender, receiver, product_id=1000 + n, impression=f"g{n}",
                              ip=griefer, user_agent=agent)  # fmt: skip
            settled_click(token=token, ip=griefer, user_agent=agent)
            n += 1
        Click.objects.update(created_at=F("created_at") - timedelta(hours=1))
        Impression.objects.update(created_at=F("created_at") - timedelta(hours=1))
    assert Click.objects.filter(reason=rules.HELD_FOR_REVIEW).count() > 20  # the griefer's

    shopper = "198.51.100.77"
    token = token_for(sender, receiver, product_id=5, impression="real", ip=shopper)
    real = settled_click(token=token, ip=shopper, user_agent=BROWSER)

    assert (real.billable, real.reason) == (True, "billable")
