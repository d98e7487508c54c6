"""What the storefront widget receives, and what its clicks and impressions record."""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from decimal import Decimal
from urllib.parse import urlencode, urlsplit, urlunsplit

from django.core import signing
from django.core.cache import cache

from recommender import exchange, selectors
from recommender.models import Impression, Product, WidgetSettings
from stores.models import Store

_IMPRESSION_SALT = "interlayer.impression"
# A visitor counting more impressions than this in ten minutes is not a shopper.
IMPRESSIONS_PER_VISITOR_PER_10_MIN = 30


def widget_payload(host: Store, *, product_id: int | None, page_type: str) -> dict:
    """The JSON the widget renders: settings, items (with signed click tokens for partner
    items) and a signed impression to send back when the row is actually seen."""
    widget = WidgetSettings.objects.filter(store=host).first() or WidgetSettings(store=host)
    empty = {"items": []}
    if not widget.enabled or host.status != Store.Status.ACTIVE:
        return empty
    if widget.placement == WidgetSettings.Placement.PRODUCT and page_type != "product":
        return empty
    items = selectors.recommendations_for(host, product_id=product_id, widget=widget)
    if not items:
        return empty
    impression_id = secrets.token_hex(12)
    rendered = []
    for item in items:
        entry = {
            "slot": item.slot,
            "title": item.product.title,
            "image_url": item.product.image_url,
            "price": format_price(item.product.price_min, item.product.currency),
            "store_name": item.product.store.name if item.slot == "partner" else "",
        }
        if item.slot == "partner":
            entry["token"] = exchange.issue_click_token(
                impression_id=impression_id,
                source_store_id=host.pk,
                target_store_id=item.product.store_id,
                target_product_id=item.product.shopify_id,
            )
        else:
            entry["url"] = item.product.url  # own products: a plain, free link
        rendered.append(entry)
    partners = sum(1 for item in items if item.slot == "partner")
    return {
        "title": widget.title,
        "accent_color": widget.accent_color,
        "text_color": widget.text_color,
        "background_color": widget.background_color,
        "items": rendered,
        "impression": signing.dumps(
            {"s": host.pk, "i": impression_id, "n": len(items), "p": partners},
            salt=_IMPRESSION_SALT,
        ),
    }


def format_price(amount: Decimal, currency: str) -> str:
    symbol = {"USD": "$", "EUR": "€", "GBP": "£", "CAD": "CA$", "AUD": "A$", "JPY": "¥"}
    return f"{symbol.get(currency, currency + ' ')}{amount:,.2f}"


@dataclass(frozen=True)
class ClickOutcome:
    location: str | None  # where to send the shopper; None when we cannot tell
    billable: bool
    reason: str


def follow_click(*, host: Store, raw_token: str, ip: str, user_agent: str) -> ClickOutcome:
    """Record a click and say where it goes: only ever the product the token names, and
    only from the storefront whose widget issued the token."""
    try:
        token = exchange.read_click_token(raw_token)
    except exchange.InvalidClickToken as error:
        if error.reason != "expired":
            return ClickOutcome(None, False, error.reason)
        token = exchange.read_click_token_unchecked_age(raw_token)
        if token.source_store_id != host.pk:
            return ClickOutcome(None, False, "issued for another store")
        product = _target(token.target_store_id, token.target_product_id)
        # An old link still takes the shopper to the product; it just earns nothing.
        return ClickOutcome(_with_utm(product, token) if product else None, False, "expired")
    if token.source_store_id != host.pk:
        return ClickOutcome(None, False, "issued for another store")
    product = _target(token.target_store_id, token.target_product_id)
    if product is None:
        return ClickOutcome(None, False, "product gone")
    click = exchange.record_click(token=token, ip=ip, user_agent=user_agent)
    return ClickOutcome(_with_utm(product, token), click.billable, click.reason)


def _target(store_id: int, product_id: int) -> Product | None:
    return (
        Product.objects.filter(store_id=store_id, shopify_id=product_id)
        .exclude(url="")
        .select_related("store")
        .first()
    )


def _with_utm(product: Product, token: exchange.ClickToken) -> str | None:
    parts = urlsplit(product.url)
    if parts.scheme not in {"http", "https"} or not parts.netloc:
        return None
    source = (
        Store.objects.filter(pk=token.source_store_id).values_list("shop_domain", flat=True).first()
    )
    utm = urlencode(
        {
            "utm_source": "interlayer",
            "utm_medium": "referral",
            "utm_campaign": (source or "").removesuffix(".myshopify.com"),
        }
    )
    query = f"{parts.query}&{utm}" if parts.query else utm
    return urlunsplit((parts.scheme, parts.netloc, parts.path, query, ""))


def record_impression(*, host: Store, raw: str, ip: str, user_agent: str) -> str:
    """Count a viewable impression once; floods from one visitor are dropped."""
    try:
        data = signing.loads(raw, salt=_IMPRESSION_SALT, max_age=6 * 3600)
    except signing.BadSignature:
        return "invalid"
    if int(data.get("s", 0)) != host.pk:
        return "invalid"
    if exchange.is_bot(user_agent):
        return "bot"
    visitor, _ = exchange.visitor_hashes(ip=ip, user_agent=user_agent)
    key = f"impressions:{visitor}"
    count = cache.get_or_set(key, 0, timeout=600)
    if count >= IMPRESSIONS_PER_VISITOR_PER_10_MIN:
        return "rate limited"
    try:
        cache.incr(key)
    except ValueError:
        cache.set(key, 1, timeout=600)
    _, created = Impression.objects.get_or_create(
        impression_id=str(data["i"])[:64],
        defaults={
            "store": host,
            "visitor_hash": visitor,
            "items": int(data.get("n", 0)),
            "partner_items": int(data.get("p", 0)),
        },
    )
    return "counted" if created else "duplicate"
