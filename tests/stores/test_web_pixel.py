"""The app's web pixel: connected on install with webPixelCreate, kept so by reconciliation."""

from __future__ import annotations

import json

import pytest

from recommender.exchange import attribution
from stores import services

pytestmark = pytest.mark.django_db


def test_install_connects_the_web_pixel_with_the_stores_settings(simulator, install):
    store = install("alpha")

    services.after_install(store)

    pixel = simulator.shop("alpha").web_pixel
    assert json.loads(pixel["settings"]) == attribution.pixel_settings(store)
    assert json.loads(pixel["settings"])["key"] == attribution.pixel_key("alpha.myshopify.com")


def test_reconciliation_reconnects_a_missing_pixel_and_repairs_its_settings(simulator, install):
    store = install("alpha")
    services.after_install(store)
    shop = simulator.shop("alpha")
    shop.web_pixel = None  # the merchant disconnected it in Customer events

    services.reconcile_installs()
    reconnected = dict(shop.web_pixel)
    shop.web_pixel["settings"] = json.dumps({"endpoint": "https://elsewhere", "key": "x"})
    services.reconcile_installs()

    assert json.loads(reconnected["settings"]) == attribution.pixel_settings(store)
    assert shop.web_pixel["id"] == reconnected["id"]  # updated in place, not a second pixel
    assert json.loads(shop.web_pixel["settings"]) == attribution.pixel_settings(store)
    assert services.ensure_web_pixel(store) == "unchanged"


def test_a_pixel_without_the_pixel_scope_is_refused_and_the_install_goes_on(simulator, install):
    store = install("alpha")
    shop = simulator.shop("alpha")
    shop.granted_scopes = ["read_products", "read_themes"]  # write_pixels not granted

    services.after_install(store)  # logs the refusal; the install goes on

    assert shop.web_pixel is None
    assert store.details_synced_at is not None
    with pytest.raises(services.shopify.ShopifyError, match=r"Access denied.*read_pixels"):
        services.ensure_web_pixel(store)
