"""Held earnings as merchants and operators see them: the settings API, network_status and
the review_earnings command."""

from __future__ import annotations

import io
import json

import pytest
from django.core.management import call_command

from recommender.catalog import index_events
from recommender.exchange import ledger, rules
from recommender.models import Click, LedgerEntry
from recommender.ranking import live_index
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
    voided = io.StringIO()
    call_command("review_earnings", "--void", "source.myshopify.com", stdout=voided)

    assert json.loads(status.getvalue())["held_for_review"] == {"source.myshopify.com": 2.4}
    assert "source.myshopify.com: 2.40 held" in listing.getvalue()
    assert "0 released, 3 voided" in voided.getvalue()
    assert ledger.held_earnings(source) == 0
    assert ledger.balance(source) == rules.STARTER_GRANT
    assert ledger.balance(target) == rules.STARTER_GRANT  # held clicks were never charged
    assert LedgerEntry.objects.filter(kind=LedgerEntry.Kind.VOID, store=source).count() == 3


def test_the_settings_overview_shows_held_earnings_to_the_merchant(
    client, simulator, install, settings
):
    settings.RECOMMENDER_EMBEDDER = "hash"
    settings.RECOMMENDER_STATE_TTL_SECONDS = 0
    store = install("alpha")
    store_tasks.after_install(store.pk)  # shop details (a paying plan), then the grant
    hold_earnings(store, make_store("partner"), 2)

    response = client.get(
        "/api/overview", HTTP_AUTHORIZATION=f"Bearer {simulator.id_token('alpha')}"
    )

    assert response.status_code == 200
    body = response.json()
    assert body["held_for_review"] == 1.6
    assert body["balance"] == float(rules.STARTER_GRANT)


def test_network_status_reports_a_published_index_with_nothing_in_it(private_index):
    index_events.rebuild_index()  # every store gone: an empty version is still published
    live_index.current(refresh=True)

    status = io.StringIO()
    call_command("network_status", "--json", stdout=status)

    index = json.loads(status.getvalue())["index"]
    assert index["size"] == 0 and index["version"] is not None
    assert isinstance(index["age_seconds"], int)
