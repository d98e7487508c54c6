"""Install, OAuth and embedded-admin entry points. Views verify, call one service, answer."""

from __future__ import annotations

import logging

from django.conf import settings
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect, JsonResponse
from django.shortcuts import render
from django.urls import reverse
from django.utils.http import url_has_allowed_host_and_scheme
from django.views.decorators.http import require_GET

from stores import auth, hooks, services, shopify, webhooks
from stores.models import Store

log = logging.getLogger(__name__)


def embedded_app_url(shop_domain: str) -> str:
    """Where the merchant lands after an install: the app inside their admin."""
    return f"https://{shop_domain}/admin/apps/{settings.SHOPIFY_APP_HANDLE}"


def _error_page(request: HttpRequest, message: str, status: int, shop: str | None = None):
    response = render(request, "stores/error.html", {"message": message}, status=status)
    response["Content-Security-Policy"] = auth.page_csp(shop)
    return response


def _rejection_response(rejection: auth.Rejection) -> HttpResponse:
    response = HttpResponse(rejection.body or "Unauthorized", status=rejection.status)
    for name, value in rejection.headers.items():
        response[name] = value
    return response


@require_GET
def app_home(request: HttpRequest) -> HttpResponse:
    """The application_url: an install link, or the embedded app loading in the admin."""
    if "hmac" in request.GET and "id_token" not in request.GET:
        return _install_link(request)
    if not request.GET:
        response = render(request, "stores/landing.html")
        response["Content-Security-Policy"] = auth.page_csp(None)
        return response
    verified = auth.verify_embedded_request(request, patch_path=reverse("stores:session-token"))
    if isinstance(verified, auth.Rejection):
        return _rejection_response(verified)
    shop = verified.shop_domain
    store = Store.objects.filter(shop_domain=shop).first()
    if services.needs_token_exchange(store):
        try:
            store = services.exchange_session_token(shop_domain=shop, id_token=verified.id_token)
        except auth.AuthError as error:
            return _error_page(request, error.message, error.status, shop)
        except shopify.ShopifyAuthError:
            return _error_page(request, "Shopify did not accept this session.", 401, shop)
        except shopify.ShopifyError as error:
            log.warning("token exchange failed shop=%s detail=%s", shop, error.detail)
            return _error_page(request, "Shopify is not reachable right now.", 503, shop)
    response = hooks.home_page()(request, store)
    response["Content-Security-Policy"] = auth.page_csp(shop)
    return response


@require_GET
def privacy_policy(request: HttpRequest) -> HttpResponse:
    """The privacy policy the App Store listing links to."""
    return _public_page(request, "stores/privacy.html")


@require_GET
def support(request: HttpRequest) -> HttpResponse:
    """The support page the App Store listing links to."""
    return _public_page(request, "stores/support.html")


def _public_page(request: HttpRequest, template: str) -> HttpResponse:
    # Anyone may read these; opened from the app's navigation inside the admin (embedded,
    # with a valid shop) they load App Bridge so the admin keeps the app's title bar and
    # menu, and the admin may frame them.
    shop = auth.valid_shop_domain(request.GET.get("shop"))
    embedded = shop is not None and request.GET.get("embedded") == "1"
    context = {"embedded": embedded, "support_email": settings.INTERLAYER_SUPPORT_EMAIL}
    response = render(request, template, context)
    response["Content-Security-Policy"] = auth.page_csp(shop if embedded else None)
    return response


def _install_link(request: HttpRequest) -> HttpResponse:
    try:
        shop = auth.verify_signed_query(auth.signed_query(request))
    except auth.AuthError as error:
        return _error_page(request, error.message, error.status)
    store = Store.objects.filter(shop_domain=shop, status=Store.Status.ACTIVE).first()
    if store is not None and store.access_token:
        return HttpResponseRedirect(embedded_app_url(shop))
    return HttpResponseRedirect(services.begin_authorization(shop_domain=shop))


@require_GET
def oauth_callback(request: HttpRequest) -> HttpResponse:
    try:
        store = services.complete_authorization(params=auth.signed_query(request))
    except auth.AuthError as error:
        return _error_page(request, error.message, error.status)
    except shopify.ShopifyThrottled:
        return _error_page(request, "Shopify is busy; please install again in a minute.", 503)
    except shopify.ShopifyAuthError:
        return _error_page(request, "Shopify refused the install; please try again.", 403)
    except shopify.ShopifyError as error:
        log.warning("code exchange failed detail=%s", error.detail)
        return _error_page(request, "Shopify is not reachable; please install again.", 502)
    return HttpResponseRedirect(embedded_app_url(store.shop_domain))


@require_GET
def session_token_bounce(request: HttpRequest) -> HttpResponse:
    """The bounce page: App Bridge fetches a fresh ID token and reloads the original URL."""
    shop = auth.valid_shop_domain(request.GET.get("shop"))
    # Exactly one: the check would read the last of several, App Bridge reloads the first.
    reloads = request.GET.getlist("shopify-reload")
    if shop is None or len(reloads) != 1 or not _is_local_path(reloads[0]):
        return HttpResponse("Bad request.", status=400)
    response = render(request, "stores/session_token.html")
    response["Content-Security-Policy"] = auth.page_csp(shop)
    return response


def _is_local_path(value: str) -> bool:
    """A path on this host, as a browser reads it: App Bridge reloads ``shopify-reload``
    with a fresh ID token appended, so a value a browser resolves to another host
    (``/\\evil.com``, ``/<tab>/evil.com``) would hand that host the merchant's session."""
    return value.startswith("/") and url_has_allowed_host_and_scheme(value, allowed_hosts=None)


@require_GET
@auth.embedded_api
def session_state(request: auth.EmbeddedRequest) -> JsonResponse:
    """Who the embedded session is (the diagnostics URLconf; not routed in production)."""
    store = request.store
    return JsonResponse(
        {
            "shop": store.shop_domain,
            "status": store.status,
            "name": store.name,
            "primary_domain": store.primary_domain,
            "currency": store.currency,
            "plan": store.plan_name,
        }
    )


def webhook(request: HttpRequest) -> HttpResponse:
    """Every webhook topic arrives here (shopify.app.toml); HMAC first, work later."""
    try:
        received = webhooks.receive(
            method=request.method or "",
            headers=dict(request.headers.items()),
            url=request.build_absolute_uri(),
            body=_bounded_body(request),
        )
    except webhooks.WebhookRejected as rejected:
        return JsonResponse({"error": rejected.message}, status=rejected.status)
    return JsonResponse({"ok": True, "duplicate": received.duplicate})


def _bounded_body(request: HttpRequest) -> bytes:
    """The raw body, read no further than the webhook limit (+1 byte to detect excess)."""
    try:
        declared = int(request.META.get("CONTENT_LENGTH") or 0)
    except ValueError:  # read as Django reads it: no length, no body
        declared = 0
    if declared > webhooks.MAX_WEBHOOK_BYTES:
        return b"x" * (webhooks.MAX_WEBHOOK_BYTES + 1)
    return request.read(webhooks.MAX_WEBHOOK_BYTES + 1)
