"""Held earnings as merchants and operators see them: the settings API, network_status and
the review_earnings command."""

from __future__ import annotations

import io
import json
from decimal import Decimal

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError

from recommender.catalog import index_events
from recommender.exchange import ledger, rules
from recommender.models import Click, LedgerEntry
from recommender.ranking import live_index
from recommender.ranking.network import network_state
from stores import tasks as store_tasks
from tests.factories import make_store

pytestmark = pytest.mark.django_db


def hold_earnings(source, target, count: int) -> None:
    for n in range(count):
        click = Click.objects.create(
            source_store=source, target_store=target, target_product_id=n, impression_id=f"h{n}",
            token_id=f"h{n}", visitor_hash="v", billable=True, reason="held for review",
        )  # fmt: skip
        ledger.credit_click(click, held=True)


def test_network_status_and_review_command_list_held_clicks_and_void_them(settings):
    settings.RECOMMENDER_STATE_TTL_SECONDS = 0
    source, target = make_store("source"), make_store("target")
    for store in (source, target):
        ledger.grant_starter_credits(store)
    hold_earnings(source, target, 3)

    status = io.StringIO()
    call_command("network_status", "--json", stdout=status)
    listing = io.StringIO()
    call_command("review_earnings", stdout=listing)
    through = LedgerEntry.objects.filter(kind=LedgerEntry.Kind.HELD).latest("pk").pk
    voided = io.StringIO()
    call_command("review_earnings", "--void", "source.myshopify.com", "--through", str(through),
                 stdout=voided)  # fmt: skip

    assert json.loads(status.getvalue())["held_for_review"] == {"source.myshopify.com": 2.4}
    assert f"source.myshopify.com: 2.40 held (3 clicks, through {through})" in listing.getvalue()
    assert "0 released, 3 voided" in voided.getvalue()
    assert ledger.held_earnings(source) == 0
    assert ledger.balance(source) == rules.STARTER_GRANT
    assert ledger.balance(target) == rules.STARTER_GRANT  # held clicks were never charged
    assert LedgerEntry.objects.filter(kind=LedgerEntry.Kind.VOID, store=source).count() == 3


@pytest.mark.parametrize("action", ["--release", "--void"])
def test_an_operator_resolves_only_the_held_clicks_they_looked_at(action):
    """The operator lists the held earnings, judges them, then releases (or voids) them.
    Clicks held in between were never looked at: a script's clicks arriving after the
    listing would otherwise be paid by a release meant for the clicks seen. The listing
    names the last held entry, and a release or void goes through that entry only."""
    source, target = make_store("source"), make_store("target")
    for store in (source, target):
        ledger.grant_starter_credits(store)
    hold_earnings(source, target, 2)
    listing = io.StringIO()
    call_command("review_earnings", stdout=listing)
    through = LedgerEntry.objects.filter(kind=LedgerEntry.Kind.HELD).latest("pk").pk
    assert f"--through {through}" in listing.getvalue()
    late = Click.objects.create(
        source_store=source, target_store=target, target_product_id=9, impression_id="late",
        token_id="late", visitor_hash="v", billable=True, reason="held for review",
    )  # fmt: skip
    ledger.credit_click(late, held=True)  # held after the operator looked
    out = io.StringIO()

    call_command("review_earnings", action, "source.myshopify.com", "--through", str(through),
                 stdout=out)  # fmt: skip

    assert ("2 released, 0 voided" if action == "--release" else "0 released, 2 voided") in (
        out.getvalue()
    )
    assert ledger.held_earnings(source) == rules.EARN_PER_CLICK  # the late click still held
    assert "0.80 still held, not yet reviewed" in out.getvalue()
    late.refresh_from_db()
    assert late.billable  # neither paid nor voided
    assert LedgerEntry.objects.filter(click_id=late.pk).count() == 1  # its held entry alone


def test_an_operator_cannot_resolve_held_clicks_without_naming_the_last_one_looked_at():
    source, target = make_store("source"), make_store("target")
    hold_earnings(source, target, 1)
    other = make_store("other")
    hold_earnings(other, target, 1)
    others_entry = LedgerEntry.objects.filter(store=other, kind=LedgerEntry.Kind.HELD).get().pk
    for action in ("--release", "--void"):
        with pytest.raises(CommandError, match="--through"):
            call_command("review_earnings", action, "source.myshopify.com")
        # A number from another store's line (a copy-paste slip) names no click seen here.
        with pytest.raises(CommandError, match=r"no held click of source\.myshopify\.com"):
            call_command("review_earnings", action, "source.myshopify.com", "--through",
                         str(others_entry + 1000))  # fmt: skip
        with pytest.raises(CommandError, match=r"no held click of source\.myshopify\.com"):
            call_command("review_earnings", action, "source.myshopify.com", "--through",
                         str(others_entry))  # fmt: skip
    assert ledger.held_earnings(source) == rules.EARN_PER_CLICK


def test_the_settings_overview_shows_held_earnings_to_the_merchant(
    client, simulator, install, settings
):
    settings.RECOMMENDER_EMBEDDER = "hash"
    settings.RECOMMENDER_STATE_TTL_SECONDS = 0
    store = install("alpha")
    store_tasks.after_install(store.pk)  # shop details (a paying plan), then the grant
    partner = make_store("partner")
    ledger.grant_starter_credits(partner)
    hold_earnings(store, partner, 2)

    response = client.get(
        "/api/overview", HTTP_AUTHORIZATION=f"Bearer {simulator.id_token('alpha')}"
    )

    assert response.status_code == 200
    body = response.json()
    assert body["held_for_review"] == 1.6
    assert body["balance"] == float(rules.STARTER_GRANT)
    # The balance as the merchant can check it: given, earned and spent add up to it.
    assert body["balance_parts"] == {"given": float(rules.STARTER_GRANT), "earned": 0.0,
                                     "spent": 0.0}  # fmt: skip
    call_command(
        "grant_credits", store.shop_domain, "10", reason="a fair start", stdout=io.StringIO()
    )
    assert ledger.resolve_held(store, release=True) == (2, 0)
    body = client.get(
        "/api/overview", HTTP_AUTHORIZATION=f"Bearer {simulator.id_token('alpha')}"
    ).json()
    parts = body["balance_parts"]
    assert parts["given"] == float(rules.STARTER_GRANT) + 10
    assert parts["earned"] == 1.6 and parts["spent"] == 0.0
    assert round(parts["given"] + parts["earned"] + parts["spent"], 2) == body["balance"]


def test_network_status_reports_a_published_index_with_nothing_in_it(private_index):
    index_events.rebuild_index()  # every store gone: an empty version is still published
    live_index.current(refresh=True)

    status = io.StringIO()
    call_command("network_status", "--json", stdout=status)

    index = json.loads(status.getvalue())["index"]
    assert index["size"] == 0 and index["version"] is not None
    assert isinstance(index["age_seconds"], int)


def test_an_operator_gives_credits_to_a_store_with_a_reason_kept_in_the_ledger():
    """A development store (an App Store reviewer's, a merchant trying the app before their
    launch) gets no starter grant, so its products never appear on other stores: nothing
    could be shown to work. An operator gives it credits: an append-only ledger entry of
    its own kind, with the reason, never taken for the once-ever starter grant."""
    store = make_store("review", plan_name="Developer Preview", plan_partner_development=True)
    assert not ledger.grant_starter_credits(store)
    assert store.pk not in network_state(fresh=True).participating
    out = io.StringIO()

    call_command("grant_credits", "review.myshopify.com", "40", reason="App Store review",
                 stdout=out)  # fmt: skip

    (entry,) = LedgerEntry.objects.filter(store=store)
    assert (entry.kind, entry.amount) == (LedgerEntry.Kind.OPERATOR, Decimal("40.00"))
    assert entry.note == "App Store review"
    assert ledger.balance(store) == Decimal("40.00")
    assert store.pk in network_state(fresh=True).participating  # shown on partners now
    assert "review.myshopify.com: 40.00 given (App Store review); balance 40.00" in out.getvalue()


@pytest.mark.parametrize(
    ("args", "error"),
    [
        (["review.myshopify.com", "0"], "a positive amount"),
        (["review.myshopify.com", "-5"], "a positive amount"),
        (["review.myshopify.com", "0.004"], "a positive amount"),  # 0.00 once in cents
        (["review.myshopify.com", "1e9"], "at most 1000"),
        (["review.myshopify.com", "ten"], "a positive amount"),
        (["nowhere.myshopify.com", "5"], "unknown store"),
        (["not a shop", "5"], "unknown store"),
    ],
)
def test_an_operator_grant_refuses_what_is_not_a_sensible_gift(args, error):
    make_store("review")
    with pytest.raises(CommandError, match=error):
        call_command("grant_credits", *args, reason="typo")
    assert not LedgerEntry.objects.exists()


def test_an_operator_grant_needs_a_reason():
    make_store("review")
    with pytest.raises(CommandError, match="reason"):
        call_command("grant_credits", "review.myshopify.com", "5", reason="  ")
