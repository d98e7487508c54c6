"""Both install paths, end to end against the simulator over real HTTP."""

from __future__ import annotations

from urllib.parse import parse_qs, urlparse

import httpx
import pytest
from django.db import connection

from stores import shopify, tasks
from stores.hooks import store_installed
from stores.models import OAuthState, Store

pytestmark = pytest.mark.django_db


def follow_authorize(simulator, location: str) -> str:
    """The merchant's browser at Shopify's authorize screen: it approves and is redirected."""
    transport = shopify.SimulatorTransport(simulator.url)
    with httpx.Client(transport=transport) as browser:
        response = browser.get(location)
    assert response.status_code == 302, response.text
    return response.headers["Location"]


def test_managed_install_exchanges_id_token_for_expiring_offline_token(client, simulator):
    simulator.world.install(simulator.shop("alpha"))

    response = client.get("/", simulator.embedded_query("alpha"))

    assert response.status_code == 200
    store = Store.objects.get(shop_domain="alpha.myshopify.com")
    assert store.status == Store.Status.ACTIVE
    assert store.access_token in simulator.shop("alpha").access_tokens
    assert store.refresh_token in simulator.shop("alpha").refresh_tokens
    assert store.access_token_expires_at is not None
    assert store.refresh_token_expires_at > store.access_token_expires_at
    assert simulator.shop("alpha").token_requests == [
        "urn:ietf:params:oauth:grant-type:token-exchange"
    ]
    assert b'id="install-state"' in response.content


def test_authorization_code_install_ends_in_the_same_active_store(client, simulator):
    start = client.get(simulator.install_link("beta"))
    assert start.status_code == 302
    authorize = urlparse(start["Location"])
    assert (authorize.scheme, authorize.hostname, authorize.path) == (
        "https",
        "beta.myshopify.com",
        "/admin/oauth/authorize",
    )
    state = parse_qs(authorize.query)["state"][0]
    assert OAuthState.objects.filter(nonce=state, shop_domain="beta.myshopify.com").exists()

    callback = follow_authorize(simulator, start["Location"])
    finish = client.get(callback.removeprefix("http://testserver"))

    assert finish.status_code == 302
    assert finish["Location"] == "https://beta.myshopify.com/admin/apps/interlayer"
    store = Store.objects.get(shop_domain="beta.myshopify.com")
    assert store.status == Store.Status.ACTIVE
    assert store.refresh_token in simulator.shop("beta").refresh_tokens  # expiring=1 was sent
    assert store.scopes == "read_products,read_themes,write_pixels,read_customer_events,read_orders"


def test_install_link_for_a_working_install_opens_the_embedded_app(client, simulator, install):
    install("alpha")

    response = client.get(simulator.install_link("alpha"))

    assert response.status_code == 302
    assert response["Location"] == "https://alpha.myshopify.com/admin/apps/interlayer"
    assert OAuthState.objects.count() == 0


def test_tokens_are_encrypted_at_rest(simulator, install):
    store = install("alpha")

    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT access_token, refresh_token FROM stores_store WHERE id = %s", [store.pk]
        )
        raw_access, raw_refresh = cursor.fetchone()

    assert store.access_token.startswith("shpat_")
    assert store.access_token not in raw_access
    assert store.refresh_token not in raw_refresh
    assert raw_access.startswith("gAAAA")  # Fernet token


def test_after_install_records_shop_details_and_fires_the_install_hook(simulator, install):
    store = install("alpha")
    received = []

    def receiver(sender, store, **kwargs):
        received.append(store.pk)

    store_installed.connect(receiver, weak=False)
    try:
        tasks.after_install(store.pk)
    finally:
        store_installed.disconnect(receiver)

    store.refresh_from_db()
    assert store.name == "Alpha"
    assert store.currency == "USD"
    assert store.primary_domain == simulator.world.storefront_url(simulator.shop("alpha"))
    assert store.plan_name == "Basic"
    assert received == [store.pk]


def test_install_without_required_scopes_is_refused_and_nothing_installed(
    client, simulator, settings
):
    settings.SHOPIFY_SCOPES = ["read_products", "read_customers"]
    simulator.world.install(simulator.shop("alpha"))  # grants the TOML's scopes only

    response = client.get("/", simulator.embedded_query("alpha"))

    assert response.status_code == 403
    assert b"read_customers" in response.content
    assert not Store.objects.filter(status=Store.Status.ACTIVE).exists()


def test_reinstall_reuses_the_same_store_record(client, simulator, install):
    first = install("alpha")
    Store.objects.filter(pk=first.pk).update(status=Store.Status.UNINSTALLED, access_token="")

    second = install("alpha")

    assert second.pk == first.pk
    assert second.status == Store.Status.ACTIVE
    assert Store.objects.count() == 1
