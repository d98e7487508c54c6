"""Verifying who is talking to us: shop domains, signed install links, ID tokens.

The checks are Shopify's packages' (ShopifyAPI for the shop domain and the query HMAC,
shopifyapp for ID tokens); this module adds what they leave to the app: a strict timestamp
window on install links, and ``iss``/``dest`` agreement and shop validation on ID tokens.
"""

from __future__ import annotations

import functools
import re
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlparse

import shopify
from django.conf import settings
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.urls import reverse
from shopify.utils.shop_url import sanitize_shop_domain

from interlayer.logs import bind_shop
from stores import shopify as shopify_client
from stores.models import Store

# The one definition of a valid shop value (PRODUCT.md): checked before a shop is used.
SHOP_DOMAIN_RE = re.compile(r"\A[a-z0-9][a-z0-9-]*[a-z0-9]\.myshopify\.com\Z")
# What Shopify's signatures look like. Anything else is refused before a verifier sees it:
# the verifiers compare strings in constant time, and Python refuses to compare non-ASCII
# ones (an exception, and on a debug page the secret and the expected HMAC).
HEX_SHA256_RE = re.compile(r"\A[0-9a-f]{64}\Z")  # query HMACs, app-proxy signatures
BASE64_SHA256_RE = re.compile(r"\A[A-Za-z0-9+/]{43}=\Z")  # X-Shopify-Hmac-Sha256
_MAX_SHOP_DOMAIN_LENGTH = 255


class AuthError(Exception):
    """A request failed verification; ``status`` and ``message`` are safe to return."""

    def __init__(self, message: str, *, status: int = 400):
        super().__init__(message)
        self.message = message
        self.status = status


def valid_shop_domain(value: Any) -> str | None:
    """The shop's myshopify domain if ``value`` is exactly one, else None."""
    if not isinstance(value, str) or not value or len(value) > _MAX_SHOP_DOMAIN_LENGTH:
        return None
    return _checked_shop_domain(value)


# Remembered: the shops named on every storefront and webhook request are few.
@functools.lru_cache(maxsize=4096)
def _checked_shop_domain(value: str) -> str | None:
    candidate = value.strip().lower()
    if candidate != value.lower() or not SHOP_DOMAIN_RE.match(candidate):
        return None
    # ShopifyAPI's own check must agree (it rejects ports, paths and user-info tricks).
    if sanitize_shop_domain(candidate) != candidate:
        return None
    return candidate


def require_shop_domain(value: Any) -> str:
    shop = valid_shop_domain(value)
    if shop is None:
        raise AuthError("Invalid shop domain.", status=400)
    return shop


def page_csp(shop_domain: str | None) -> str:
    """The Content-Security-Policy every page the app renders from its templates carries.

    Framing: by the shop's admin alone (``shop_domain``, an embedded page), else by no one.
    Scripts: from this app and the hosts App Bridge and Polaris load from alone; no inline
    script, handler or eval (the pages have none). The pages write other merchants' names
    and titles as text, never as markup; were markup ever to get onto one, it could not run.
    """
    if shop_domain:
        framers = " ".join([f"https://{shop_domain}", *settings.SHOPIFY_ADMIN_ORIGINS])
    else:
        framers = "'none'"
    loaded = (settings.SHOPIFY_APP_BRIDGE_URL, settings.SHOPIFY_POLARIS_URL, settings.STATIC_URL)
    hosts = dict.fromkeys(f"{url.scheme}://{url.netloc}" for url in map(urlparse, loaded)
                          if url.netloc)  # fmt: skip
    scripts = " ".join(["'self'", *hosts])
    return f"frame-ancestors {framers}; script-src {scripts}; object-src 'none'; base-uri 'none';"


def _session_class(secret: str) -> type[shopify.Session]:
    # ShopifyAPI keeps the secret on the class; a subclass per secret lets us verify with
    # the current and the previous secret (rotation) without mutating shared state.
    return type("InterlayerSession", (shopify.Session,), {"secret": secret})


def signed_query(request: HttpRequest) -> dict[str, str]:
    """The query of a request Shopify signed with ``hmac`` (install link, OAuth callback),
    each name once: Shopify signs every parameter once, so a query that names one twice is
    not what it signed, and is refused (401) before anyone picks one of the copies."""
    if any(len(values) > 1 for _, values in request.GET.lists()):
        raise AuthError("Repeated query parameters.", status=401)
    return request.GET.dict()


def verify_signed_query(params: dict[str, str]) -> str:
    """Verify a query Shopify signed with ``hmac`` (install link, OAuth callback).

    Returns the shop domain. https://shopify.dev/docs/apps/build/authentication-authorization/access-tokens/authorization-code-grant#step-1-verify-the-installation-request
    """
    shop = require_shop_domain(params.get("shop"))
    if not params.get("hmac"):
        raise AuthError("Missing HMAC.", status=400)
    if not HEX_SHA256_RE.match(params["hmac"]):
        raise AuthError("HMAC verification failed.", status=401)
    secrets = [settings.SHOPIFY_API_SECRET]
    if settings.SHOPIFY_API_SECRET_OLD:
        secrets.append(settings.SHOPIFY_API_SECRET_OLD)
    if not any(_session_class(secret).validate_hmac(params) for secret in secrets):
        raise AuthError("HMAC verification failed.", status=401)
    try:
        timestamp = int(params.get("timestamp", ""))
        age = abs(time.time() - timestamp)
    except (ValueError, OverflowError):  # not a number, or none a clock can reach
        raise AuthError("Missing or invalid timestamp.", status=400) from None
    if age > settings.SHOPIFY_HMAC_TIMESTAMP_TOLERANCE:
        raise AuthError("Request timestamp is too old.", status=401)
    bind_shop(shop)
    return shop


@dataclass(frozen=True)
class EmbeddedSession:
    """A verified App Bridge ID token and the shop it speaks for."""

    shop_domain: str
    user_id: str | None
    id_token: Any  # shopify_app.IdTokenDetails, exchangeable


@dataclass(frozen=True)
class Rejection:
    """What to answer a request that failed ID-token verification."""

    status: int
    headers: dict[str, str]
    body: str = ""


def request_input(request: HttpRequest) -> dict[str, Any]:
    """The request in the shape shopifyapp's verifiers take, without its body: an ID token
    signs none, and the verifier parses any body as JSON (for its log) before it checks
    the token, where a body nested deep enough is a RecursionError, not a 401."""
    headers = dict(request.headers.items())
    return {
        "method": request.method or "GET",
        "headers": headers,
        "url": request.build_absolute_uri(),
        "body": "",
    }


def verify_embedded_request(
    request: HttpRequest, *, patch_path: str
) -> EmbeddedSession | Rejection:
    """Verify an embedded admin request: a document load (``id_token`` in the query) or a
    fetch (``Authorization: Bearer``). Failed document loads get the bounce page redirect,
    failed fetches 401 with ``X-Shopify-Retry-Invalid-Session-Request: 1``.

    https://shopify.dev/docs/apps/build/authentication-authorization/session-tokens
    """
    result = shopify_client.app().verify_app_home_req(request_input(request), patch_path)
    is_fetch = bool(request.headers.get("Authorization"))
    if not result.ok:
        if result.response.status == 302 and not _patch_redirect_is_safe(request):
            return Rejection(status=400, headers={}, body="Invalid shop domain.")
        return Rejection(status=result.response.status, headers=dict(result.response.headers))
    claims = result.id_token.claims
    shop = _shop_from_claims(claims)
    if shop is None:
        retry = {"X-Shopify-Retry-Invalid-Session-Request": "1"} if is_fetch else {}
        return Rejection(status=401, headers=retry, body="Unauthorized")
    bind_shop(shop)
    return EmbeddedSession(shop_domain=shop, user_id=result.user_id, id_token=result.id_token)


def _patch_redirect_is_safe(request: HttpRequest) -> bool:
    # The bounce page is only for a valid shop; an invalid one gets a plain 400 instead.
    return valid_shop_domain(request.GET.get("shop")) is not None


def _shop_from_claims(claims: dict[str, Any]) -> str | None:
    """``dest`` is the shop; ``iss`` is its admin. Both must name the same valid shop."""
    dest_host = urlparse(str(claims.get("dest", ""))).hostname
    iss = urlparse(str(claims.get("iss", "")))
    if iss.path.rstrip("/") != "/admin" or not dest_host or iss.hostname != dest_host:
        return None
    return valid_shop_domain(dest_host)


RETRY_HEADER = {"X-Shopify-Retry-Invalid-Session-Request": "1"}


class EmbeddedRequest(HttpRequest):
    """A request from the embedded admin page whose ID token was verified."""

    store: Store
    actor: str  # the admin user (the ID token's ``sub``), for the audit trail


def embedded_api(view: Callable[..., HttpResponse]) -> Callable[..., HttpResponse]:
    """For fetch requests from the embedded page: a verified ``Authorization: Bearer`` ID
    token for an installed store, else 401 with the header App Bridge retries on.
    https://shopify.dev/docs/apps/build/authentication-authorization/session-tokens/set-up-session-tokens"""

    @functools.wraps(view)
    def wrapper(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
        if not request.headers.get("Authorization", "").startswith("Bearer "):
            return JsonResponse(
                {"error": "missing session token"}, status=401, headers=RETRY_HEADER
            )
        verified = verify_embedded_request(request, patch_path=reverse("stores:session-token"))
        if isinstance(verified, Rejection):
            return JsonResponse(
                {"error": "invalid session token"}, status=401, headers=RETRY_HEADER
            )
        store = Store.objects.filter(shop_domain=verified.shop_domain).first()
        if store is None or store.status != Store.Status.ACTIVE:
            # Uninstalled, redacted, or waiting for re-authorisation: loading the app page
            # again (a document load) exchanges a fresh token and makes the store active.
            return JsonResponse(
                {"error": "store not installed or needs re-authorisation; reload the app"},
                status=401,
                headers=RETRY_HEADER,
            )
        request.store = store
        request.actor = str(verified.user_id or "")
        return view(request, *args, **kwargs)

    return wrapper


# Every ``signature`` parameter of a raw query string (more than one is refused).
_PROXY_SIGNATURE = re.compile(r"(?:^|&)signature=([^&]*)")


def verify_proxy_request(request: HttpRequest) -> str:
    """An app-proxy request forwarded by Shopify: signature (HMAC-SHA256 of the sorted
    ``k=v`` pairs) and a timestamp within 90 s, checked by shopifyapp. Returns the shop.
    https://shopify.dev/docs/apps/build/online-store/app-proxies/authenticate-app-proxies
    """
    # Verified from the raw query string alone: these are the storefront's hottest
    # endpoints, and the signature covers nothing else (no headers, no body, no host).
    query = request.META.get("QUERY_STRING", "")
    signatures = _PROXY_SIGNATURE.findall(query)
    if len(signatures) != 1 or not HEX_SHA256_RE.match(signatures[0]):
        raise AuthError("Invalid app proxy signature.", status=401)
    result = shopify_client.app().verify_app_proxy_req(
        {"method": "GET", "headers": {}, "url": f"/?{query}", "body": ""}
    )
    if not result.ok:
        raise AuthError("Invalid app proxy signature.", status=401)
    shop = require_shop_domain(f"{result.shop}.myshopify.com")
    bind_shop(shop)
    return shop


def client_ip(request: HttpRequest) -> str:
    """The shopper's address, as the nearest proxy we trust saw it.

    X-Forwarded-For is a list each proxy appends to, and a client can start it with any
    addresses it likes. Only the entries our own proxies added are trustworthy: Shopify's
    app proxy appends the address that connected to it, and each load balancer of ours in
    front of the app appends one more. So the shopper is the entry
    INTERLAYER_TRUSTED_PROXY_HOPS places from the right (1: the app sits directly behind
    Shopify's proxy; 2: behind Shopify and one load balancer of ours). With fewer entries
    than that the request did not come through our proxies, and the connecting address
    is what we know."""
    hops = settings.INTERLAYER_TRUSTED_PROXY_HOPS
    # META rather than request.headers: the storefront's hottest endpoints read two headers,
    # and request.headers copies every one of them.
    forwarded = [part.strip() for part in request.META.get("HTTP_X_FORWARDED_FOR", "").split(",")]
    forwarded = [part for part in forwarded if part]
    if hops > 0 and len(forwarded) >= hops:
        return forwarded[-hops][:64]
    return request.META.get("REMOTE_ADDR", "")
