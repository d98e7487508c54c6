"""Webhooks are never lost: a broker that is down at delivery time, and a worker that dies
mid-delivery. Shopify retries whatever we do not acknowledge with a 2xx."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone

from interlayer import queue
from stores import webhooks
from stores.models import WebhookDelivery
from tests.stores.test_webhooks import post_webhook

pytestmark = pytest.mark.django_db


@pytest.fixture
def broker_down(monkeypatch):
    """The queue's broker refuses connections (the boundary django-q2 talks to)."""

    def refuse(*args, **kwargs):
        raise ConnectionError("broker unreachable")

    monkeypatch.setattr(queue, "async_task", refuse)
    return monkeypatch


def test_a_delivery_that_cannot_be_queued_is_not_acknowledged_and_its_retry_queues_it(
    client, broker_down, task_queue
):
    payload = {"shop_id": 1, "shop_domain": "alpha.myshopify.com"}

    first = post_webhook(client, "shop/redact", payload, event_id="evt-redact")
    broker_down.undo()  # the broker is back when Shopify retries
    task_queue.mark()
    retry = post_webhook(client, "shop/redact", payload, event_id="evt-redact")

    assert first.status_code == 503  # Shopify retries anything but 2xx
    delivery = WebhookDelivery.objects.get(event_id="evt-redact")
    assert retry.status_code == 200
    assert task_queue.new() == [("stores.tasks.process_webhook", (delivery.pk,))]
    assert delivery.status == WebhookDelivery.Status.PENDING


def test_a_duplicate_of_a_finished_delivery_is_acknowledged_without_queueing(client, task_queue):
    payload = {"shop_id": 1, "shop_domain": "alpha.myshopify.com"}
    post_webhook(client, "customers/redact", payload, event_id="evt-done")
    webhooks.process_pending()
    task_queue.mark()

    again = post_webhook(client, "customers/redact", payload, event_id="evt-done")

    assert again.status_code == 200 and again.json()["duplicate"] is True
    assert task_queue.new() == []


def test_a_delivery_whose_worker_died_is_retried_once_its_lease_expires(client, task_queue):
    payload = {"shop_id": 1, "shop_domain": "alpha.myshopify.com"}
    post_webhook(client, "customers/redact", payload, event_id="evt-lease")
    delivery = WebhookDelivery.objects.get(event_id="evt-lease")
    # What a worker killed mid-handler leaves behind: claimed, never finished.
    assert webhooks.claim(delivery.pk) is not None
    task_queue.mark()

    assert webhooks.retry_due() == 0  # the lease still runs: the worker may be alive
    WebhookDelivery.objects.filter(pk=delivery.pk).update(
        lease_expires_at=timezone.now() - timedelta(seconds=1)
    )
    assert webhooks.retry_due() == 1
    assert task_queue.new() == [("stores.tasks.process_webhook", (delivery.pk,))]
    assert webhooks.process(delivery.pk) is not None

    done = WebhookDelivery.objects.get(pk=delivery.pk)
    assert (done.status, done.attempts) == (WebhookDelivery.Status.DONE, 2)


def test_a_delivery_left_processing_before_leases_existed_is_retried(client, task_queue):
    payload = {"shop_id": 1, "shop_domain": "alpha.myshopify.com"}
    post_webhook(client, "customers/redact", payload, event_id="evt-old")
    WebhookDelivery.objects.filter(event_id="evt-old").update(
        status=WebhookDelivery.Status.PROCESSING, lease_expires_at=None
    )
    task_queue.mark()

    assert webhooks.retry_due() == 1
    assert webhooks.process(WebhookDelivery.objects.get(event_id="evt-old").pk) is not None
