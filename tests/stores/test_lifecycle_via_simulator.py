"""The whole lifecycle driven by the simulator over real HTTP, both directions:
install → uninstall → reinstall → redact (stale) → uninstall → redact."""

from __future__ import annotations

import time

import pytest

from simulator.install import install as merchant_installs
from stores import webhooks
from stores.models import Store, WebhookDelivery

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def app_at_live_server(simulator, live_server, settings):
    settings.SHOPIFY_APP_URL = live_server.url
    simulator.world.app.app_url = live_server.url
    simulator.world.webhooks.retry_delay = 0.05
    return live_server.url


def wait_for_delivery(topic: str, count: int = 1, timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while WebhookDelivery.objects.filter(topic=topic).count() < count:
        assert time.monotonic() < deadline, f"no {topic} delivery arrived"
        time.sleep(0.05)


def test_uninstall_reinstall_redact_sequence_leaves_the_described_state(
    simulator, app_at_live_server
):
    assert merchant_installs("alpha", app_url=app_at_live_server, simulator_url=simulator.url).ok
    store = Store.objects.get(shop_domain="alpha.myshopify.com")

    simulator.control("alpha", "uninstall")
    wait_for_delivery("app/uninstalled")
    webhooks.process_pending()
    assert Store.objects.get(pk=store.pk).status == Store.Status.UNINSTALLED

    assert merchant_installs("alpha", app_url=app_at_live_server, simulator_url=simulator.url).ok
    reinstalled = Store.objects.get(pk=store.pk)
    assert reinstalled.status == Store.Status.ACTIVE
    assert reinstalled.access_token in simulator.shop("alpha").access_tokens

    simulator.control("alpha", "redact")  # late: the store came back in the meantime
    wait_for_delivery("shop/redact")
    webhooks.process_pending()
    kept = Store.objects.get(pk=store.pk)
    assert kept.status == Store.Status.ACTIVE
    assert WebhookDelivery.objects.get(topic="shop/redact").outcome.startswith("stale")

    simulator.control("alpha", "uninstall", redact=True)
    wait_for_delivery("app/uninstalled", count=2)
    wait_for_delivery("shop/redact", count=2)
    webhooks.process_pending()
    gone = Store.objects.get(pk=store.pk)
    assert gone.status == Store.Status.REDACTED
    assert (gone.name, gone.access_token, gone.refresh_token) == ("", "", "")
    assert list(WebhookDelivery.objects.values_list("topic", flat=True)) == ["shop/redact"]


def test_a_reinstall_before_the_uninstall_is_processed_keeps_the_store_installed(
    simulator, app_at_live_server
):
    # The uninstall is recorded but waits behind a busy worker; the merchant installs again
    # meanwhile. The store was still active with the token the uninstall revoked, so the
    # reinstall exchanged no new one, and the late uninstall then took the reinstalled
    # store out of the exchange until the merchant opened the app again.
    assert merchant_installs("alpha", app_url=app_at_live_server, simulator_url=simulator.url).ok
    first = Store.objects.get(shop_domain="alpha.myshopify.com")
    simulator.control("alpha", "uninstall")
    wait_for_delivery("app/uninstalled")

    assert merchant_installs("alpha", app_url=app_at_live_server, simulator_url=simulator.url).ok
    webhooks.process_pending()

    store = Store.objects.get(pk=first.pk)
    assert store.status == Store.Status.ACTIVE
    assert store.access_token in simulator.shop("alpha").access_tokens
    assert store.installed_at > first.installed_at
    assert WebhookDelivery.objects.get(topic="app/uninstalled").outcome.startswith("stale")


def test_simulator_retries_a_delivery_the_app_could_not_take(simulator, app_at_live_server):
    assert merchant_installs("alpha", app_url=app_at_live_server, simulator_url=simulator.url).ok
    simulator.world.app.app_url = "http://127.0.0.1:9"  # the app is down

    simulator.control("alpha", "uninstall")
    simulator.world.app.app_url = app_at_live_server  # and back up

    wait_for_delivery("app/uninstalled")
    # The app records the delivery before it answers; the simulator logs the answer after.
    deadline = time.monotonic() + 5
    while not any(
        e["topic"] == "app/uninstalled" and e["status"] == 200 for e in simulator.world.webhooks.log
    ):
        assert time.monotonic() < deadline, "the simulator never logged the accepted retry"
        time.sleep(0.05)
    attempts = [e for e in simulator.world.webhooks.log if e["topic"] == "app/uninstalled"]
    assert attempts[0]["status"] == 0
    assert attempts[-1]["status"] == 200
    assert len({e["event_id"] for e in attempts}) == 1


def test_duplicated_event_from_the_simulator_is_recorded_once(simulator, app_at_live_server):
    assert merchant_installs("alpha", app_url=app_at_live_server, simulator_url=simulator.url).ok

    simulator.control(
        "alpha",
        "webhook",
        topic="customers/redact",
        payload={"shop_id": 1, "shop_domain": "alpha.myshopify.com"},
        copies=4,
    )

    attempts = [e for e in simulator.world.webhooks.log if e["topic"] == "customers/redact"]
    assert [e["status"] for e in attempts] == [200] * 4
    assert WebhookDelivery.objects.filter(topic="customers/redact").count() == 1
