"""Malformed signatures on every signed endpoint: a clear 401, never a crash, and never the
app's secret (or the HMAC it expected) in any answer."""

from __future__ import annotations

import json
import time
from urllib.parse import urlencode

import pytest
from django.conf import settings

from simulator.server import sign_proxy_query, sign_query
from simulator.webhooks import sign_body

pytestmark = pytest.mark.django_db

BAD_SIGNATURES = [
    "é" * 44,  # non-ASCII
    "ünïcödé",
    "abc",  # wrong length
    "a" * 5000,  # oversized
    "c2lnbmF0dXJl,c2lnbmF0dXJl",  # a repeated header, joined by the server
]


def assert_clean_401(response) -> None:
    assert response.status_code == 401
    body = response.content.decode("utf-8", errors="replace")
    assert settings.SHOPIFY_API_SECRET not in body
    assert "Traceback" not in body


@pytest.mark.parametrize("bad", BAD_SIGNATURES)
def test_webhook_with_a_malformed_hmac_header_is_401(client, bad):
    body = json.dumps({"id": 1}).encode()
    expected = sign_body(body, settings.SHOPIFY_API_SECRET)

    response = client.post(
        "/webhooks", data=body, content_type="application/json",
        HTTP_X_SHOPIFY_TOPIC="app/uninstalled", HTTP_X_SHOPIFY_HMAC_SHA256=bad,
        HTTP_X_SHOPIFY_SHOP_DOMAIN="alpha.myshopify.com", HTTP_X_SHOPIFY_EVENT_ID="e-bad",
    )  # fmt: skip

    assert_clean_401(response)
    assert expected not in response.content.decode("utf-8", errors="replace")


def proxy_query(**overrides) -> list[tuple[str, str]]:
    pairs = [("shop", "alpha.myshopify.com"), ("logged_in_customer_id", ""),
             ("path_prefix", "/apps/interlayer"), ("timestamp", str(int(time.time())))]  # fmt: skip
    pairs.append(("signature", sign_proxy_query(pairs, settings.SHOPIFY_API_SECRET)))
    return [(k, overrides.get(k, v)) for k, v in pairs]


@pytest.mark.parametrize("bad", BAD_SIGNATURES)
def test_app_proxy_with_a_malformed_signature_is_401(client, bad):
    response = client.get("/proxy/recommendations?" + urlencode(proxy_query(signature=bad)))

    assert_clean_401(response)


def test_app_proxy_with_the_signature_repeated_is_401(client):
    pairs = proxy_query()
    pairs.append(("signature", pairs[-1][1]))

    response = client.get("/proxy/recommendations?" + urlencode(pairs))

    assert_clean_401(response)


@pytest.mark.parametrize("bad", BAD_SIGNATURES)
def test_install_link_with_a_malformed_hmac_is_401(client, bad):
    params = {"shop": "alpha.myshopify.com", "timestamp": str(int(time.time()))}
    params["hmac"] = sign_query(params, settings.SHOPIFY_API_SECRET)
    params["hmac"] = bad

    response = client.get("/?" + urlencode(params))

    assert_clean_401(response)


@pytest.mark.parametrize("bad", ["é.é.é", "a" * 9000, "not-a-jwt"])
def test_settings_api_with_a_malformed_bearer_token_is_401(client, bad):
    response = client.get("/api/overview", HTTP_AUTHORIZATION=f"Bearer {bad}")

    assert_clean_401(response)
    assert response["X-Shopify-Retry-Invalid-Session-Request"] == "1"


# shopifyapp's verifiers parse a JSON body (to redact it for their log) before they check
# anything, and Python's parser answers deep nesting with a RecursionError, not the
# ValueError they expect: unsigned, such a body must still get a clean 401.
TOO_DEEP = "[" * 3000


# ... and a number longer than Python's 4,300 digits with a plain ValueError.
@pytest.mark.parametrize("body", [TOO_DEEP, "1" * 5000], ids=["nested", "long-number"])
def test_an_unsigned_webhook_body_the_verifier_cannot_parse_is_401(client, body):
    wrong = sign_body(b"another body", settings.SHOPIFY_API_SECRET)

    response = client.post(
        "/webhooks", data=body, content_type="application/json",
        HTTP_X_SHOPIFY_TOPIC="app/uninstalled", HTTP_X_SHOPIFY_HMAC_SHA256=wrong,
        HTTP_X_SHOPIFY_SHOP_DOMAIN="alpha.myshopify.com", HTTP_X_SHOPIFY_EVENT_ID="e-deep",
    )  # fmt: skip

    assert_clean_401(response)


def test_a_settings_api_body_nested_too_deep_with_a_bad_token_is_401(client):
    response = client.post(
        "/api/settings", data=TOO_DEEP, content_type="application/json",
        HTTP_AUTHORIZATION="Bearer not-a-jwt",
    )  # fmt: skip

    assert_clean_401(response)
    assert response["X-Shopify-Retry-Invalid-Session-Request"] == "1"
