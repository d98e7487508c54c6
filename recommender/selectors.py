"""What a shopper on a page of the host store should see, and why.

Every filter lives here once: hard filters (never the host in partner slots, only active
participating partners with credits, blocks in both directions, ineligible and opted-out
products never indexed), the merchant's excluded categories, the relevance floor,
competitor avoidance, one slot per partner, fairness-aware ranking, and the own-products
share. ``raw=True`` keeps only the hard filters (for debugging relevance).
"""

from __future__ import annotations

import math
import re
import threading
import time
from dataclasses import dataclass
from decimal import Decimal

import numpy as np
from django.conf import settings
from django.db.models import Count

from recommender import exchange, live_index
from recommender.index import VectorIndex
from recommender.models import Product, WidgetSettings
from stores.models import Store

# Fairness: a partner's rank blends relevance with its standing in the exchange.
FAIRNESS_WEIGHT = 0.05
# Competitor avoidance: titles this alike (character trigrams) are the same item, and
# store profiles this alike are the same niche.
SAME_ITEM_TITLE_SIMILARITY = 0.6
SAME_NICHE_PROFILE_SIMILARITY = 0.9
CANDIDATES_PER_SLOT = 12

_MODEL_TOKEN = re.compile(r"\b(?=[a-z-]*\d)(?=[\d-]*[a-z])[a-z0-9-]{3,}\b")


@dataclass(frozen=True)
class Recommendation:
    product: Product
    slot: str  # "partner" or "own"
    score: float  # what it was ranked by
    similarity: float
    reason: str

    def as_dict(self) -> dict:
        return {
            "slot": self.slot,
            "shop": self.product.store.shop_domain,
            "store_name": self.product.store.name,
            "product_id": self.product.shopify_id,
            "title": self.product.title,
            "url": self.product.url,
            "image_url": self.product.image_url,
            "price": str(self.product.price_min),
            "currency": self.product.currency,
            "score": round(self.score, 4),
            "similarity": round(self.similarity, 4),
            "reason": self.reason,
        }


# --- network state, cached briefly per process ------------------------------------------


@dataclass
class NetworkState:
    loaded_at: float
    participating: set[int]  # active, widget enabled, credits left
    blocks: dict[int, set[int]]  # store -> stores it blocked
    fairness: dict[int, float]
    catalog_sizes: dict[int, int]


_state_lock = threading.Lock()
_state: NetworkState | None = None


def network_state(*, fresh: bool = False) -> NetworkState:
    global _state
    with _state_lock:
        ttl = settings.RECOMMENDER_STATE_TTL_SECONDS
        if fresh or _state is None or time.monotonic() - _state.loaded_at > ttl:
            _state = _load_state()
        return _state


def _load_state() -> NetworkState:
    active = set(Store.objects.filter(status=Store.Status.ACTIVE).values_list("pk", flat=True))
    disabled = set(WidgetSettings.objects.filter(enabled=False).values_list("store_id", flat=True))
    exhausted = exchange.exhausted_store_ids()
    blocks: dict[int, set[int]] = {}
    for store_id, blocked_id in WidgetSettings.blocked_stores.through.objects.values_list(
        "widgetsettings__store_id", "store_id"
    ):
        blocks.setdefault(store_id, set()).add(blocked_id)
    sizes = dict(
        Product.objects.filter(eligible=True)
        .values("store_id")
        .annotate(n=Count("id"))
        .values_list("store_id", "n")
    )
    balances = exchange.balances(sorted(active))
    fairness = {
        store_id: _fairness(balances.get(store_id, Decimal("0")), sizes.get(store_id, 0))
        for store_id in active
    }
    return NetworkState(
        loaded_at=time.monotonic(),
        participating=active - disabled - exhausted,
        blocks=blocks,
        fairness=fairness,
        catalog_sizes=sizes,
    )


def _fairness(balance: Decimal, catalog_size: int) -> float:
    """In [-0.5, 1]: stores that have sent more than they received rank a little higher,
    and small catalogs get a lift so large stores cannot crowd them out."""
    standing = math.tanh(float(balance - exchange.STARTER_GRANT) / 20)
    smallness = 1 - min(1.0, math.log10(max(catalog_size, 1)) / 3)
    return 0.5 * standing + 0.5 * smallness


def reset_cache() -> None:
    global _state
    with _state_lock:
        _state = None


# --- the recommendation -----------------------------------------------------------------


def recommendations_for(
    host: Store,
    *,
    product_id: int | None = None,
    limit: int | None = None,
    raw: bool = False,
    widget: WidgetSettings | None = None,
) -> list[Recommendation]:
    """The widget's items for a page of ``host``: a product page when ``product_id`` (a
    Shopify product id of the host) is given, otherwise the store's profile."""
    widget = (
        widget or WidgetSettings.objects.filter(store=host).first() or WidgetSettings(store=host)
    )
    limit = limit or widget.items
    index = live_index.current()
    state = network_state()
    query, viewed = _query_vector(index, host, product_id)
    if query is None:
        return []
    partners_allowed = _partner_stores(index, state, host)
    exclude = index.store_ids() - partners_allowed
    if raw:
        hits = index.search(query, limit, exclude_stores=exclude)
        return _hydrate(hits, slot="partner", reason="nearest partner product (raw)")
    own_slots = round(limit * widget.own_share / 100)
    partner_slots = limit - own_slots
    partners = _partner_items(index, state, host, widget, query, viewed, exclude, partner_slots)
    own = _own_items(index, host, query, viewed, own_slots) if own_slots else []
    return partners + own


def _query_vector(index: VectorIndex, host: Store, product_id: int | None):
    if product_id is not None:
        viewed = Product.objects.filter(store=host, shopify_id=product_id).first()
        if viewed is not None and viewed.vector:
            return np.frombuffer(viewed.vector, dtype=np.float32), viewed
        if viewed is None:
            return None, None  # not this store's product: nothing to relate to
    return index.store_profile(host.pk), None


def _partner_stores(index: VectorIndex, state: NetworkState, host: Store) -> set[int]:
    blocked_by_host = state.blocks.get(host.pk, set())
    blocking_host = {store for store, blocked in state.blocks.items() if host.pk in blocked}
    return state.participating - {host.pk} - blocked_by_host - blocking_host


def _partner_items(index, state, host, widget, query, viewed, exclude, slots):
    if slots <= 0:
        return []
    if widget.avoid_competitors:
        exclude = exclude | _same_niche_stores(index, host)
    hits = index.search(query, slots * CANDIDATES_PER_SLOT, exclude_stores=exclude)
    floor = settings.RECOMMENDER_RELEVANCE_FLOOR
    hits = [hit for hit in hits if hit.score >= floor]
    products = _products_by_pk([hit.product_id for hit in hits])
    excluded_categories = set(widget.excluded_categories or [])
    best: dict[int, Recommendation] = {}
    for hit in hits:
        product = products.get(hit.product_id)
        if product is None or _in_categories(product, excluded_categories):
            continue
        if widget.avoid_competitors and viewed is not None and same_item(viewed, product):
            continue
        fairness = state.fairness.get(hit.store_id, 0.0)
        score = hit.score + FAIRNESS_WEIGHT * fairness
        current = best.get(hit.store_id)
        if current is None or (score, -product.pk) > (current.score, -current.product.pk):
            reason = f"similarity {hit.score:.2f}, partner fairness {fairness:+.2f}"
            best[hit.store_id] = Recommendation(product, "partner", score, hit.score, reason)
    ranked = sorted(best.values(), key=lambda r: (-r.score, r.product.store_id, r.product.pk))
    return ranked[:slots]


def _own_items(index, host, query, viewed, slots) -> list[Recommendation]:
    product_ids, vectors = index.store_vectors(host.pk)
    if not product_ids:
        return []
    scores = vectors @ query
    order = np.lexsort((np.asarray(product_ids), -scores))
    chosen = []
    for i in order:
        if viewed is not None and product_ids[i] == viewed.pk:
            continue
        if scores[i] < settings.RECOMMENDER_RELEVANCE_FLOOR:
            break
        chosen.append((product_ids[i], float(scores[i])))
        if len(chosen) == slots:
            break
    products = _products_by_pk([pk for pk, _ in chosen])
    return [
        Recommendation(products[pk], "own", score, score, f"your product, similarity {score:.2f}")
        for pk, score in chosen
        if pk in products
    ]


def _products_by_pk(pks: list[int]) -> dict[int, Product]:
    rows = Product.objects.filter(pk__in=pks, eligible=True, opted_out=False).select_related(
        "store"
    )
    return {product.pk: product for product in rows}


def _hydrate(hits, *, slot: str, reason: str) -> list[Recommendation]:
    products = _products_by_pk([hit.product_id for hit in hits])
    return [
        Recommendation(products[hit.product_id], slot, hit.score, hit.score, reason)
        for hit in hits
        if hit.product_id in products
    ]


def _in_categories(product: Product, categories: set[str]) -> bool:
    """A product is in an excluded category or any of its subcategories."""
    if not categories or not product.category_id:
        return False
    own = product.category_id.rsplit("/", 1)[-1]
    return any(
        own == c or own.startswith(c + "-") for c in (c.rsplit("/", 1)[-1] for c in categories)
    )


# --- competitor avoidance -----------------------------------------------------------------


def _trigrams(text: str) -> set[str]:
    text = f"  {re.sub(r'[^a-z0-9]+', ' ', text.lower()).strip()}  "
    return {text[i : i + 3] for i in range(len(text) - 2)}


def same_item(a: Product, b: Product) -> bool:
    """The same product sold by two stores: model numbers and brand + title n-grams drive
    it (embeddings say "similar", which is not "identical")."""
    tokens_a = set(_MODEL_TOKEN.findall(a.title.lower()))
    tokens_b = set(_MODEL_TOKEN.findall(b.title.lower()))
    if tokens_a & tokens_b:
        return True
    grams_a, grams_b = _trigrams(a.title), _trigrams(b.title)
    overlap = len(grams_a & grams_b) / max(len(grams_a | grams_b), 1)
    same_brand = a.vendor and a.vendor.lower() == b.vendor.lower()
    return overlap >= SAME_ITEM_TITLE_SIMILARITY or (bool(same_brand) and overlap >= 0.4)


def _same_niche_stores(index: VectorIndex, host: Store) -> set[int]:
    mine = index.store_profile(host.pk)
    if mine is None:
        return set()
    same = set()
    for store_id in index.store_ids() - {host.pk}:
        theirs = index.store_profile(store_id)
        if theirs is not None and float(mine @ theirs) >= SAME_NICHE_PROFILE_SIMILARITY:
            same.add(store_id)
    return same
