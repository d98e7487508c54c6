"""Storefront endpoints, reached through the app proxy (https://{shop}/apps/interlayer/...).

They never load the embedding model: recommendations come from stored vectors and the
index this process already holds.
"""

from __future__ import annotations

import functools
import logging
import re
from collections.abc import Callable
from decimal import Decimal
from typing import Any
from urllib.parse import parse_qsl

from django import db
from django.conf import settings
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect, JsonResponse
from django.urls import get_resolver
from django.views.decorators.http import require_GET, require_POST

from recommender.exchange import click_journal, clicks, impressions, rules
from recommender.ranking import live_index
from recommender.ranking.network import network_state
from recommender.web.widget import active_store, format_price, widget_payload
from stores import auth
from stores.models import Store

log = logging.getLogger(__name__)

# The shopper's language as the theme gives it (request.locale.iso_code: "fr", "pt-BR").
_LOCALE = re.compile(r"\A[a-z]{2,3}(-[A-Za-z]{2,4})?\Z")
_CURRENCY = re.compile(r"\A[A-Z]{3}\Z")


def warm_up() -> None:
    """What a web process's first storefront requests would otherwise pay for, paid as it
    starts (about 0.5 s here, more on a busy machine): the URL configuration, the crawler
    list's patterns, the default language's money formats, the index with its lexical
    rows and the network's state; and it replays the click journals of processes that
    died on this machine (exchange.click_journal). A database or index that is not there
    yet is logged and left to the first request, and the process starts anyway; the
    connections opened are closed, so a server that forks after loading the app (gunicorn
    --preload) shares none of them."""
    get_resolver().url_patterns  # noqa: B018 -- importing the URL configuration
    rules.warm_up()
    format_price(Decimal(1), "USD")  # Babel loads a language's data once
    try:
        live_index.warm_up()
        network_state()
        rules.visitor_hashes(ip="", user_agent="")  # this period's salts, read once
        # The clicks a process that died here journaled (gunicorn starts this one in its
        # place): inserted now, settled by the next round or the sweep.
        click_journal.recover_orphans()
    except Exception:
        log.exception("warming up the storefront failed; the first request will load it")
    finally:
        db.connections.close_all()


class ProxyRequest(HttpRequest):
    """A request Shopify's app proxy signed, for an active store."""

    store: Store
    # Its query, parsed once into plain strings (the last of a repeated name): cheaper
    # than request.GET's QueryDict on the storefront's hottest endpoints.
    query: dict[str, str]


def app_proxy(view: Callable[..., HttpResponse]) -> Callable[..., HttpResponse]:
    """The app-proxy signature checked, the store active, ``request.store`` set; else 401
    (bad signature) or 404 (a shop we do not serve)."""

    @functools.wraps(view)
    def wrapper(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
        try:
            shop = auth.verify_proxy_request(request)
        except auth.AuthError as error:
            return JsonResponse({"error": error.message}, status=error.status)
        store = active_store(shop)
        if store is None:
            return JsonResponse({"error": "unknown shop"}, status=404)
        request.store = store
        request.query = dict(
            parse_qsl(request.META.get("QUERY_STRING", ""), keep_blank_values=True)
        )
        return view(request, *args, **kwargs)

    return wrapper


@require_GET
@app_proxy
def recommendations(request: ProxyRequest) -> JsonResponse:
    try:
        product_id = int(request.query["product_id"]) if request.query.get("product_id") else None
    except ValueError:
        return JsonResponse({"error": "invalid product id"}, status=400)
    visitor = rules.visitor(**_shopper(request))
    locale = request.query.get("locale", "")
    locale = locale if _LOCALE.match(locale) else "en"
    currency = request.query.get("currency", "")  # the storefront's (Shopify Markets)
    currency = currency if _CURRENCY.match(currency) else ""
    payload = widget_payload(request.store, product_id=product_id, visitor=visitor,
                             locale=locale, shopper_currency=currency)  # fmt: skip
    response = JsonResponse(payload)
    # Per shopper (click tokens inside): the browser may reuse it briefly, shared caches not.
    response["Cache-Control"] = "private, max-age=60"
    return response


def _shopper(request: HttpRequest) -> dict[str, str]:
    """Who is asking, as the exchange's rules see a shopper."""
    return {"ip": auth.client_ip(request), "user_agent": request.META.get("HTTP_USER_AGENT", "")}


@require_GET
@app_proxy
def click(request: ProxyRequest) -> HttpResponse:
    meta = request.META
    mode, dest = meta.get("HTTP_SEC_FETCH_MODE", "")[:40], meta.get("HTTP_SEC_FETCH_DEST", "")[:40]
    purpose = (meta.get("HTTP_SEC_PURPOSE", "") or meta.get("HTTP_PURPOSE", ""))[:40]
    judged = settings.RECOMMENDER_CLICK_FETCH_METADATA
    if judged and rules.fetched_ahead(purpose=purpose):
        # Not redirected, and not stored for the browser to reuse: the shopper's own click,
        # if it comes, reaches us and is the one recorded.
        log.info("click refused: fetched ahead purpose=%r", purpose)
        response = HttpResponse(
            "Follow this link to open it.", status=400, content_type="text/plain"
        )
        response["Cache-Control"] = "no-store"
        return response
    # Requested in the background or into a frame (a page's script; or a service worker
    # passing the shopper's click on, which is why this redirects): sent on, recorded not.
    # Logged with what the browser said, so an operator sees it if a proxy ever changed
    # these headers on real clicks.
    record = not (judged and rules.not_a_navigation(mode=mode, dest=dest))
    if not record:
        log.info("click not recorded: not a navigation mode=%r dest=%r", mode, dest)
    token = request.query.get("t", "")[:2000]
    outcome = clicks.follow_click(
        host=request.store, raw_token=token, record=record, **_shopper(request)
    )
    if outcome.location is None:
        return HttpResponse("This link is not valid.", status=400, content_type="text/plain")
    redirect = HttpResponseRedirect if outcome.click_id is None else _RedirectThenSettle
    response = redirect(outcome.location)
    response["Cache-Control"] = "no-store"
    return response


class _RedirectThenSettle(HttpResponseRedirect):
    """A recorded click's redirect. The click is already written; whether it bills is
    settled once the server has sent this (it closes the response then), so the shopper
    never waits on the rules, the locks or the ledger."""

    def close(self) -> None:
        try:
            clicks.settle_after_response()
        finally:
            super().close()


@require_POST
@app_proxy
def impression(request: ProxyRequest) -> HttpResponse:
    raw = request.body[:4000].decode("utf-8", errors="replace")
    outcome = impressions.record_impression(host=request.store, raw=raw, **_shopper(request))
    return JsonResponse({"result": outcome}, status=400 if outcome == "invalid" else 202)
