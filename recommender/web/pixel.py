"""The endpoint Interlayer's web pixel posts to (extensions/interlayer-pixel).

Web pixels run in Shopify's sandbox (a web worker on the storefront's origin), so the
request is cross-origin and carries no cookies: it is authenticated by what it contains,
the pixel key of its shop and, for orders, the signed click reference
(recommender.exchange.attribution). The body is sent as ``text/plain`` so the browser needs
no CORS preflight; the answer allows any origin, since it holds nothing but the outcome.
https://shopify.dev/docs/api/web-pixels-api
"""

from __future__ import annotations

import json
from typing import Any

from django.http import HttpRequest, HttpResponse, JsonResponse
from django.views.decorators.csrf import csrf_exempt

from interlayer.text import storable
from recommender.exchange import attribution

MAX_PIXEL_BYTES = 4 * 1024
MAX_REFERENCE_CHARS = 300  # the pixel keeps no longer reference (extensions/interlayer-pixel)
_CORS = {"Access-Control-Allow-Origin": "*", "Access-Control-Allow-Headers": "Content-Type"}


def _earlier(body: dict[str, Any]) -> list[str]:
    """The references the browser landed with before its latest (``earlier``, newest
    first); what is not a list of strings a column holds is left out."""
    earlier = body.get("earlier")
    if not isinstance(earlier, list):
        return []
    return [
        ref for ref in earlier[: attribution.MAX_REFERENCES - 1]
        if isinstance(ref, str) and storable(ref) and len(ref) <= MAX_REFERENCE_CHARS
    ]  # fmt: skip


def _answer(payload: dict[str, Any], status: int) -> JsonResponse:
    return JsonResponse(payload, status=status, headers=_CORS)


@csrf_exempt
def pixel_events(request: HttpRequest) -> HttpResponse:
    if request.method == "OPTIONS":
        return HttpResponse(status=204, headers={**_CORS, "Access-Control-Allow-Methods": "POST"})
    if request.method != "POST":
        return _answer({"error": "send events with POST"}, 405)
    if len(request.body) > MAX_PIXEL_BYTES:
        return _answer({"error": "request too large"}, 413)
    try:
        body = json.loads(request.body)
    except (ValueError, RecursionError):  # the parser's answer to nesting too deep
        return _answer({"error": "invalid JSON"}, 400)
    # Anyone can post here: text no column holds (a NUL, a lone surrogate, which is no
    # UTF-8) reaches neither the key's signer nor a query.
    if not isinstance(body, dict) or not all(
        isinstance(body.get(k), str) and storable(body[k]) for k in ("key", "shop", "event", "ref")
    ):
        return _answer({"error": "send key, shop, event and ref"}, 400)
    try:
        store = attribution.pixel_store(key=body["key"], shop=body["shop"])
        if body["event"] == "landing":
            result = attribution.record_landing(store=store, reference=body["ref"])
        elif body["event"] == "checkout_completed":
            order = body.get("order") if isinstance(body.get("order"), dict) else {}
            reported = attribution.reported_order(
                order_id=order.get("id"), total=order.get("total"),
                currency=order.get("currency"), lines=order.get("lines"),
            )  # fmt: skip
            result = attribution.record_order(
                store=store, reference=body["ref"], order=reported, earlier=_earlier(body)
            )
        else:
            return _answer({"error": "unknown event"}, 400)
    except attribution.AttributionRefused as refused:
        return _answer({"error": refused.message}, refused.status)
    return _answer({"result": result}, 202)
