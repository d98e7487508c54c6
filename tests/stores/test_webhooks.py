"""Webhooks: verification before parsing, exactly-once effects, and the store lifecycle."""

from __future__ import annotations

import json
import threading
from datetime import timedelta
from pathlib import Path

import pytest
from django.conf import settings
from django.core.management import call_command
from django.db import connections
from django.test import Client
from django.utils import timezone
from django_q.models import Schedule

from simulator.state import AppConfig
from simulator.webhooks import sign_body
from stores import services, webhooks
from stores.models import OAuthState, Store, WebhookDelivery

ROOT = Path(__file__).resolve().parent.parent.parent
FIXTURES = ROOT / "tests" / "fixtures" / "webhooks"


def captured(name: str) -> dict:
    return json.loads((FIXTURES / f"{name}.json").read_text())


def post_webhook(
    client: Client,
    topic: str,
    payload: dict | None = None,
    *,
    body: bytes | None = None,
    shop: str = "alpha.myshopify.com",
    event_id: str = "evt-1",
    secret: str | None = None,
    triggered_at: str | None = None,
    omit: tuple[str, ...] = (),
):
    raw = body if body is not None else json.dumps(payload or {}).encode()
    headers = {
        "HTTP_X_SHOPIFY_TOPIC": topic,
        "HTTP_X_SHOPIFY_HMAC_SHA256": sign_body(raw, secret or settings.SHOPIFY_API_SECRET),
        "HTTP_X_SHOPIFY_SHOP_DOMAIN": shop,
        "HTTP_X_SHOPIFY_API_VERSION": "2026-10",
        "HTTP_X_SHOPIFY_WEBHOOK_ID": f"wh-{event_id}",
        "HTTP_X_SHOPIFY_EVENT_ID": event_id,
        "HTTP_X_SHOPIFY_TRIGGERED_AT": triggered_at or timezone.now().isoformat(),
    }
    for name in omit:
        headers.pop(name)
    return client.post("/webhooks", data=raw, content_type="application/json", **headers)


# --- verification -------------------------------------------------------------------------


@pytest.mark.django_db
def test_signed_webhook_is_recorded_and_acknowledged(client):
    response = post_webhook(client, "app/uninstalled", captured("app_uninstalled"))

    assert response.status_code == 200
    assert response.json() == {"ok": True, "duplicate": False}
    delivery = WebhookDelivery.objects.get()
    assert (delivery.topic, delivery.shop_domain, delivery.event_id) == (
        "app/uninstalled",
        "alpha.myshopify.com",
        "evt-1",
    )
    assert delivery.status == WebhookDelivery.Status.PENDING


@pytest.mark.django_db
def test_bad_hmac_is_401_and_nothing_recorded(client):
    raw = json.dumps(captured("app_uninstalled")).encode()
    response = client.post(
        "/webhooks",
        data=raw,
        content_type="application/json",
        HTTP_X_SHOPIFY_TOPIC="app/uninstalled",
        HTTP_X_SHOPIFY_HMAC_SHA256="bm90IHRoZSByaWdodCBobWFj",
        HTTP_X_SHOPIFY_SHOP_DOMAIN="alpha.myshopify.com",
        HTTP_X_SHOPIFY_EVENT_ID="evt-1",
    )

    assert response.status_code == 401
    assert not WebhookDelivery.objects.exists()


@pytest.mark.django_db
def test_hmac_computed_with_another_secret_is_401(client):
    response = post_webhook(client, "app/uninstalled", {}, secret="another-apps-secret-entirely")

    assert response.status_code == 401
    assert not WebhookDelivery.objects.exists()


@pytest.mark.django_db
def test_missing_hmac_header_is_401(client):
    response = post_webhook(client, "app/uninstalled", {}, omit=("HTTP_X_SHOPIFY_HMAC_SHA256",))

    assert response.status_code == 401


@pytest.mark.django_db
@pytest.mark.parametrize(
    "header", ["HTTP_X_SHOPIFY_TOPIC", "HTTP_X_SHOPIFY_SHOP_DOMAIN", "HTTP_X_SHOPIFY_EVENT_ID"]
)
def test_missing_shopify_headers_are_400(client, header):
    omit = (header, "HTTP_X_SHOPIFY_WEBHOOK_ID") if "EVENT" in header else (header,)

    response = post_webhook(client, "app/uninstalled", {}, omit=omit)

    assert response.status_code == 400
    assert not WebhookDelivery.objects.exists()


@pytest.mark.django_db
def test_webhook_id_stands_in_for_a_missing_event_id(client):
    response = post_webhook(client, "app/uninstalled", {}, omit=("HTTP_X_SHOPIFY_EVENT_ID",))

    assert response.status_code == 200
    assert WebhookDelivery.objects.get().event_id == "wh-evt-1"


@pytest.mark.django_db
def test_bad_shop_header_is_400_even_when_signed(client):
    response = post_webhook(client, "app/uninstalled", {}, shop="evil.com")

    assert response.status_code == 400


@pytest.mark.django_db
def test_signed_non_json_body_is_400(client):
    response = post_webhook(client, "products/update", body=b"this is { not json")

    assert response.status_code == 400
    assert response.json()["error"] == "Body is not JSON"
    assert not WebhookDelivery.objects.exists()


@pytest.mark.django_db
def test_ten_megabyte_body_is_400_and_not_recorded(client):
    huge = b'{"title": "' + b"x" * (10 * 1024 * 1024) + b'"}'

    response = post_webhook(client, "products/update", body=huge)

    assert response.status_code == 400
    assert response.json()["error"] == "Payload too large"
    assert not WebhookDelivery.objects.exists()


@pytest.mark.django_db
def test_non_post_is_405(client):
    assert client.get("/webhooks").status_code == 405


@pytest.mark.django_db
def test_unknown_topic_is_acknowledged_and_ignored(client):
    response = post_webhook(client, "orders/create", {"id": 1})

    assert response.status_code == 200
    assert WebhookDelivery.objects.get().status == WebhookDelivery.Status.IGNORED


# --- exactly once -------------------------------------------------------------------------


@pytest.mark.django_db
def test_redelivery_is_acknowledged_and_does_nothing_twice(client, simulator, install):
    store = install("alpha")
    post_webhook(client, "app/uninstalled", captured("app_uninstalled"))
    assert webhooks.process_pending() == 1
    Store.objects.filter(pk=store.pk).update(status=Store.Status.ACTIVE)  # say it came back

    again = post_webhook(client, "app/uninstalled", captured("app_uninstalled"))

    assert again.status_code == 200
    assert again.json()["duplicate"] is True
    assert webhooks.process_pending() == 0
    assert WebhookDelivery.objects.count() == 1
    assert Store.objects.get(pk=store.pk).status == Store.Status.ACTIVE


@pytest.mark.django_db(transaction=True)
def test_concurrent_duplicate_deliveries_do_the_work_once(simulator, install):
    store = install("alpha")
    payload = captured("app_uninstalled")
    statuses: list[int] = []

    def deliver() -> None:
        try:
            statuses.append(post_webhook(Client(), "app/uninstalled", payload).status_code)
        finally:
            connections.close_all()

    threads = [threading.Thread(target=deliver) for _ in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    delivery = WebhookDelivery.objects.get()
    processors = [
        threading.Thread(target=lambda: (webhooks.process(delivery.pk), connections.close_all()))
        for _ in range(4)
    ]
    for thread in processors:
        thread.start()
    for thread in processors:
        thread.join()

    assert statuses == [200] * 6
    delivery.refresh_from_db()
    assert delivery.attempts == 1
    assert delivery.status == WebhookDelivery.Status.DONE
    assert Store.objects.get(pk=store.pk).status == Store.Status.UNINSTALLED


# --- the lifecycle ------------------------------------------------------------------------


@pytest.mark.django_db
def test_uninstall_deactivates_at_once_and_deletes_tokens(client, simulator, install):
    store = install("alpha")

    post_webhook(client, "app/uninstalled", captured("app_uninstalled"))
    webhooks.process_pending()

    store.refresh_from_db()
    assert store.status == Store.Status.UNINSTALLED
    assert store.access_token == store.refresh_token == ""
    assert store.uninstalled_at is not None
    assert WebhookDelivery.objects.get().outcome == "uninstalled"


@pytest.mark.django_db
def test_uninstall_for_an_unknown_shop_is_acknowledged_and_harmless(client):
    post_webhook(client, "app/uninstalled", {}, shop="never-seen.myshopify.com")

    webhooks.process_pending()

    delivery = WebhookDelivery.objects.get()
    assert delivery.status == WebhookDelivery.Status.DONE
    assert delivery.outcome == "unknown shop"
    assert not Store.objects.exists()


@pytest.mark.django_db
def test_uninstall_older_than_the_latest_install_is_stale(client, simulator, install):
    store = install("alpha")
    before_install = (store.installed_at - timedelta(minutes=5)).isoformat()

    post_webhook(client, "app/uninstalled", {}, triggered_at=before_install)
    webhooks.process_pending()

    assert Store.objects.get(pk=store.pk).status == Store.Status.ACTIVE
    assert WebhookDelivery.objects.get().outcome.startswith("stale")


@pytest.mark.django_db
def test_shop_redact_purges_the_shop_but_keeps_its_domain(client, simulator, install):
    store = install("alpha")
    OAuthState.objects.create(nonce="n", shop_domain=store.shop_domain)
    post_webhook(client, "app/uninstalled", captured("app_uninstalled"), event_id="evt-1")
    post_webhook(client, "shop/redact", captured("shop_redact"), event_id="evt-2")

    webhooks.process_pending()

    store.refresh_from_db()
    assert store.status == Store.Status.REDACTED
    assert (store.name, store.primary_domain, store.access_token) == ("", "", "")
    assert store.shop_domain == "alpha.myshopify.com"
    remaining = WebhookDelivery.objects.get()
    assert (remaining.event_id, remaining.payload) == ("evt-2", {})
    assert not OAuthState.objects.exists()


@pytest.mark.parametrize(
    "omitted", [(), ("HTTP_X_SHOPIFY_TRIGGERED_AT",)], ids=["its time given", "no time given"]
)
@pytest.mark.parametrize("status", [Store.Status.NEEDS_REAUTH, Store.Status.FROZEN])
@pytest.mark.django_db
def test_shop_redact_for_an_uninstall_before_a_reinstall_keeps_the_store(
    client, simulator, install, status, omitted
):
    """Uninstalled, installed again within the 48 hours, then out of the exchange for a
    while (a refused token refresh; Shopify froze the shop): the redaction Shopify sends 48
    hours after the uninstall is about the install before, and must not wipe this one (a
    delivery without its time is judged by when it arrived)."""
    store = install("alpha")
    Store.objects.filter(pk=store.pk).update(
        status=status, installed_at=timezone.now() - timedelta(hours=47)
    )

    post_webhook(client, "shop/redact", captured("shop_redact"), omit=omitted)
    webhooks.process_pending()

    kept = Store.objects.get(pk=store.pk)
    assert (kept.status, kept.name, kept.access_token) == (status, store.name, store.access_token)
    assert WebhookDelivery.objects.get().outcome.startswith("stale")


@pytest.mark.django_db
def test_shop_redact_sent_late_judges_by_the_uninstall_shopify_told_of(client, simulator, install):
    """Uninstalled 60 hours ago, installed again an hour later, now needing authorisation,
    and the redaction comes late: Shopify's 48 hours would put the uninstall after the
    reinstall. The uninstall's own delivery says when it was."""
    store = install("alpha")
    now = timezone.now()
    WebhookDelivery.objects.create(
        event_id="evt-uninstall", topic="app/uninstalled", shop_domain=store.shop_domain,
        triggered_at=now - timedelta(hours=60), status=WebhookDelivery.Status.DONE,
    )  # fmt: skip
    Store.objects.filter(pk=store.pk).update(
        status=Store.Status.NEEDS_REAUTH, installed_at=now - timedelta(hours=59)
    )

    post_webhook(client, "shop/redact", captured("shop_redact"), event_id="evt-redact")
    webhooks.process_pending()

    assert Store.objects.get(pk=store.pk).status == Store.Status.NEEDS_REAUTH
    assert WebhookDelivery.objects.get(event_id="evt-redact").outcome.startswith("stale")


@pytest.mark.django_db
def test_shop_redact_for_a_store_out_since_before_the_uninstall_purges_it(
    client, simulator, install
):
    """Installed long ago, then its token refused: the uninstall's own webhook may never
    have arrived, and the redaction is owed."""
    store = install("alpha")
    Store.objects.filter(pk=store.pk).update(
        status=Store.Status.NEEDS_REAUTH, installed_at=timezone.now() - timedelta(days=30)
    )

    post_webhook(client, "shop/redact", captured("shop_redact"))
    webhooks.process_pending()

    assert Store.objects.get(pk=store.pk).status == Store.Status.REDACTED


@pytest.mark.django_db
def test_shop_redact_for_a_shop_that_never_installed_is_done(client):
    post_webhook(
        client,
        "shop/redact",
        {"shop_id": 1, "shop_domain": "ghost.myshopify.com"},
        shop="ghost.myshopify.com",
    )

    webhooks.process_pending()

    delivery = WebhookDelivery.objects.get()
    assert delivery.status == WebhookDelivery.Status.DONE
    assert delivery.outcome == "never installed: nothing stored"


@pytest.mark.django_db
@pytest.mark.parametrize("topic", ["customers/redact", "customers/data_request"])
def test_customer_compliance_requests_are_answered_without_keeping_personal_data(client, topic):
    response = post_webhook(client, topic, captured(topic.replace("/", "_")))

    webhooks.process_pending()

    assert response.status_code == 200
    delivery = WebhookDelivery.objects.get()
    assert delivery.status == WebhookDelivery.Status.DONE
    kept = {"shop_id": 548380009, "shop_domain": "alpha.myshopify.com"}
    orders = ["299938", "280263", "220458"]  # the order ids the request is about, no more
    if topic == "customers/redact":
        assert delivery.payload == {**kept, "orders_to_redact": orders}
    else:
        assert delivery.payload == {**kept, "orders_requested": orders, "data_request_id": "9999"}
    assert "shopper@example.net" not in json.dumps(delivery.payload)
    assert "207119551" not in json.dumps(delivery.payload)  # nor the customer's id


@pytest.mark.django_db
def test_an_uninstall_is_recorded_without_the_shop_owners_personal_data(client):
    """app/uninstalled carries the whole shop: the owner's name, email, phone and address.
    The privacy page says the app reads a store's name, domains, currency and plan; the
    handler reads none of the payload, so none of that is stored, even for the days a
    delivery is kept."""
    response = post_webhook(client, "app/uninstalled", captured("app_uninstalled"))

    assert response.status_code == 200
    stored = json.dumps(WebhookDelivery.objects.get().payload)
    for personal in ("owner@alpha.example", "Alpha Owner", "555-555-5555", "1 Main St",
                     "customers@alpha.example", "45.42"):  # fmt: skip
        assert personal not in stored
    assert WebhookDelivery.objects.get().payload == {"id": 548380009}


@pytest.fixture
def failing_delivery(client, monkeypatch) -> WebhookDelivery:
    """A recorded customers/redact delivery whose handler fails every time it runs."""

    def broken(delivery):
        raise RuntimeError("catalog database unavailable")

    monkeypatch.setitem(webhooks.HANDLERS, "customers/redact", broken)
    post_webhook(client, "customers/redact", captured("customers_redact"))
    return WebhookDelivery.objects.get()


@pytest.mark.django_db
def test_failed_processing_is_retried_with_backoff_then_given_up(failing_delivery):
    delivery = failing_delivery

    webhooks.process(delivery.pk)
    delivery.refresh_from_db()
    assert delivery.status == WebhookDelivery.Status.FAILED
    assert delivery.last_error == "RuntimeError: catalog database unavailable"
    assert delivery.next_attempt_at > timezone.now()
    assert webhooks.retry_due() == 0  # not due yet

    WebhookDelivery.objects.filter(pk=delivery.pk).update(next_attempt_at=timezone.now())
    assert webhooks.retry_due() == 1
    for _ in range(webhooks.MAX_ATTEMPTS):
        webhooks.process(delivery.pk)
    delivery.refresh_from_db()
    assert delivery.status == WebhookDelivery.Status.DEAD
    assert delivery.attempts == webhooks.MAX_ATTEMPTS


@pytest.mark.django_db
def test_schedules_are_created_idempotently():
    call_command("setup_schedules")
    call_command("setup_schedules")

    schedule = Schedule.objects.get(name="reconcile")
    assert schedule.func == "stores.tasks.reconcile"
    assert sorted(Schedule.objects.values_list("name", flat=True)) == [
        "forget-old-salts", "forget-old-shoppers", "learn-from-clicks", "prune-index-events",
        "prune-records",
        "rebuild-index", "reconcile", "settle-clicks",
    ]  # fmt: skip


@pytest.mark.django_db
def test_reconcile_catches_an_uninstall_whose_webhook_was_lost(simulator, install):
    store = install("alpha")
    simulator.world.app.app_url = "http://127.0.0.1:9"  # the webhook goes nowhere
    simulator.world.webhooks.retries = 0
    simulator.world.uninstall(simulator.shop("alpha"))
    assert Store.objects.get(pk=store.pk).status == Store.Status.ACTIVE

    services.reconcile_installs()

    assert Store.objects.get(pk=store.pk).status == Store.Status.NEEDS_REAUTH


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("body", "error"),
    [(b"\xff\xfe not utf-8", "Body is not UTF-8"), (b"[1, 2, 3]", "Body is not a JSON object")],
)
def test_a_signed_body_that_is_not_a_utf8_json_object_is_400(client, body, error):
    response = post_webhook(client, "products/update", body=body)

    assert (response.status_code, response.json()["error"]) == (400, error)
    assert not WebhookDelivery.objects.exists()


@pytest.mark.django_db
def test_a_payload_with_text_no_column_can_hold_is_recorded_with_it_replaced(client):
    # JSON may carry a NUL ("\\u0000") or a lone surrogate ("\\ud800"), and a merchant's
    # product description can: PostgreSQL's jsonb refuses both, and the delivery failed
    # (500, Shopify retrying until it gave up). Kept with each replaced by U+FFFD.
    payload = {"id": 632910392, "title": "Mug \ud800", "body_html": "<p>a\x00b</p>",
               "tags": ["\ud800\x00"], "x\x00": 1}  # fmt: skip

    response = post_webhook(client, "products/update", payload)

    assert response.status_code == 200
    kept = WebhookDelivery.objects.get().payload
    assert kept == {"id": 632910392, "title": "Mug \ufffd", "body_html": "<p>a\ufffdb</p>",
                    "tags": ["\ufffd\ufffd"], "x\ufffd": 1}  # fmt: skip


@pytest.mark.django_db
def test_a_triggered_at_ahead_of_its_arrival_is_kept_as_its_arrival(client):
    # The header is not signed: a clock ahead (or a replayed body with a new time) made an
    # uninstall look newer than the reinstall that followed it.
    ahead = (timezone.now() + timedelta(days=1)).isoformat()

    post_webhook(client, "app/uninstalled", captured("app_uninstalled"), triggered_at=ahead)

    assert WebhookDelivery.objects.get().triggered_at <= timezone.now()


@pytest.mark.django_db
def test_a_body_of_exactly_the_limit_is_accepted_and_one_byte_more_is_not(client):
    padding = webhooks.MAX_WEBHOOK_BYTES - len(b'{"id": 1, "pad": ""}')
    exact = json.dumps({"id": 1, "pad": "x" * padding}).encode()
    assert len(exact) == webhooks.MAX_WEBHOOK_BYTES

    accepted = post_webhook(client, "customers/redact", body=exact, event_id="exact")
    refused = post_webhook(client, "customers/redact", body=exact + b" ", event_id="over")

    assert accepted.status_code == 200
    assert (refused.status_code, refused.json()["error"]) == (400, "Payload too large")


@pytest.mark.django_db
def test_retries_back_off_exponentially(failing_delivery):
    delivery = failing_delivery
    delays = []
    for _ in range(webhooks.MAX_ATTEMPTS - 1):
        before = timezone.now()
        webhooks.process(delivery.pk)
        delivery.refresh_from_db()
        delays.append(round((delivery.next_attempt_at - before).total_seconds() / 60))

    assert delays == [2, 4, 8, 16, 32, 64, 128]


# --- app/scopes_update ----------------------------------------------------------------------


@pytest.mark.django_db
def test_scopes_update_records_the_scopes_now_granted(client, simulator, install):
    store = install("alpha")
    Store.objects.filter(pk=store.pk).update(scopes="read_products")
    granted = [
        "write_products",
        "read_themes",
        "write_pixels",
        "read_customer_events",
        "read_orders",
    ]
    payload = {**captured("app_scopes_update"), "current": granted}

    response = post_webhook(client, "app/scopes_update", payload)
    webhooks.process_pending()

    assert response.status_code == 200
    store.refresh_from_db()
    assert store.scopes == ",".join(granted)
    assert store.status == Store.Status.ACTIVE  # write_products covers read_products
    assert WebhookDelivery.objects.get().outcome == "scopes recorded"


@pytest.mark.django_db
def test_scopes_update_without_a_required_scope_needs_reauthorisation(client, simulator, install):
    store = install("alpha")
    granted = ["read_products", "write_pixels", "read_customer_events", "read_orders"]
    payload = {**captured("app_scopes_update"), "current": granted}

    post_webhook(client, "app/scopes_update", payload)
    webhooks.process_pending()

    store.refresh_from_db()
    assert (store.scopes, store.status) == (",".join(granted), Store.Status.NEEDS_REAUTH)
    assert WebhookDelivery.objects.get().outcome == "scopes recorded; missing read_themes"


@pytest.mark.django_db
def test_scopes_update_older_than_the_install_or_for_an_uninstalled_store_changes_nothing(
    client, simulator, install
):
    store = install("alpha")
    granted = store.scopes
    stale = (store.installed_at - timedelta(minutes=5)).isoformat()
    post_webhook(client, "app/scopes_update", {**captured("app_scopes_update"), "current": []},
                 triggered_at=stale)  # fmt: skip
    webhooks.process_pending()
    assert Store.objects.get(pk=store.pk).scopes == granted

    Store.objects.filter(pk=store.pk).update(status=Store.Status.UNINSTALLED)
    post_webhook(client, "app/scopes_update", {**captured("app_scopes_update"), "current": []},
                 event_id="evt-2")  # fmt: skip
    webhooks.process_pending()
    assert Store.objects.get(pk=store.pk).scopes == granted


@pytest.mark.django_db
def test_scopes_update_without_a_scope_list_fails_for_the_operators_to_see(client, simulator):
    post_webhook(client, "app/scopes_update", {"id": 1, "current": "read_products"})
    webhooks.process_pending()

    delivery = WebhookDelivery.objects.get()
    assert delivery.status == WebhookDelivery.Status.FAILED
    assert "current scopes" in delivery.last_error


def test_every_handled_topic_is_subscribed_in_shopify_app_toml(settings):
    app = AppConfig.from_toml(ROOT / "shopify.app.toml", api_key="k", api_secret="s",
                              app_url="https://interlayer.example.com")  # fmt: skip
    subscribed = {topic for topic, _ in app.webhook_subscriptions}

    assert "app/scopes_update" in subscribed
    assert set(webhooks.HANDLERS) <= subscribed


@pytest.mark.django_db
@pytest.mark.parametrize(
    "triggered_at",
    ["0001-01-01T00:00:00+01:00", "9999-12-31T23:59:59-01:00", "2026-13-45T99:00:00Z"],
)
def test_a_trigger_time_no_database_can_hold_is_taken_as_none(client, triggered_at):
    # The HMAC covers the body, not this header. Year 1 at +01:00 is year 0 in UTC, which
    # PostgreSQL's timestamptz refuses to read back (SQLite refused to write it): the
    # delivery failed in the worker's claim, outside its failure handling, and was re-queued
    # forever; Shopify's redelivery of the event then got a 500.
    response = post_webhook(client, "app/uninstalled", {}, triggered_at=triggered_at)

    assert response.status_code == 200
    delivery = WebhookDelivery.objects.get()
    assert delivery.triggered_at is None
    assert post_webhook(client, "app/uninstalled", {}, triggered_at=triggered_at).json() == {
        "ok": True,
        "duplicate": True,
    }


@pytest.mark.django_db
@pytest.mark.parametrize("length", ["abc", "1e3"])
def test_a_content_length_that_is_no_count_is_not_a_server_error(client, length):
    # gunicorn and the nginx front refuse such a header before Django sees it; a server
    # that passes it on (the development server) must not turn it into a 500.
    raw = json.dumps({}).encode()
    response = client.post(
        "/webhooks",
        data=raw,
        content_type="application/json",
        CONTENT_LENGTH=length,
        HTTP_X_SHOPIFY_TOPIC="app/uninstalled",
        HTTP_X_SHOPIFY_HMAC_SHA256=sign_body(raw, settings.SHOPIFY_API_SECRET),
        HTTP_X_SHOPIFY_SHOP_DOMAIN="alpha.myshopify.com",
        HTTP_X_SHOPIFY_EVENT_ID="evt-1",
    )

    # Read as Django reads it (no length: no body), so the signature is of nothing: 401.
    assert response.status_code == 401
    assert not WebhookDelivery.objects.exists()


@pytest.mark.django_db
@pytest.mark.parametrize("body", [b'{"id": 1, "price": 1e400}', b'{"id": 1, "price": NaN}',
                                  b'{"id": -Infinity}'])  # fmt: skip
def test_a_signed_body_with_a_number_no_json_column_holds_is_400(client, body):
    # Python's parser reads these (as inf and nan); the JSON column refused them at the
    # insert, a 500 at every redelivery.
    response = post_webhook(client, "products/update", body=body)

    assert response.status_code == 400
    assert not WebhookDelivery.objects.exists()
