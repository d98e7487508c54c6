"""The merchant's settings page inside the Shopify admin, and the JSON API it calls.

The page itself is verified by its ``id_token`` (stores.views.app_home renders it through
the home-page hook); every API call
carries a fresh ID token as ``Authorization: Bearer`` (App Bridge adds it), so there are
no cookies and a cross-site form cannot act for a merchant. The shop is always the
token's: no request parameter can name another store.
"""

from __future__ import annotations

import json
from typing import Any, TypedDict

from django.http import HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import render
from django.utils import dateformat, timezone
from django.views.decorators.http import require_GET, require_POST

from interlayer.text import storable
from recommender import controls
from recommender.catalog import sync
from recommender.exchange import attribution, ledger, review, rules
from recommender.models import SettingsChange
from recommender.ranking.recommendations import recommendations_for
from recommender.web import setup_guide, stats
from recommender.web.forms import WidgetSettingsForm
from stores import services as store_services
from stores.auth import EmbeddedRequest, embedded_api
from stores.models import CustomerDataRequest, Store

MAX_JSON_BYTES = 512 * 1024
MAX_OPT_OUT_IDS = 500


class OverviewPayload(TypedDict):
    catalog: stats.CatalogOverview
    app_embed: dict[str, Any]
    widget_enabled: bool
    balance: float
    balance_parts: ledger.BalanceParts
    # Too low to pay for one click: the store's products are shown on no partner store
    # until it earns again (its widget keeps showing partners and earning).
    balance_exhausted: bool
    spend_per_click: float
    held_for_review: float
    under_review: bool


def settings_page(request: HttpRequest, store: Store) -> HttpResponse:
    widget = controls.widget_settings_for(store)
    return render(
        request,
        "recommender/settings.html",
        {
            "store": store,
            # Every time on the page is the shop's, as its figures are counted.
            "time_zone": store.zone.key,
            "widget": widget,
            "blocked": list(widget.blocked_stores.values_list("shop_domain", flat=True)),
            "excluded": stats.excluded_category_chips(widget.excluded_categories),
            "rules": rules.RULES_IN_WORDS,
            "attribution_rules": attribution.RULES_IN_WORDS,
            # In the shop's time zone, as its figures are counted.
            "changes": [
                (
                    dateformat.format(
                        timezone.localtime(change.created_at, store.zone), "j M Y, H:i T"
                    ),
                    stats.change_in_words(change.changes),
                )
                for change in SettingsChange.objects.filter(store=store)[:5]
            ],
            "data_requests": [
                (data_request, _readable(data_request.held))
                for data_request in CustomerDataRequest.objects.filter(store=store)
            ],
            "data_request_days": store_services.DATA_REQUEST_RETENTION.days,
        },
    )


def _readable(held: list[dict[str, Any]]) -> list[tuple[str, list[tuple[str, Any]]]]:
    """A data request's records as the page lists them: each order's id, then its fields
    as (words, value)."""
    return [
        (
            str(record.get("order_id", "")),
            [(key.replace("_", " "), value) for key, value in record.items() if key != "order_id"],
        )
        for record in held
    ]


def _json_body(request: HttpRequest) -> dict[str, Any] | JsonResponse:
    if len(request.body) > MAX_JSON_BYTES:
        return JsonResponse({"error": "request too large"}, status=413)
    if request.content_type != "application/json":
        return JsonResponse({"error": "send JSON"}, status=415)
    try:
        body = json.loads(request.body or b"{}")
    except (ValueError, RecursionError):  # the parser's answer to nesting too deep
        return JsonResponse({"error": "invalid JSON"}, status=400)
    return (
        body
        if isinstance(body, dict)
        else JsonResponse({"error": "expected an object"}, status=400)
    )


@require_GET
@embedded_api
def overview(request: EmbeddedRequest) -> JsonResponse:
    store = request.store
    balance = ledger.balance(store)
    payload: OverviewPayload = {
        "catalog": stats.catalog_overview(store),
        "app_embed": store_services.app_embed_status(store),
        # The theme can load the widget while the merchant has it switched off here.
        "widget_enabled": controls.widget_settings_for(store).enabled,
        "balance": float(balance),
        "balance_parts": ledger.balance_parts(store),
        "balance_exhausted": bool(
            ledger.exhausted_store_ids([store.pk], known={store.pk: balance})
        ),
        "spend_per_click": float(rules.SPEND_PER_CLICK),
        "held_for_review": float(ledger.held_earnings(store)),
        "under_review": review.under_review(store.pk),
    }
    return JsonResponse(payload)


@require_GET
@embedded_api
def setup(request: EmbeddedRequest) -> JsonResponse:
    """The set-up guide; ``?refresh=1`` reads the theme again (the merchant is back from
    the theme editor) instead of the briefly cached read the overview shares."""
    fresh = request.GET.get("refresh") == "1"
    return JsonResponse(setup_guide.setup_guide(request.store, fresh=fresh))


@require_GET
@embedded_api
def store_stats(request: EmbeddedRequest) -> JsonResponse:
    try:
        days = int(request.GET.get("days", "30"))
    except ValueError:
        return JsonResponse({"error": "days must be a number"}, status=400)
    if not 1 <= days <= stats.MAX_DAYS:
        return JsonResponse({"error": f"days must be between 1 and {stats.MAX_DAYS}"}, status=400)
    return JsonResponse(stats.store_stats(request.store, days=days))


@require_POST
@embedded_api
def save_settings(request: EmbeddedRequest) -> JsonResponse:
    body = _json_body(request)
    if isinstance(body, JsonResponse):
        return body
    form = WidgetSettingsForm(
        body,
        store=request.store,
        known_categories=stats.known_categories(),
        saved=controls.widget_settings_for(request.store),
    )
    if not form.is_valid():
        return JsonResponse({"errors": form.errors.get_json_data()}, status=400)
    widget = controls.update_widget_settings(
        store=request.store, actor=request.actor, cleaned=form.cleaned_data
    )
    return JsonResponse({"ok": True, "updated_at": widget.updated_at.isoformat()})


def _search_text(request: HttpRequest) -> str:
    # No name holds a NUL, and PostgreSQL refuses one in a query (a 500, not "no match").
    return request.GET.get("q", "")[:100].replace("\x00", "")


@require_GET
@embedded_api
def partners(request: EmbeddedRequest) -> JsonResponse:
    return JsonResponse({"partners": stats.partner_search(request.store, _search_text(request))})


@require_GET
@embedded_api
def categories(request: EmbeddedRequest) -> JsonResponse:
    return JsonResponse({"categories": stats.category_search(_search_text(request))})


@require_GET
@embedded_api
def products(request: EmbeddedRequest) -> JsonResponse:
    # ?opted_out=1: every product kept off the network (what the resource picker starts
    # from), up to what one opt-out request takes; ?eligible=1: the preview's search.
    opted_out = request.GET.get("opted_out") == "1"
    products = stats.product_search(
        request.store, _search_text(request), opted_out_only=opted_out,
        eligible_only=request.GET.get("eligible") == "1",
        limit=MAX_OPT_OUT_IDS if opted_out else 30,
    )  # fmt: skip
    return JsonResponse({"products": products})


@require_POST
@embedded_api
def opt_out(request: EmbeddedRequest) -> JsonResponse:
    body = _json_body(request)
    if isinstance(body, JsonResponse):
        return body
    ids = body.get("product_ids")
    if (
        not isinstance(ids, list)
        or not 0 < len(ids) <= MAX_OPT_OUT_IDS
        # Shopify's ids are positive and fit a BIGINT (a larger one was a 500 on storing).
        or not all(isinstance(i, int) and not isinstance(i, bool) and 0 < i < 2**63 for i in ids)
        or not isinstance(body.get("opted_out"), bool)
    ):
        return JsonResponse(
            {"error": f"send product_ids (1-{MAX_OPT_OUT_IDS} numbers) and opted_out (true/false)"},
            status=400,
        )
    # The resource picker's titles, to list products not synced yet by name meanwhile.
    titles = body.get("titles", {})
    if not isinstance(titles, dict) or not all(
        isinstance(title, str) and len(title) <= 500 and storable(title)
        for title in titles.values()
    ):
        return JsonResponse({"error": "titles: product id -> title (text)"}, status=400)
    named = {i: titles.get(str(i), "").strip() for i in ids}
    try:
        done = controls.set_products_opted_out(
            store=request.store, actor=request.actor, shopify_ids=ids,
            opted_out=body["opted_out"], titles=named,
        )  # fmt: skip
    except controls.TooManyWaiting as limit:
        return JsonResponse(
            {"error": f"Up to {limit} products can be waiting for your catalog to sync. "
                      "Choose the rest once it has synced."},
            status=400,
        )  # fmt: skip
    return JsonResponse({"changed": done.changed, "not_synced": done.not_synced})


@require_GET
@embedded_api
def preview(request: EmbeddedRequest) -> JsonResponse:
    raw = request.GET.get("product_id", "")
    try:
        product_id = int(raw) if raw else None
    except ValueError:
        return JsonResponse({"error": "invalid product id"}, status=400)
    items = recommendations_for(request.store, product_id=product_id)
    return JsonResponse({"items": [item.as_dict() for item in items]})


@require_POST
@embedded_api
def sync_now(request: EmbeddedRequest) -> JsonResponse:
    return JsonResponse({"queued": sync.request_sync(request.store)})
