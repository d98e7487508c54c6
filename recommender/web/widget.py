"""What the storefront widget receives: its style, its items and, for partner items,
signed click tokens bound to one signed impression."""

from __future__ import annotations

import secrets
from decimal import Decimal
from typing import NotRequired, TypedDict

from babel.core import UnknownLocaleError
from babel.numbers import format_currency

from recommender import runtime
from recommender.exchange import tokens
from recommender.exchange.rules import Visitor
from recommender.models import WidgetSettings
from recommender.ranking.recommendations import recommendations_for
from stores.models import Store


class WidgetStyle(TypedDict):
    title: str
    accent_color: str
    text_color: str
    background_color: str


class WidgetItem(TypedDict):
    slot: str  # "partner" or "own"
    title: str
    image_url: str
    price: str
    store_name: str
    url: NotRequired[str]  # own products: a plain, free link
    token: NotRequired[str]  # partner products: the signed click token


class WidgetPayload(TypedDict, total=False):
    title: str
    accent_color: str
    text_color: str
    background_color: str
    items: list[WidgetItem]
    impression: str


class _ShownItem(TypedDict):
    item: WidgetItem
    target: tuple[int, int] | None  # (store pk, Shopify product id) of a partner item


class _Shown(TypedDict):
    items: list[_ShownItem]
    style: WidgetStyle | None


def active_store(shop_domain: str) -> Store | None:
    return runtime.active_stores.get_or_compute(
        shop_domain,
        lambda: Store.objects.filter(shop_domain=shop_domain, status=Store.Status.ACTIVE).first(),
    )


def widget_payload(
    host: Store, *, product_id: int | None, visitor: Visitor, locale: str = "en"
) -> WidgetPayload:
    """The JSON the widget renders for ``visitor``.

    What to show is computed once per page and process within the freshness window; the
    tokens and the impression are minted for every response, bound to this page view and
    this visitor."""
    shown = runtime.widget_contents.get_or_compute(
        (host.pk, product_id, locale), lambda: _shown_items(host, product_id, locale)
    )
    if not shown["items"] or shown["style"] is None:
        return {"items": []}
    impression_id = secrets.token_hex(12)
    rendered: list[WidgetItem] = []
    for entry in shown["items"]:
        item = WidgetItem(**entry["item"])
        if entry["target"] is not None:
            store_id, shopify_id = entry["target"]
            item["token"] = tokens.issue_click_token(
                impression_id=impression_id,
                source_store_id=host.pk,
                target_store_id=store_id,
                target_product_id=shopify_id,
                visitor=visitor,
            )
        rendered.append(item)
    partners = sum(1 for entry in shown["items"] if entry["target"] is not None)
    return {
        **shown["style"],
        "items": rendered,
        "impression": tokens.sign_impression(
            store_id=host.pk, impression_id=impression_id, items=len(rendered),
            partner_items=partners, visitor=visitor,
        ),
    }  # fmt: skip


def _shown_items(host: Store, product_id: int | None, locale: str) -> _Shown:
    widget = WidgetSettings.objects.filter(store=host).first() or WidgetSettings(store=host)
    if not widget.enabled or host.status != Store.Status.ACTIVE:
        return {"items": [], "style": None}
    items: list[_ShownItem] = []
    for rec in recommendations_for(host, product_id=product_id, widget=widget):
        partner = rec.slot == "partner"
        item: WidgetItem = {
            "slot": rec.slot,
            "title": rec.product.title,
            "image_url": rec.product.image_url,
            "price": format_price(rec.product.price_min, rec.product.currency, locale=locale),
            "store_name": rec.product.store.name if partner else "",
        }
        if not partner:
            item["url"] = rec.product.url
        target = (rec.product.store_id, rec.product.shopify_id) if partner else None
        items.append({"item": item, "target": target})
    style: WidgetStyle = {
        "title": widget.title,
        "accent_color": widget.accent_color,
        "text_color": widget.text_color,
        "background_color": widget.background_color,
    }
    return {"items": items, "style": style}


def format_price(amount: Decimal, currency: str, *, locale: str = "en") -> str:
    """The price in the partner's currency, written the way the shopper's language writes
    money (CLDR data through Babel: "¥1,200", "12,99 €", "CA$12.99")."""
    try:
        return format_currency(amount, currency or "USD", locale=locale.replace("-", "_"))
    except (UnknownLocaleError, ValueError):
        return format_currency(amount, currency or "USD", locale="en")
