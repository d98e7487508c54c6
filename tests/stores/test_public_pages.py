"""The privacy policy and support pages the App Store listing links to: public, plain, and
linked from the embedded settings page."""

from __future__ import annotations

import pytest


@pytest.mark.parametrize(
    ("path", "heading"),
    [("/privacy", "Interlayer privacy policy"), ("/support", "Interlayer help and support")],
)
def test_the_listing_pages_are_public_and_load_no_app_bridge(client, settings, path, heading):
    response = client.get(path)

    html = response.content.decode()
    assert response.status_code == 200
    assert f"<h1>{heading}</h1>" in html
    assert settings.INTERLAYER_SUPPORT_EMAIL in html
    assert settings.SHOPIFY_APP_BRIDGE_URL not in html and "ui-nav-menu" not in html
    assert response["Content-Security-Policy"].startswith("frame-ancestors 'none'; script-src")


def test_opened_from_the_admin_menu_the_page_keeps_app_bridge_and_may_be_framed(client, settings):
    response = client.get("/support", {"embedded": "1", "shop": "alpha.myshopify.com"})

    html = response.content.decode()
    assert settings.SHOPIFY_APP_BRIDGE_URL in html and "<ui-nav-menu>" in html
    assert response["Content-Security-Policy"].startswith(
        "frame-ancestors https://alpha.myshopify.com https://admin.shopify.com"
    )


def test_a_forged_shop_gets_the_plain_page(client):
    response = client.get("/privacy", {"embedded": "1", "shop": "evil.example.com"})

    assert response["Content-Security-Policy"].startswith("frame-ancestors 'none'; script-src")
    assert "ui-nav-menu" not in response.content.decode()


@pytest.mark.django_db
def test_every_page_limits_scripts_to_the_app_and_shopifys_cdn(client, settings):
    settings.SHOPIFY_APP_BRIDGE_URL = "https://cdn.shopify.com/shopifycloud/app-bridge.js"
    settings.SHOPIFY_POLARIS_URL = "https://cdn.shopify.com/shopifycloud/polaris.js"

    for page in ("/", "/privacy", "/support", "/auth/callback?shop=alpha.myshopify.com"):
        policy = client.get(page)["Content-Security-Policy"]

        assert policy == (
            "frame-ancestors 'none'; script-src 'self' https://cdn.shopify.com; "
            "object-src 'none'; base-uri 'none';"
        ), page


def test_static_files_served_from_another_host_may_load_their_scripts(client, settings):
    settings.SHOPIFY_APP_BRIDGE_URL = "https://cdn.shopify.com/shopifycloud/app-bridge.js"
    settings.SHOPIFY_POLARIS_URL = "https://cdn.shopify.com/shopifycloud/polaris.js"
    settings.STATIC_URL = "https://static.interlayer.test/assets/"

    policy = client.get("/support")["Content-Security-Policy"]

    assert "script-src 'self' https://cdn.shopify.com https://static.interlayer.test;" in policy


@pytest.mark.django_db
def test_the_settings_page_links_both_and_loads_polaris(client, simulator, install, settings):
    install("alpha")

    html = client.get("/", simulator.embedded_query("alpha")).content.decode()

    assert '<s-link href="/support" target="_blank">' in html
    assert '<s-link href="/privacy" target="_blank">' in html
    assert f'<script src="{settings.SHOPIFY_POLARIS_URL}"></script>' in html
    assert '<a href="/" rel="home">Interlayer</a>' in html  # the admin's app menu
