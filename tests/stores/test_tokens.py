"""Expiring offline tokens: refresh before expiry, atomic rotation, re-auth and re-exchange."""

from __future__ import annotations

import threading
from datetime import timedelta

import pytest
from django.db import connections
from django.utils import timezone

from stores import services, shopify
from stores.models import Store


def expire_soon(store: Store, *, seconds: int = 30) -> None:
    Store.objects.filter(pk=store.pk).update(
        access_token_expires_at=timezone.now() + timedelta(seconds=seconds)
    )
    store.refresh_from_db()


@pytest.mark.django_db
def test_token_about_to_expire_is_refreshed_and_the_new_pair_saved(simulator, install):
    store = install("alpha")
    old_access, old_refresh = store.access_token, store.refresh_token
    expire_soon(store)

    token = services.access_token_for(store)

    saved = Store.objects.get(pk=store.pk)
    assert token == saved.access_token != old_access
    assert saved.refresh_token != old_refresh
    assert saved.access_token_expires_at > timezone.now() + timedelta(minutes=50)
    sim_shop = simulator.shop("alpha")
    assert old_refresh not in sim_shop.refresh_tokens  # rotated: the old one is spent
    assert saved.refresh_token in sim_shop.refresh_tokens


@pytest.mark.django_db
@pytest.mark.parametrize(("expires_in", "refreshed"), [(4 * 60 + 59, True), (5 * 60 + 1, False)])
def test_tokens_are_refreshed_exactly_five_minutes_before_they_expire(
    simulator, install, settings, expires_in, refreshed
):
    assert settings.SHOPIFY_TOKEN_REFRESH_MARGIN == 300
    store = install("alpha")
    old_access = store.access_token
    expire_soon(store, seconds=expires_in)
    requests_before = simulator.shop("alpha").token_requests.count("refresh_token")

    token = services.access_token_for(store)

    refreshes = simulator.shop("alpha").token_requests.count("refresh_token") - requests_before
    assert (token != old_access, refreshes) == (refreshed, int(refreshed))


@pytest.mark.django_db
def test_fresh_token_is_used_without_calling_shopify(simulator, install):
    store = install("alpha")
    requests_before = len(simulator.shop("alpha").token_requests)

    assert services.access_token_for(store) == store.access_token
    assert len(simulator.shop("alpha").token_requests) == requests_before


@pytest.mark.django_db
def test_graphql_401_forces_a_refresh_and_succeeds(simulator, install):
    store = install("alpha")
    simulator.control("alpha", "expire-tokens")  # Shopify expired it; our clock disagrees

    response = services.admin_graphql(store, "{ shop { name } }")

    assert response.data == {"shop": {"name": "Alpha"}}
    assert simulator.shop("alpha").token_requests[-1] == "refresh_token"
    assert Store.objects.get(pk=store.pk).status == Store.Status.ACTIVE


@pytest.mark.django_db
def test_rejected_refresh_marks_needs_reauth_and_next_embedded_load_re_exchanges(
    client, simulator, install
):
    store = install("alpha")
    simulator.shop("alpha").refresh_tokens.clear()  # e.g. revoked on Shopify's side
    simulator.control("alpha", "expire-tokens")

    with pytest.raises(shopify.ShopifyAuthError):
        services.admin_graphql(store, "{ shop { name } }")
    assert Store.objects.get(pk=store.pk).status == Store.Status.NEEDS_REAUTH

    response = client.get("/", simulator.embedded_query("alpha"))

    assert response.status_code == 200
    repaired = Store.objects.get(pk=store.pk)
    assert repaired.status == Store.Status.ACTIVE
    assert simulator.shop("alpha").token_requests[-1].endswith("token-exchange")
    assert services.admin_graphql(repaired, "{ shop { name } }").data["shop"]["name"] == "Alpha"


@pytest.mark.django_db
def test_invalid_client_on_refresh_marks_needs_reauth(simulator, install, settings):
    store = install("alpha")
    expire_soon(store)
    settings.SHOPIFY_API_SECRET = "a-rotated-secret-shopify-does-not-know-yet"

    with pytest.raises(shopify.ShopifyAuthError):
        services.admin_graphql(store, "{ shop { name } }")

    assert Store.objects.get(pk=store.pk).status == Store.Status.NEEDS_REAUTH


@pytest.mark.django_db(transaction=True)
def test_concurrent_refreshes_spend_the_refresh_token_once(simulator, install):
    store = install("alpha")
    expire_soon(store)
    results: list[str] = []
    errors: list[Exception] = []
    barrier = threading.Barrier(4)

    def refresh() -> None:
        try:
            own = Store.objects.get(pk=store.pk)  # each read the old, expiring pair
            barrier.wait()  # then all ask for a fresh token at the same moment
            results.append(services.access_token_for(own))
        except Exception as error:  # collected for the assertion
            errors.append(error)
        finally:
            connections.close_all()

    threads = [threading.Thread(target=refresh) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert errors == []
    assert len(set(results)) == 1
    assert simulator.shop("alpha").token_requests.count("refresh_token") == 1
    assert Store.objects.get(pk=store.pk).access_token == results[0]
