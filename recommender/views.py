"""Storefront endpoints, reached through the app proxy (https://{shop}/apps/interlayer/...).

They never load the embedding model: recommendations come from stored vectors and the
index this process already holds.
"""

from __future__ import annotations

from django.http import HttpRequest, HttpResponse, HttpResponseRedirect, JsonResponse
from django.views.decorators.http import require_GET, require_POST

from recommender import storefront
from stores import auth
from stores.models import Store


def _proxied_store(request: HttpRequest) -> Store | JsonResponse:
    try:
        shop = auth.verify_proxy_request(request)
    except auth.AuthError as error:
        return JsonResponse({"error": error.message}, status=error.status)
    store = storefront.active_store(shop)
    if store is None:
        return JsonResponse({"error": "unknown shop"}, status=404)
    return store


@require_GET
def recommendations(request: HttpRequest) -> JsonResponse:
    store = _proxied_store(request)
    if isinstance(store, JsonResponse):
        return store
    try:
        product_id = int(request.GET["product_id"]) if request.GET.get("product_id") else None
    except ValueError:
        return JsonResponse({"error": "invalid product id"}, status=400)
    payload = storefront.widget_payload(
        store, product_id=product_id, page_type=request.GET.get("page_type", "")[:30]
    )
    response = JsonResponse(payload)
    # Per shopper (click tokens inside): the browser may reuse it briefly, shared caches not.
    response["Cache-Control"] = "private, max-age=60"
    return response


@require_GET
def click(request: HttpRequest) -> HttpResponse:
    store = _proxied_store(request)
    if isinstance(store, JsonResponse):
        return store
    outcome = storefront.follow_click(
        host=store,
        raw_token=request.GET.get("t", "")[:2000],
        ip=auth.client_ip(request),
        user_agent=request.headers.get("User-Agent", ""),
    )
    if outcome.location is None:
        return HttpResponse("This link is not valid.", status=400, content_type="text/plain")
    response = HttpResponseRedirect(outcome.location)
    response["Cache-Control"] = "no-store"
    return response


@require_POST
def impression(request: HttpRequest) -> HttpResponse:
    store = _proxied_store(request)
    if isinstance(store, JsonResponse):
        return store
    outcome = storefront.record_impression(
        host=store,
        raw=request.body[:4000].decode("utf-8", errors="replace"),
        ip=auth.client_ip(request),
        user_agent=request.headers.get("User-Agent", ""),
    )
    return JsonResponse({"result": outcome}, status=400 if outcome == "invalid" else 202)


def ping(request: HttpRequest) -> JsonResponse:
    """A trivial JSON endpoint: the baseline the storefront benchmark compares against."""
    return JsonResponse({"ok": True})
