"""What the storefront widget receives: its style, its items and, for partner items,
signed click tokens bound to one signed impression."""

from __future__ import annotations

import secrets
from decimal import Decimal
from functools import lru_cache
from typing import NotRequired, TypedDict
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from babel.core import Locale, UnknownLocaleError
from babel.numbers import format_currency

from recommender import runtime
from recommender.exchange import tokens
from recommender.exchange.rules import Visitor
from recommender.ranking import learning
from recommender.ranking.recommendations import (
    recommendations_for,
    viewed_product,
    widget_settings_of,
)
from stores.models import Store


class WidgetStyle(TypedDict):
    title: str
    accent_color: str
    text_color: str
    background_color: str


class WidgetItem(TypedDict):
    slot: str  # "partner" or "own"
    title: str
    image_url: str  # at the widget's display size (IMAGE_PX), "" when the product has none
    image_srcset: str  # the same image at 1x and 2x
    price: str
    store_name: str
    # Own products: a plain, free link the widget builds under the shopper's storefront root
    # (/fr/products/<handle>); the product's onlineStoreUrl is the primary domain in the
    # default language, which would move a shopper off their language or market domain.
    handle: NotRequired[str]
    # ... and its URL as before, for a script a storefront still has from an earlier release
    # of the theme extension (it ships on its own: `shopify app deploy`).
    url: NotRequired[str]
    token: NotRequired[str]  # partner products: the signed click token


# The widget shows each product image in a 170 x 170 px box (interlayer.js).
IMAGE_PX = 170


class WidgetPayload(TypedDict, total=False):
    title: str
    accent_color: str
    text_color: str
    background_color: str
    items: list[WidgetItem]
    impression: str


class _ShownItem(TypedDict):
    item: dict[str, str]  # the WidgetItem but its price, written in each shopper's language
    price: tuple[Decimal, str]  # amount, currency
    target: tuple[int, int] | None  # (store pk, Shopify product id) of a partner item


class _Shown(TypedDict):
    items: list[_ShownItem]
    style: WidgetStyle | None
    cluster: str  # the kind of page, for the learner


def active_store(shop_domain: str) -> Store | None:
    return runtime.active_stores.get_or_compute(
        shop_domain,
        lambda: Store.objects.filter(shop_domain=shop_domain, status=Store.Status.ACTIVE).first(),
    )


def widget_payload(
    host: Store,
    *,
    product_id: int | None,
    visitor: Visitor,
    locale: str = "en",
    shopper_currency: str = "",
) -> WidgetPayload:
    """The JSON the widget renders for ``visitor``.

    What to show is computed once per page and process within the freshness window, for
    shoppers of every language; the prices are written in the shopper's, and the tokens
    and the impression are minted for every response, bound to this page view and this
    visitor."""
    shown = runtime.widget_contents.get_or_compute(
        (host.pk, product_id), lambda: _shown_items(host, product_id)
    )
    if not shown["items"] or shown["style"] is None:
        return {"items": []}
    locale = known_locale(locale)
    impression_id = secrets.token_hex(12)
    rendered: list[WidgetItem] = []
    for entry in shown["items"]:
        amount, currency = entry["price"]
        price = format_price(amount, currency, locale=locale, shopper_currency=shopper_currency)
        item = WidgetItem(**entry["item"], price=price)
        if entry["target"] is not None:
            store_id, shopify_id = entry["target"]
            item["token"] = tokens.issue_click_token(
                impression_id=impression_id,
                source_store_id=host.pk,
                target_store_id=store_id,
                target_product_id=shopify_id,
            )
        rendered.append(item)
    targets = [entry["target"] for entry in shown["items"] if entry["target"] is not None]
    return {
        **shown["style"],
        "items": rendered,
        "impression": tokens.sign_impression(
            store_id=host.pk, impression_id=impression_id, items=len(rendered),
            partner_items=len(targets), visitor=visitor, page_cluster=shown["cluster"],
            shown=targets,
        ),
    }  # fmt: skip


def _shown_items(host: Store, product_id: int | None) -> _Shown:
    widget = runtime.widget_settings.get_or_compute(host.pk, lambda: widget_settings_of(host))
    if not widget.enabled or host.status != Store.Status.ACTIVE:
        return {"items": [], "style": None, "cluster": ""}
    viewed = None
    if product_id is not None:
        viewed = viewed_product(host, product_id)
        if viewed is None:  # not this store's product: nothing to relate to
            return {"items": [], "style": None, "cluster": ""}
    items: list[_ShownItem] = []
    for rec in recommendations_for(host, product_id=product_id, widget=widget, viewed=viewed):
        partner = rec.slot == "partner"
        item = {
            "slot": rec.slot,
            "title": rec.product.title,
            "image_url": sized_image_url(rec.product.image_url, IMAGE_PX),
            "image_srcset": image_srcset(rec.product.image_url, IMAGE_PX),
            "store_name": rec.product.store.name if partner else "",
        }
        if not partner:
            item["handle"] = rec.product.handle
            item["url"] = rec.product.url
        target = (rec.product.store_id, rec.product.shopify_id) if partner else None
        price = (rec.product.price_min, rec.product.currency)
        items.append({"item": item, "price": price, "target": target})
    style: WidgetStyle = {
        "title": widget.title,
        "accent_color": widget.accent_color,
        "text_color": widget.text_color,
        "background_color": widget.background_color,
    }
    return {"items": items, "style": style, "cluster": learning.page_cluster(host, viewed)}


@lru_cache(maxsize=1024)
def known_locale(locale: str) -> str:
    """The shopper's language as CLDR knows it ("pt-BR" is "pt_BR"), else "en": prices are
    then kept per language there is, not per string a request may send."""
    try:
        return str(Locale.parse(locale.replace("-", "_")))
    except (UnknownLocaleError, ValueError):
        return "en"


# Prices and image URLs are kept per value: the same partner items fill page after page.
@lru_cache(maxsize=16_384)
def format_price(
    amount: Decimal, currency: str, *, locale: str = "en", shopper_currency: str = ""
) -> str:
    """The price in the product's store's currency, written the way the shopper's language
    writes money (CLDR data through Babel: "¥1,200", "12,99 €", "CA$12.99"). Where the
    shopper shops in another currency (``shopper_currency``, the storefront's: Shopify
    Markets), with the currency's code ("USD 25.00"): English writes US dollars "$25.00",
    which a Canadian or Australian shopper reads as their own dollars."""
    currency = currency or "USD"
    code_first = bool(shopper_currency) and shopper_currency != currency
    pattern = {"format": _CODE_FIRST} if code_first else {}
    try:
        return format_currency(amount, currency, locale=locale.replace("-", "_"), **pattern)
    except (UnknownLocaleError, ValueError):
        return format_currency(amount, currency, locale="en", **pattern)


_CODE_FIRST = "\u00a4\u00a4\u00a0#,##0.00"  # the ISO code, a no-break space, the amount


@lru_cache(maxsize=16_384)
def sized_image_url(url: str, px: int) -> str:
    """A Shopify CDN image URL for a ``px`` x ``px`` box, cropped to its centre.

    Shopify's CDN resizes any product image from ``width``, ``height`` and ``crop`` query
    parameters; the Admin API's ``Image.url(transform: {maxWidth, maxHeight, crop})`` and
    Liquid's ``image_url`` answer with exactly such URLs. We build them here from the
    original URL the catalog sync stores, rather than asking the Admin API for a transformed
    URL at sync time, so that the display size (and 2x) is decided where the widget is
    rendered: changing it needs no re-sync of every partner's catalog and no second column.
    https://shopify.dev/docs/api/liquid/filters/image_url"""
    if not url:
        return ""
    parts = urlsplit(url)
    query = [(k, v) for k, v in parse_qsl(parts.query) if k not in {"width", "height", "crop"}]
    query += [("width", str(px)), ("height", str(px)), ("crop", "center")]
    return urlunsplit(parts._replace(query=urlencode(query)))


def image_srcset(url: str, px: int) -> str:
    """``srcset`` for an image shown at ``px`` CSS pixels: the 1x and 2x (high-density) files."""
    if not url:
        return ""
    return f"{sized_image_url(url, px)} 1x, {sized_image_url(url, 2 * px)} 2x"
