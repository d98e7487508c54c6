"""Bad input at install and auth: a clear 4xx (or a retry), never a half-installed store and
never a redirect to a host we did not validate."""

from __future__ import annotations

import time
from urllib.parse import parse_qs, urlencode, urlparse

import jwt
import pytest

from simulator.server import sign_query
from stores.auth import client_ip, valid_shop_domain
from stores.models import OAuthState, Store
from tests.stores.test_install import follow_authorize

# /api/session (the embedded session echo) lives in the diagnostics URLconf only.
pytestmark = [pytest.mark.django_db, pytest.mark.urls("interlayer.diagnostics_urls")]

BAD_SHOPS = [
    "evil.com",
    "shop.myshopify.com.evil.com",
    "../",
    "",
    "a" * 300 + ".myshopify.com",
    "https://alpha.myshopify.com",
    "alpha.myshopify.com/admin",
    "alpha.myshopify.com:443",
    "ALPHA..myshopify.com",
    "-alpha.myshopify.com",
    "alpha",
    "user@alpha.myshopify.com",
    " alpha.myshopify.com",
]


@pytest.mark.parametrize("value", BAD_SHOPS)
def test_shop_domain_check_rejects(value):
    assert valid_shop_domain(value) is None


def test_shop_domain_check_accepts_a_real_shop():
    assert valid_shop_domain("coffee-corner.myshopify.com") == "coffee-corner.myshopify.com"


@pytest.mark.parametrize("value", BAD_SHOPS)
def test_install_link_with_bad_shop_is_400_without_redirect(client, simulator, value):
    params = {"shop": value, "timestamp": str(int(time.time()))}
    params["hmac"] = sign_query(params, simulator.world.app.api_secret)  # even if signed

    response = client.get("/?" + urlencode(params))

    assert response.status_code == 400
    assert "Location" not in response
    assert OAuthState.objects.count() == 0


def test_install_link_with_forged_hmac_is_401(client, simulator):
    link = simulator.install_link("alpha").replace("hmac=", "hmac=00")

    response = client.get(link)

    assert response.status_code == 401
    assert OAuthState.objects.count() == 0


@pytest.mark.parametrize("name", ["hmac", "shop", "timestamp"])
def test_install_link_with_a_repeated_parameter_is_401(client, simulator, name):
    # A genuine link with one of its signed parameters given again, the same value: the
    # signature covers each name once, so a query that names one twice is not what Shopify
    # signed, whichever copy a reader takes.
    link = simulator.install_link("alpha")
    value = parse_qs(urlparse(link).query)[name][0]

    response = client.get(f"{link}&{urlencode({name: value})}")

    assert response.status_code == 401
    assert b"Repeated" in response.content
    assert "Location" not in response
    assert OAuthState.objects.count() == 0


def test_install_link_with_a_timestamp_no_clock_reaches_is_400(client, simulator):
    # Signed, so only a holder of the secret could send it; still a clear answer, not the
    # OverflowError of subtracting a 400-digit number from the time.
    params = {"shop": "alpha.myshopify.com", "timestamp": "9" * 400}
    params["hmac"] = sign_query(params, simulator.world.app.api_secret)

    response = client.get("/?" + urlencode(params))

    assert response.status_code == 400
    assert b"timestamp" in response.content
    assert OAuthState.objects.count() == 0


def test_install_link_signed_with_another_secret_is_401(client, simulator):
    response = client.get(simulator.install_link("alpha", secret="someone-elses-secret"))

    assert response.status_code == 401
    assert b"HMAC verification failed" in response.content


def test_install_link_with_stale_timestamp_is_401(client, simulator):
    response = client.get(simulator.install_link("alpha", age=3600))

    assert response.status_code == 401
    assert b"timestamp" in response.content


def test_install_link_signed_with_previous_secret_during_rotation_is_accepted(
    client, simulator, settings
):
    settings.SHOPIFY_API_SECRET_OLD = "the-previous-secret-still-in-rotation"

    response = client.get(simulator.install_link("alpha", secret=settings.SHOPIFY_API_SECRET_OLD))

    assert response.status_code == 302
    assert urlparse(response["Location"]).hostname == "alpha.myshopify.com"


def start_oauth(client, simulator, handle="beta") -> str:
    start = client.get(simulator.install_link(handle))
    return follow_authorize(simulator, start["Location"])


def callback_with(simulator, callback_url: str, **changes) -> str:
    params = {k: v[0] for k, v in parse_qs(urlparse(callback_url).query).items()}
    params.update(changes)
    params.pop("hmac")
    params["hmac"] = sign_query(params, simulator.world.app.api_secret)
    return "/auth/callback?" + urlencode(params)


def test_callback_with_mismatched_state_is_403_and_installs_nothing(client, simulator):
    callback = start_oauth(client, simulator)

    response = client.get(callback_with(simulator, callback, state="not-the-nonce-we-issued"))

    assert response.status_code == 403
    assert not Store.objects.exists()


def test_callback_replay_is_403(client, simulator):
    callback = start_oauth(client, simulator).removeprefix("http://testserver")
    assert client.get(callback).status_code == 302

    replay = client.get(callback)

    assert replay.status_code == 403
    assert Store.objects.count() == 1


def test_callback_state_issued_for_another_shop_is_403(client, simulator):
    callback = start_oauth(client, simulator, "beta")
    stolen_state = parse_qs(urlparse(callback).query)["state"][0]
    other = start_oauth(client, simulator, "alpha")

    response = client.get(callback_with(simulator, other, state=stolen_state))

    assert response.status_code == 403
    assert not Store.objects.exists()


def test_callback_with_expired_state_is_403(client, simulator, settings):
    callback = start_oauth(client, simulator)
    settings.SHOPIFY_OAUTH_STATE_TTL = -1

    response = client.get(callback.removeprefix("http://testserver"))

    assert response.status_code == 403


def test_callback_with_forged_hmac_is_401(client, simulator):
    callback = start_oauth(client, simulator).removeprefix("http://testserver")

    response = client.get(callback.replace("hmac=", "hmac=ff"))

    assert response.status_code == 401
    assert not Store.objects.exists()


def test_callback_with_a_repeated_hmac_is_401_and_installs_nothing(client, simulator):
    callback = start_oauth(client, simulator).removeprefix("http://testserver")
    signature = parse_qs(urlparse(callback).query)["hmac"][0]

    response = client.get(f"{callback}&hmac={signature}")

    assert response.status_code == 401
    assert not Store.objects.exists()
    # The state was not spent: the genuine callback still completes the install.
    assert client.get(callback).status_code == 302
    assert Store.objects.get().status == Store.Status.ACTIVE


@pytest.mark.parametrize(
    ("mode", "status"),
    [("401", 403), ("429", 503), ("500", 502), ("timeout", 502)],
)
def test_code_exchange_failure_gives_clear_error_and_no_store(client, simulator, mode, status):
    callback = start_oauth(client, simulator).removeprefix("http://testserver")
    simulator.fault("beta", "token", mode, count=3)

    response = client.get(callback)

    assert response.status_code == status
    assert "Location" not in response
    assert not Store.objects.exists()


def test_code_exchange_retries_a_transient_server_error(client, simulator):
    callback = start_oauth(client, simulator).removeprefix("http://testserver")
    simulator.fault("beta", "token", "503", count=1)

    response = client.get(callback)

    assert response.status_code == 302
    assert Store.objects.get().status == Store.Status.ACTIVE
    assert simulator.shop("beta").token_requests == ["authorization_code"] * 2


# --- ID tokens -------------------------------------------------------------------------


def embedded(simulator, handle="alpha", token: str | None = None, **overrides) -> dict:
    query = simulator.embedded_query(handle, **overrides)
    if token is not None:
        query["id_token"] = token
    return query


def test_expired_id_token_on_document_load_bounces_for_a_new_one(client, simulator):
    simulator.world.install(simulator.shop("alpha"))
    query = embedded(simulator, exp=int(time.time()) - 60)

    response = client.get("/", query)

    assert response.status_code == 302
    bounce = urlparse(response["Location"])
    assert bounce.path == "/auth/session-token"
    assert parse_qs(bounce.query)["shop"] == ["alpha.myshopify.com"]
    assert not Store.objects.exists()


def test_missing_id_token_bounces_and_the_bounce_page_carries_the_csp(client, simulator):
    response = client.get("/", {"embedded": "1", "shop": "alpha.myshopify.com"})
    assert response.status_code == 302

    bounce = client.get(response["Location"].removeprefix("http://testserver"))

    assert bounce.status_code == 200
    assert "frame-ancestors https://alpha.myshopify.com" in bounce["Content-Security-Policy"]
    assert b"app-bridge.js" in bounce.content


def test_bounce_page_rejects_bad_shop_and_offsite_reload(client):
    bad_shop = client.get("/auth/session-token", {"shop": "evil.com", "shopify-reload": "/"})
    offsite = client.get(
        "/auth/session-token",
        {"shop": "alpha.myshopify.com", "shopify-reload": "//evil.com/x"},
    )

    assert bad_shop.status_code == 400
    assert offsite.status_code == 400


# Paths that pass a "starts with one slash" check but that a browser (and App Bridge, which
# resolves shopify-reload against the page's origin) reads as another host: the reload
# would carry the merchant's fresh ID token there.
@pytest.mark.parametrize(
    "reload_path",
    ["/\\evil.com/x", "/\\/evil.com", "/\t/evil.com", "/\n/evil.com", "/\r/evil.com"],
    ids=["backslash", "slash-backslash", "tab", "newline", "carriage-return"],
)
def test_bounce_page_rejects_a_reload_path_a_browser_reads_as_another_host(client, reload_path):
    response = client.get(
        "/auth/session-token", {"shop": "alpha.myshopify.com", "shopify-reload": reload_path}
    )

    assert response.status_code == 400
    assert b"app-bridge" not in response.content


def test_bounce_page_rejects_a_reload_path_given_twice(client):
    """The check read the last shopify-reload, App Bridge (URLSearchParams.get) the first:
    a hostile path first and "/" last passed the check, and the reload carried a fresh ID
    token to the hostile host. A path given more than once is refused."""
    response = client.get(
        "/auth/session-token?shop=alpha.myshopify.com"
        "&shopify-reload=%2F%5Cevil.com%2Fx&shopify-reload=%2F"
    )

    assert response.status_code == 400
    assert b"app-bridge" not in response.content


def test_bounce_page_accepts_the_apps_own_reload_path(client):
    reload_path = "/?embedded=1&shop=alpha.myshopify.com&host=YWRtaW4"
    response = client.get(
        "/auth/session-token", {"shop": "alpha.myshopify.com", "shopify-reload": reload_path}
    )

    assert response.status_code == 200


@pytest.mark.parametrize(
    "overrides",
    [
        {"aud": "another-apps-key"},
        {"iss": "https://beta.myshopify.com/admin"},
        {"dest": "https://evil.com"},
        {"iss": "https://evil.com/admin", "dest": "https://evil.com"},
    ],
    ids=["wrong-audience", "iss-dest-mismatch", "dest-not-a-shop", "foreign-shop"],
)
def test_invalid_id_token_claims_on_fetch_are_401_with_retry_header(
    client, simulator, install, overrides
):
    install("alpha")
    token = simulator.id_token("alpha", **overrides)

    response = client.get("/api/session", HTTP_AUTHORIZATION=f"Bearer {token}")

    assert response.status_code == 401
    assert response["X-Shopify-Retry-Invalid-Session-Request"] == "1"


def test_alg_none_id_token_is_rejected(client, simulator, install):
    install("alpha")
    now = int(time.time())
    claims = {
        "iss": "https://alpha.myshopify.com/admin",
        "dest": "https://alpha.myshopify.com",
        "aud": simulator.world.app.api_key,
        "exp": now + 60,
        "nbf": now,
    }
    unsigned = jwt.encode(claims, key=None, algorithm="none")

    fetch = client.get("/api/session", HTTP_AUTHORIZATION=f"Bearer {unsigned}")
    document = client.get("/", embedded(simulator, token=unsigned))

    assert fetch.status_code == 401
    assert document.status_code == 302  # bounced for a real token, nothing rendered


def test_id_token_signed_with_another_secret_is_401(client, simulator, install):
    install("alpha")
    token = simulator.id_token("alpha")
    claims = jwt.decode(token, options={"verify_signature": False})
    forged = jwt.encode(claims, "an-attackers-secret-that-is-long-enough", algorithm="HS256")

    response = client.get("/api/session", HTTP_AUTHORIZATION=f"Bearer {forged}")

    assert response.status_code == 401
    assert response["X-Shopify-Retry-Invalid-Session-Request"] == "1"


def test_fetch_without_session_token_is_401_with_retry_header_not_a_login_page(client):
    response = client.get("/api/session")

    assert response.status_code == 401
    assert response["X-Shopify-Retry-Invalid-Session-Request"] == "1"
    assert response["Content-Type"] == "application/json"


def test_embedded_page_sends_per_shop_csp_and_no_cookies(client, simulator, install):
    install("alpha")

    response = client.get("/", simulator.embedded_query("alpha"))

    assert response.status_code == 200
    assert response["Content-Security-Policy"] == (
        f"frame-ancestors https://alpha.myshopify.com https://admin.shopify.com {simulator.url}; "
        f"script-src 'self' {simulator.url}; object-src 'none'; base-uri 'none';"
    )
    assert not response.cookies
    assert b'<meta name="shopify-api-key"' in response.content


def test_valid_session_token_fetch_returns_the_shops_state(client, simulator, install):
    install("alpha")
    token = simulator.id_token("alpha")

    response = client.get("/api/session", HTTP_AUTHORIZATION=f"Bearer {token}")

    assert response.status_code == 200
    assert response.json()["shop"] == "alpha.myshopify.com"
    assert response.json()["status"] == "active"


@pytest.mark.parametrize(
    ("forwarded", "hops", "expected"),
    [
        ("203.0.113.7", 1, "203.0.113.7"),  # Shopify's proxy appended the shopper
        ("6.6.6.6, 203.0.113.7", 1, "203.0.113.7"),  # a forged entry before it is ignored
        ("6.6.6.6, 203.0.113.7, 10.0.0.2", 2, "203.0.113.7"),  # behind one balancer of ours
        ("", 1, "192.0.2.99"),  # not through a proxy: the connecting address
    ],
)
def test_client_ip_is_the_entry_our_nearest_trusted_proxy_added(
    rf, settings, forwarded, hops, expected
):
    settings.INTERLAYER_TRUSTED_PROXY_HOPS = hops
    request = rf.get("/", HTTP_X_FORWARDED_FOR=forwarded, REMOTE_ADDR="192.0.2.99")

    assert client_ip(request) == expected
