"""Retention: what served its purpose is pruned on a schedule, what is still needed stays."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone

from recommender import lifecycle
from recommender.catalog import index_events
from recommender.exchange import rules
from recommender.models import Click, Impression, IndexEvent, LedgerEntry
from stores import services
from stores.models import OAuthState, WebhookDelivery
from tests.factories import make_product, make_store, topic_vector

pytestmark = pytest.mark.django_db


def delivery(event_id: str, status: str, age: timedelta) -> WebhookDelivery:
    return WebhookDelivery.objects.create(
        event_id=event_id, topic="products/update", shop_domain="alpha.myshopify.com",
        payload={"title": "x"}, status=status, received_at=timezone.now() - age,
    )  # fmt: skip


def test_old_webhook_payloads_deliveries_and_oauth_states_are_pruned():
    Status = WebhookDelivery.Status
    fresh = delivery("fresh", Status.DONE, timedelta(days=1))
    week_old = delivery("week", Status.DONE, timedelta(days=8))
    month_old = delivery("month", Status.DONE, timedelta(days=31))
    failing = delivery("failing", Status.FAILED, timedelta(days=31))  # still being retried
    OAuthState.objects.create(nonce="old", shop_domain="a.myshopify.com",
                              created_at=timezone.now() - timedelta(days=2))  # fmt: skip
    OAuthState.objects.create(nonce="new", shop_domain="a.myshopify.com")

    pruned = services.prune_records()

    assert pruned == {"payloads_emptied": 2, "deliveries_deleted": 1, "oauth_states_deleted": 1,
                      "data_requests_deleted": 0}  # fmt: skip
    assert WebhookDelivery.objects.get(pk=fresh.pk).payload == {"title": "x"}
    assert WebhookDelivery.objects.get(pk=week_old.pk).payload == {}
    assert not WebhookDelivery.objects.filter(pk=month_old.pk).exists()
    assert WebhookDelivery.objects.filter(pk=failing.pk).exists()
    assert list(OAuthState.objects.values_list("nonce", flat=True)) == ["new"]


def test_index_events_are_pruned_only_once_the_published_index_holds_them(settings, tmp_path):
    settings.RECOMMENDER_INDEX_DIR = tmp_path / "index"
    store = make_store("alpha")
    product = make_product(store, "Grinder", topic_vector("coffee", seed=1))
    index_events.emit_index_events(IndexEvent.Kind.UPSERT, [(product.pk, store.pk)])
    IndexEvent.objects.update(created_at=timezone.now() - timedelta(days=2))
    assert index_events.prune_applied_events() == 0  # nothing published yet: keep them

    index_events.rebuild_index()  # folds in the settled events
    index_events.emit_index_events(IndexEvent.Kind.UPSERT, [(product.pk, store.pk)])  # newer

    assert index_events.prune_applied_events() == 1
    assert IndexEvent.objects.count() == 1


def test_clicks_and_views_forget_the_shopper_after_the_retention_but_keep_the_ledger():
    sender, target = make_store("sender"), make_store("target")
    old = timezone.now() - rules.SHOPPER_DATA_RETENTION - timedelta(hours=1)
    shopper = {"user_agent": "Mozilla/5.0 (Shopper)", "visitor_hash": "v", "ip_hash": "a",
               "previous_visitor_hash": "pv", "previous_ip_hash": "pa", "site_hash": "s",
               "previous_site_hash": "ps"}  # fmt: skip
    clicks = {}
    for age, when in (("old", old), ("recent", timezone.now())):
        clicks[age] = Click.objects.create(
            source_store=sender, target_store=target, target_product_id=1, impression_id=age,
            token_id=age, billable=True, reason="billable", created_at=when, **shopper,
        )  # fmt: skip
    LedgerEntry.objects.create(store=sender, kind="earn", amount="0.80", click=clicks["old"])
    Impression.objects.create(store=sender, impression_id="old", visitor_hash="v", ip_hash="a",
                              created_at=old)  # fmt: skip
    Impression.objects.create(store=sender, impression_id="recent", visitor_hash="v", ip_hash="a")

    forgotten = lifecycle.forget_old_shoppers()

    assert forgotten == {"clicks": 1, "impressions": 1}
    stripped = Click.objects.get(pk=clicks["old"].pk)
    assert (stripped.user_agent, stripped.visitor_hash, stripped.ip_hash, stripped.site_hash,
            stripped.previous_site_hash) == ("",) * 5  # fmt: skip
    assert stripped.billable and LedgerEntry.objects.filter(click=stripped).exists()
    assert Click.objects.get(pk=clicks["recent"].pk).user_agent == "Mozilla/5.0 (Shopper)"
    assert Impression.objects.get(impression_id="old").visitor_hash == ""
    assert Impression.objects.get(impression_id="recent").visitor_hash == "v"
    assert lifecycle.forget_old_shoppers() == {"clicks": 0, "impressions": 0}  # once
