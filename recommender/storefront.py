"""What the storefront widget receives, and what its clicks and impressions record."""

from __future__ import annotations

import secrets
import threading
import time
from collections import OrderedDict
from dataclasses import dataclass
from decimal import Decimal
from urllib.parse import urlencode, urlsplit, urlunsplit

from django.conf import settings
from django.core import signing
from django.core.cache import cache

from recommender import exchange, selectors
from recommender.models import Impression, Product, WidgetSettings
from stores.models import Store

_IMPRESSION_SALT = "interlayer.impression"
# A visitor counting more impressions than this in ten minutes is not a shopper.
IMPRESSIONS_PER_VISITOR_PER_10_MIN = 30


class _TTLCache:
    """A small per-process cache whose entries live RECOMMENDER_STATE_TTL_SECONDS: the
    same freshness promise the network state makes (merchant changes show within it)."""

    def __init__(self, size: int = 20_000):
        self._entries: OrderedDict = OrderedDict()
        self._size = size
        self._lock = threading.Lock()

    def get_or_compute(self, key, compute):
        ttl = settings.RECOMMENDER_STATE_TTL_SECONDS
        if ttl <= 0:
            return compute()
        now = time.monotonic()
        with self._lock:
            hit = self._entries.get(key)
            if hit is not None and hit[0] > now:
                self._entries.move_to_end(key)
                return hit[1]
        value = compute()
        with self._lock:
            self._entries[key] = (now + ttl, value)
            self._entries.move_to_end(key)
            while len(self._entries) > self._size:
                self._entries.popitem(last=False)
        return value

    def clear(self) -> None:
        with self._lock:
            self._entries.clear()


_stores = _TTLCache()
_widgets = _TTLCache()


def active_store(shop_domain: str) -> Store | None:
    return _stores.get_or_compute(
        shop_domain,
        lambda: Store.objects.filter(shop_domain=shop_domain, status=Store.Status.ACTIVE).first(),
    )


def widget_payload(host: Store, *, product_id: int | None, page_type: str) -> dict:
    """The JSON the widget renders: settings, items (with signed click tokens for partner
    items) and a signed impression to send back when the row is actually seen.

    What to show is computed once per page and process within the freshness window; the
    tokens and the impression are minted for every response."""
    shown = _widgets.get_or_compute(
        (host.pk, product_id, page_type), lambda: _widget_items(host, product_id, page_type)
    )
    if not shown["items"]:
        return {"items": []}
    impression_id = secrets.token_hex(12)
    rendered = []
    for item in shown["items"]:
        entry = dict(item)
        target = entry.pop("target", None)
        if target is not None:
            entry["token"] = exchange.issue_click_token(
                impression_id=impression_id,
                source_store_id=host.pk,
                target_store_id=target[0],
                target_product_id=target[1],
            )
        rendered.append(entry)
    partners = sum(1 for item in shown["items"] if item["slot"] == "partner")
    impression = {"s": host.pk, "i": impression_id, "n": len(rendered), "p": partners}
    return {
        **shown["style"],
        "items": rendered,
        "impression": signing.dumps(impression, salt=_IMPRESSION_SALT),
    }


def _widget_items(host: Store, product_id: int | None, page_type: str) -> dict:
    widget = WidgetSettings.objects.filter(store=host).first() or WidgetSettings(store=host)
    nothing = {"items": [], "style": {}}
    if not widget.enabled or host.status != Store.Status.ACTIVE:
        return nothing
    if widget.placement == WidgetSettings.Placement.PRODUCT and page_type != "product":
        return nothing
    items = []
    for item in selectors.recommendations_for(host, product_id=product_id, widget=widget):
        entry = {
            "slot": item.slot,
            "title": item.product.title,
            "image_url": item.product.image_url,
            "price": format_price(item.product.price_min, item.product.currency),
            "store_name": item.product.store.name if item.slot == "partner" else "",
        }
        if item.slot == "partner":
            entry["target"] = (item.product.store_id, item.product.shopify_id)
        else:
            entry["url"] = item.product.url  # own products: a plain, free link
        items.append(entry)
    style = {
        "title": widget.title,
        "accent_color": widget.accent_color,
        "text_color": widget.text_color,
        "background_color": widget.background_color,
    }
    return {"items": items, "style": style}


def reset_cache() -> None:
    _stores.clear()
    _widgets.clear()


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
