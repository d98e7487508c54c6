"""The credit exchange: the published rules, append-only ledger, and real concurrency."""

from __future__ import annotations

import threading
from datetime import timedelta
from decimal import Decimal

import pytest
from django.core import signing
from django.db import connections
from django.utils import timezone

from recommender.exchange import clicks, impressions, ledger, review, rules, tokens
from recommender.models import Click, Impression, LedgerEntry
from tests.factories import make_store

BROWSER = "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 Chrome/156.0 Safari/537.36"


@pytest.fixture
def pair(db):
    sender, receiver = make_store("sender"), make_store("receiver")
    ledger.grant_starter_credits(sender)
    ledger.grant_starter_credits(receiver)
    return sender, receiver


def token_for(sender, receiver, product_id=555, impression="imp-1", *, ip="203.0.113.9", seen=True):
    """A click token as the widget hands it out, for a view the shopper really saw (the
    impression recorded through the impression endpoint's service) unless ``seen=False``."""
    visitor = rules.visitor(ip=ip, user_agent=BROWSER)
    if seen:
        raw = tokens.sign_impression(
            store_id=sender.pk, impression_id=impression, items=4, partner_items=3, visitor=visitor
        )
        impressions.record_impression(host=sender, raw=raw, ip=ip, user_agent=BROWSER)
    signed = tokens.issue_click_token(
        impression_id=impression,
        source_store_id=sender.pk,
        target_store_id=receiver.pk,
        target_product_id=product_id,
        visitor=visitor,
    )
    return tokens.read_click_token(signed)


def test_starter_grant_is_given_once(pair):
    sender, _ = pair

    assert ledger.grant_starter_credits(sender) is False
    assert ledger.balance(sender) == rules.STARTER_GRANT


def test_billable_click_earns_the_sender_and_charges_the_receiver(pair):
    sender, receiver = pair

    click = clicks.record_click(
        token=token_for(sender, receiver), ip="203.0.113.9", user_agent=BROWSER
    )

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

    click = clicks.record_click(
        token=token_for(sender, receiver), ip="203.0.113.9", user_agent=user_agent
    )

    assert (click.billable, click.reason) == (False, reason)
    assert Click.objects.count() == 1
    assert LedgerEntry.objects.exclude(kind=LedgerEntry.Kind.GRANT).count() == 0


def test_same_visitor_same_product_bills_once_per_24_hours(pair):
    sender, receiver = pair
    first = clicks.record_click(
        token=token_for(sender, receiver), ip="203.0.113.9", user_agent=BROWSER
    )
    second = clicks.record_click(
        token=token_for(sender, receiver, impression="imp-2"), ip="203.0.113.9", user_agent=BROWSER
    )
    assert (first.billable, second.billable, second.reason) == (True, False, "repeat within 24h")

    Click.objects.filter(pk=first.pk).update(created_at=timezone.now() - timedelta(hours=25))
    third = clicks.record_click(
        token=token_for(sender, receiver, impression="imp-3"), ip="203.0.113.9", user_agent=BROWSER
    )

    assert third.billable


def test_own_store_click_is_never_billable(pair):
    sender, _ = pair

    click = clicks.record_click(
        token=token_for(sender, sender), ip="203.0.113.9", user_agent=BROWSER
    )

    assert (click.billable, click.reason) == (False, "own store")


def test_replayed_token_bills_once_even_from_another_visitor(pair):
    sender, receiver = pair
    token = token_for(sender, receiver)

    first = clicks.record_click(token=token, ip="203.0.113.9", user_agent=BROWSER)
    replay = clicks.record_click(token=token, ip="198.51.100.7", user_agent=BROWSER)

    assert first.billable and not replay.billable
    assert replay.reason == "impression already clicked"


def test_tampered_and_forged_tokens_are_rejected(pair):
    sender, receiver = pair
    signed = tokens.issue_click_token(
        impression_id="i",
        source_store_id=sender.pk,
        target_store_id=receiver.pk,
        target_product_id=1,
        visitor=rules.visitor(ip="203.0.113.9", user_agent=BROWSER),
    )
    payload, signature = signed.rsplit(":", 1)
    forged = signing.dumps(
        {"t": "x", "i": "i", "s": sender.pk, "d": receiver.pk, "p": 2},
        key="not-our-secret",
        salt="interlayer.click",
    )

    with pytest.raises(tokens.InvalidClickToken, match="tampered"):
        tokens.read_click_token(payload + ":" + signature[::-1])
    with pytest.raises(tokens.InvalidClickToken, match="tampered"):
        tokens.read_click_token(forged)


def test_expired_token_is_rejected(pair, monkeypatch):
    sender, receiver = pair
    signed = tokens.issue_click_token(
        impression_id="i",
        source_store_id=sender.pk,
        target_store_id=receiver.pk,
        target_product_id=1,
        visitor=rules.visitor(ip="203.0.113.9", user_agent=BROWSER),
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
        clicks.record_click(
            token=token_for(sender, receiver, product_id=n, impression=f"sent-{n}"),
            ip="203.0.113.9",
            user_agent=BROWSER,
        )
    clicks.record_click(
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
    barrier = threading.Barrier(16)
    errors = []

    def click(ip: str, product_id: int) -> None:
        try:
            token = token_for(sender, receiver, product_id=product_id, impression=ip, ip=ip)
            barrier.wait()
            clicks.record_click(token=token, ip=ip, user_agent=BROWSER)
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

    click = clicks.record_click(
        token=token_for(sender, receiver, seen=False), ip="203.0.113.9", user_agent=BROWSER
    )

    assert (click.billable, click.reason) == (False, "no viewable impression")
    assert ledger.balance(sender) == rules.STARTER_GRANT


def test_an_impression_seen_by_another_visitor_does_not_make_the_click_billable(pair):
    sender, receiver = pair
    # The view was reported for one visitor; the token was served to another.
    token_for(sender, receiver, impression="shared", ip="198.51.100.1")
    token = token_for(sender, receiver, impression="shared", ip="198.51.100.2", seen=False)

    click = clicks.record_click(token=token, ip="198.51.100.2", user_agent=BROWSER)

    assert (click.billable, click.reason) == (False, "no viewable impression")


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
            results.append(clicks.record_click(token=token, ip=ip, user_agent=BROWSER))
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
                                              target_store_id=receiver.pk, target_product_id=n,
                                              visitor=visitor)  # fmt: skip
            token = tokens.read_click_token(signed)
            results.append(clicks.record_click(token=token, ip="192.0.2.1", user_agent=agent))

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
        clicks.record_click(token=token, ip=ip, user_agent=BROWSER)

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
