"""Retention: what served its purpose is pruned on a schedule, what is still needed stays."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone

from recommender.catalog import index_events
from recommender.models import IndexEvent
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
