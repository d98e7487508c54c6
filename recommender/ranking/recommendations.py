"""What a shopper on a page of the host store should see, and why.

Every filter lives here once: hard filters (never the host in partner slots, only active
participating partners with credits, blocks in both directions, ineligible and opted-out
products never indexed), the merchant's excluded categories, the relevance floor,
competitor avoidance, one slot per partner, fairness-aware ranking, and the own-products
share. ``raw=True`` keeps only the hard filters (for debugging relevance).
"""

from __future__ import annotations

import random
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, replace
from typing import NamedTuple, NotRequired, TypedDict

import numpy as np
from django.conf import settings

from recommender import runtime
from recommender.models import Product, WidgetSettings
from recommender.ranking import learning, live_index
from recommender.ranking.competitors import same_item, same_niche_stores
from recommender.ranking.index import Hit, VectorIndex
from recommender.ranking.lexical import identifier_agreement
from recommender.ranking.live_index import LEXICAL_FIELDS, lexical_text_of
from recommender.ranking.network import NetworkState, network_state
from recommender.ranking.relevance import (
    TOPIC_MIN_COSINE,
    TOPIC_NEIGHBOURS,
    affinity,
    category_key,
    inferred_topic,
    is_topical,
    neighbours_affinity,
    topic_affinity,
    topic_neighbours,
)
from stores.models import Store

# Fairness: a partner's rank blends relevance with its standing in the exchange.
FAIRNESS_WEIGHT = 0.05
# Related or complementary categories rank an item like a cosine this much higher.
TAXONOMY_WEIGHT = 0.2
# Titles naming the same model or part numbers (lexical.identifier_agreement, 0-1) rank an
# item this much higher, in the fused score's units (cosine + 4 x lexical): measured on the
# WDC development set, it puts the same item first where sibling models share most words.
# Only where the same item is wanted: the raw ranking, and widgets that do not avoid
# competitors (with avoidance on, the same item is what must not be shown).
IDENTIFIER_WEIGHT = 2.0
# The raw ranking re-ranks this many times the items it returns.
RAW_POOL = 2
# Rankings of one page at most: a kept item that left the exchange since its row was read
# is read afresh and ranked again (rows change between two reads only in a race).
RANKING_ROUNDS = 3
# Candidates read per partner slot, nearest first. Complements can be far in cosine (a
# notebook's tote bag is less alike than a hundred kitchen items are), so when these leave
# slots unfilled, up to FARTHER_ROUNDS more reads go farther, each as deep again, among the
# stores that hold no slot yet (a store's items already seen are read again, not counted).
CANDIDATES_PER_SLOT = 40
FARTHER_ROUNDS = 2
# The host's own products are ranked by cosine alone, with no category to speak for them:
# they need at least this (RECOMMENDER_RELEVANCE_FLOOR, lower, is for partner items, which
# below a cosine of about 0.25 pass the calibrated floor only in a related category).
OWN_MIN_COSINE = 0.2
# Products read to find a book's nearest products of other kinds (relevance.inferred_topic):
# other books are near it too, and are left out of the vote.
TOPIC_CANDIDATES = 3 * TOPIC_NEIGHBOURS


class RecommendationDict(TypedDict):
    slot: str
    shop: str
    store_name: str
    product_id: int
    title: str
    url: str
    image_url: str
    price: str
    currency: str
    similarity: float
    relevance: float | None
    reason: str
    score: NotRequired[float]  # operators only, as fairness
    fairness: NotRequired[float | None]


@dataclass(frozen=True)
class Recommendation:
    product: Product
    slot: str  # "partner" or "own"
    score: float  # what it was ranked by
    similarity: float
    reason: str  # what a merchant may read: nothing of the partner's standing
    relevance: float | None = None  # calibrated (relevance.py), for partner items
    # The partner's standing in the exchange (network.fairness_of, from its credit balance):
    # for operators only. A merchant who read it could work a partner's balance out.
    fairness: float | None = None

    @property
    def explanation(self) -> str:
        """The reason with the partner's fairness, for operators (recommend --explain)."""
        if self.fairness is None:
            return self.reason
        return f"{self.reason}, partner fairness {self.fairness:+.2f}"

    def as_dict(self, *, operator: bool = False) -> RecommendationDict:
        """The item as JSON: for a merchant's page, or (``operator``) with its score and
        the partner's fairness, which the score includes."""
        shown: RecommendationDict = {
            "slot": self.slot,
            "shop": self.product.store.shop_domain,
            "store_name": self.product.store.name,
            "product_id": self.product.shopify_id,
            "title": self.product.title,
            "url": self.product.url,
            "image_url": self.product.image_url,
            "price": str(self.product.price_min),
            "currency": self.product.currency,
            "similarity": round(self.similarity, 4),
            "relevance": None if self.relevance is None else round(self.relevance, 4),
            "reason": self.reason,
        }
        if operator:
            shown.update(score=round(self.score, 4), fairness=self.fairness,
                         reason=self.explanation)  # fmt: skip
        return shown


class Candidate(NamedTuple):
    """What ranking reads of a partner product. Ranking weighs a hundred candidates per page;
    the widget's display fields are read for the few it keeps (``_loaded``)."""

    pk: int
    store_id: int
    title: str
    vendor: str
    category_id: str


@dataclass(frozen=True)
class _Pick:
    """An item ranking kept, before its full row is read."""

    pk: int
    store_id: int
    slot: str
    score: float
    similarity: float
    reason: str
    relevance: float | None = None
    fairness: float | None = None


def recommendations_for(
    host: Store,
    *,
    product_id: int | None = None,
    limit: int | None = None,
    raw: bool = False,
    widget: WidgetSettings | None = None,
    viewed: Product | None = None,
) -> list[Recommendation]:
    """The widget's items for a page of ``host``: a product page when ``product_id`` (a
    Shopify product id of the host) is given, otherwise the store's profile. ``viewed`` is
    that product as ``viewed_product`` read it, when the caller has it already."""
    widget = widget or widget_settings_of(host)
    limit = limit or widget.items
    index = live_index.current()
    state = network_state()
    if product_id is None:
        viewed = None
    elif viewed is None or (viewed.store_id, viewed.shopify_id) != (host.pk, product_id):
        viewed = viewed_product(host, product_id)
        if viewed is None:
            return []  # not this store's product: nothing to relate to
    if viewed is not None and not viewed.vector:
        viewed = None  # not embedded yet: related like the store's home page meanwhile
    query = (
        np.frombuffer(viewed.vector, dtype=np.float32)
        if viewed is not None
        else index.store_profile(host.pk)
    )
    if query is None:
        return []
    exclude = index.store_ids() - state.partners_of(host.pk)
    if raw:
        pool = limit * RAW_POOL if viewed is not None else limit
        hits = index.search(
            query, pool, exclude_stores=exclude, text=_text(viewed), text_store=host.pk
        )
        return _raw_ranking(hits, viewed)[:limit]
    own_slots = widget.own_slots(limit)
    shown: list[Recommendation] = []
    for _ in range(RANKING_ROUNDS):
        partners = _partner_items(
            index=index, state=state, host=host, widget=widget, query=query, viewed=viewed,
            exclude=exclude, slots=limit - own_slots,
        )  # fmt: skip
        own = _own_items(index=index, host=host, query=query, viewed=viewed, slots=own_slots,
                         excluded=set(widget.excluded_categories or []))  # fmt: skip
        shown = _loaded([*partners, *own])
        gone = {pick.pk for pick in partners} - {item.product.pk for item in shown}
        if not gone:
            break
        # A kept partner item left the exchange after ranking read it (its index event not
        # applied yet): rank again with its rows read afresh, so that its store's next item
        # can take the slot.
        runtime.ranking_candidates.forget(gone)
        runtime.shown_products.forget(gone)
    return shown


def widget_settings_of(host: Store) -> WidgetSettings:
    """The store's widget settings: the defaults until it saves its own."""
    return WidgetSettings.objects.filter(store=host).first() or WidgetSettings(store=host)


def viewed_product(host: Store, product_id: int) -> Product | None:
    """The viewed product, with what ranking reads of it (not its description)."""
    return Product.objects.filter(store=host, shopify_id=product_id).only(*_VIEWED_FIELDS).first()


def _partner_items(
    *,
    index: VectorIndex,
    state: NetworkState,
    host: Store,
    widget: WidgetSettings,
    query: np.ndarray,
    viewed: Product | None,
    exclude: set[int],
    slots: int,
) -> list[_Pick]:
    if slots <= 0:
        return []
    if widget.avoid_competitors:
        exclude = exclude | same_niche_stores(index, host_id=host.pk)
    # The floors are on what the embedding and the taxonomy say: shared words rank items,
    # they never let one in.
    page_is_topical = viewed is not None and is_topical(category_key(viewed.category_id))
    floor = settings.RECOMMENDER_RELEVANCE_FLOOR
    if page_is_topical:  # nothing less alike can be shown beside a book: not worth reading
        floor = max(floor, TOPIC_MIN_COSINE)
    text = _text(viewed)
    excluded_categories = set(widget.excluded_categories or [])
    page_category = _topic_or_category(index, viewed) if viewed is not None else ""
    learned = learning.feedback() if settings.RECOMMENDER_LEARNING else None
    cluster = learning.page_cluster(host, viewed)
    sampler = random.Random() if learned is not None and learning.explores() else None
    best: dict[int, _Pick] = {}
    sampled: dict[int, tuple[float, _Pick]] = {}  # store -> best under a sampled CTR

    def nearest_then_farther() -> Iterator[tuple[Hit, Candidate | None]]:
        """Candidates nearest first; then, while slots are unfilled, the next nearest of the
        stores that hold no slot yet (asking again for those already read, which the search
        returns first)."""
        read: set[int] = set()
        seen: Counter[int] = Counter()  # store -> its items read so far
        for _ in range(1 + FARTHER_ROUNDS):
            skip = exclude | set(best)
            again = sum(count for store, count in seen.items() if store not in skip)
            asked = again + slots * CANDIDATES_PER_SLOT
            hits = index.search(
                query, asked, exclude_stores=skip, text=text, text_store=host.pk, min_cosine=floor
            )
            fresh = [hit for hit in hits if hit.product_id not in read]
            read.update(hit.product_id for hit in fresh)
            seen.update(hit.store_id for hit in fresh)
            products = _candidates([hit.product_id for hit in fresh])
            for hit in fresh:
                yield hit, products.get(hit.product_id)
            if len(best) >= slots or len(hits) < asked:
                return  # every slot has a store, or nothing is farther

    for hit, product in nearest_then_farther():
        if product is None or in_categories(product, excluded_categories):
            continue
        if widget.avoid_competitors and viewed is not None and same_item(viewed, product):
            continue
        by_topic = page_is_topical or is_topical(category_key(product.category_id))
        if by_topic and hit.cosine < TOPIC_MIN_COSINE:
            continue
        relate = topic_affinity if by_topic else affinity
        taxonomy = relate(page_category, _topic_or_category(index, product))
        basis = "a book's topic" if by_topic else ""
        if taxonomy is None and by_topic and viewed is not None:
            taxonomy = _by_neighbours(index, viewed, product, page_is_topical=page_is_topical)
            basis = "a book's neighbours"
        related = index.calibration.relevance(hit.cosine, taxonomy)
        if related < settings.RECOMMENDER_MIN_RELEVANCE:
            continue
        fairness = state.fairness.get(hit.store_id, 0.0)
        same_ids = 0.0 if widget.avoid_competitors else _identifier_agreement(viewed, product)
        content = (
            hit.score
            + IDENTIFIER_WEIGHT * same_ids
            + TAXONOMY_WEIGHT * (taxonomy or 0.0)
            + FAIRNESS_WEIGHT * fairness
        )
        lift = learned.lift(cluster, product.pk) if learned is not None else 0.0
        score = content + lift
        reason = _reason(hit, related, taxonomy, same_ids, basis=basis)
        if learned is not None and learned.history(cluster, product.pk)[0]:
            shown, clicked = learned.history(cluster, product.pk)
            reason += f", clicked {clicked} of {shown} times on such pages: {lift:+.3f}"
        rec = _Pick(
            product.pk, hit.store_id, "partner", score, hit.cosine, reason, related, fairness
        )
        current = best.get(hit.store_id)
        if current is None or (score, -product.pk) > (current.score, -current.pk):
            best[hit.store_id] = rec
        if sampler is not None:
            draw = content + learned.lift(cluster, product.pk, rng=sampler)
            if hit.store_id not in sampled or draw > sampled[hit.store_id][0]:
                sampled[hit.store_id] = (draw, rec)
    ranked = sorted(best.values(), key=lambda r: (-r.score, r.store_id, r.pk))
    ranked = ranked[:slots]
    if sampler is not None and ranked:
        # Exploration takes the last slot: the best store not already shown, by a sample.
        kept = ranked[:-1]
        taken = {r.store_id for r in kept}
        pool = [entry for store, entry in sampled.items() if store not in taken]
        if pool:
            _, explored = max(pool, key=lambda entry: (entry[0], -entry[1].pk))
            ranked = [*kept, replace(explored, reason=explored.reason + ", explored")]
    return ranked


def _topic_or_category(index: VectorIndex, product: Product | Candidate) -> str:
    """The taxonomy key ranking relates a product by: its category's, or for a book (whose
    category says nothing of its subject) the topic its nearest products in other stores
    agree on (relevance.inferred_topic), kept for the freshness window."""
    key = category_key(product.category_id)
    if not is_topical(key):
        return key
    return _topic(index, product).branch or key


def _by_neighbours(
    index: VectorIndex, viewed: Product, product: Candidate, *, page_is_topical: bool
) -> float | None:
    """What a book's nearest products say of the item beside it, where its topic says
    nothing (relevance.neighbours_affinity); None for two books. The item itself, often
    one of them, has no vote: its cosine is the content evidence already, and content and
    taxonomy are combined as independent evidence."""
    topical, other = (viewed, product) if page_is_topical else (product, viewed)
    key = category_key(other.category_id)
    if is_topical(key):
        return None
    topic = _topic(index, topical)
    votes = [near for near, pk in zip(topic.nearest, topic.pks, strict=True) if pk != other.pk]
    return neighbours_affinity(votes, key)


class _Topic(NamedTuple):
    branch: str | None  # relevance.inferred_topic
    nearest: tuple[tuple[str, float], ...]  # relevance.topic_neighbours
    pks: tuple[int, ...]  # the product each of ``nearest`` is


def _topic(index: VectorIndex, product: Product | Candidate) -> _Topic:
    """What a book is about, by its nearest products in other stores, kept for the freshness
    window: one dense search per book, not per page."""
    return runtime.product_topics.get_or_compute(
        product.pk, lambda: _inferred_topic(index, product.pk, product.store_id)
    )


def _inferred_topic(index: VectorIndex, pk: int, store_id: int) -> _Topic:
    vector = index.vector(pk)
    if vector is None:
        return _Topic(None, (), ())
    hits = index.search(
        vector,
        TOPIC_CANDIDATES,
        exclude_stores={store_id},
        min_cosine=max(settings.RECOMMENDER_RELEVANCE_FLOOR, TOPIC_MIN_COSINE),
    )
    products = _candidates([hit.product_id for hit in hits])
    voters = topic_neighbours(
        (category_key(products[hit.product_id].category_id), hit.cosine, hit.product_id)
        for hit in hits
        if hit.product_id in products
    )
    nearest = tuple((key, cosine) for key, cosine, _ in voters)
    return _Topic(inferred_topic(nearest), nearest, tuple(pk for _, _, pk in voters))


def _own_items(
    *,
    index: VectorIndex,
    host: Store,
    query: np.ndarray,
    viewed: Product | None,
    slots: int,
    excluded: set[str] | None = None,
) -> list[_Pick]:
    """The host's own products nearest the page, above their floor, none of a category the
    merchant never shows (read for the few nearest, in one query, only when some are)."""
    if slots <= 0:
        return []
    product_ids, vectors = index.store_vectors(host.pk)
    if not product_ids:
        return []
    scores = vectors @ query
    order = np.lexsort((np.asarray(product_ids), -scores))
    nearest = []
    wanted = slots + OWN_SPARE if excluded else slots
    for i in order:
        if viewed is not None and product_ids[i] == viewed.pk:
            continue
        if scores[i] < max(settings.RECOMMENDER_RELEVANCE_FLOOR, OWN_MIN_COSINE):
            break
        nearest.append((product_ids[i], float(scores[i])))
        if len(nearest) == wanted:
            break
    chosen = nearest
    if excluded and nearest:
        categories = dict(
            Product.objects.filter(pk__in=[pk for pk, _ in nearest]).values_list(
                "pk", "category_id"
            )
        )
        chosen = [
            (pk, score)
            for pk, score in nearest
            if not category_in(categories.get(pk) or "", excluded)
        ]
    chosen = chosen[:slots]
    return [
        _Pick(pk, host.pk, "own", score, score, f"your product, similarity {score:.2f}")
        for pk, score in chosen
    ]


def _reason(
    hit: Hit,
    related: float,
    taxonomy: float | None,
    same_ids: float,
    *,
    basis: str = "",
) -> str:
    words = f", shared words {hit.lexical:.2f}" if hit.lexical >= 0.005 else ""
    words += _model_numbers(same_ids)
    if taxonomy is None:
        kind = ""
    elif taxonomy == 0:
        kind = ", unrelated categories"
    else:
        kind = f", related categories {taxonomy:.1f}"
    if taxonomy is not None and basis:
        kind += f" by {basis}"
    return f"relevance {related:.3f} (similarity {hit.cosine:.2f}{words}{kind})"


def _text(viewed: Product | None) -> str | None:
    """The viewed product's lexical text (a home page has none: embeddings alone)."""
    if viewed is None:
        return None
    return lexical_text_of(*(getattr(viewed, field) for field in LEXICAL_FIELDS))


# Candidates are read on every widget, so only what ranking and the widget use: not their
# vectors (the index has them), and not their store's tokens, decrypted row by row.
_READ_FIELDS = (
    "store_id", "shopify_id", "handle", "title", "vendor", "product_type", "category_id",
    "image_url", "url", "price_min", "currency", "store__shop_domain", "store__name",
    "store__status",
)  # fmt: skip


# What ranking reads of the viewed product: its vector, its lexical text, the category and
# the title competitor avoidance compares (not its description).
_VIEWED_FIELDS = ("store_id", "shopify_id", "vector", "category_id", *LEXICAL_FIELDS)


def _candidates(pks: list[int]) -> dict[int, Candidate]:
    """Kept for the freshness window: the same partner items come up on page after page.
    What ranking keeps is read again, whole, in ``_loaded``."""
    return runtime.ranking_candidates.get_many(pks, _read_candidates)


def _read_candidates(pks: list[int]) -> dict[int, Candidate]:
    rows = Product.objects.filter(Product.OFFERED, pk__in=pks).values_list(*Candidate._fields)
    return {row[0]: Candidate(*row) for row in rows}


def _loaded(picks: list[_Pick]) -> list[Recommendation]:
    """The kept items with their full rows, read at once (an item gone since is dropped)."""
    products = _products_by_pk([pick.pk for pick in picks])
    return [
        Recommendation(
            products[pick.pk], pick.slot, pick.score, pick.similarity, pick.reason,
            relevance=pick.relevance, fairness=pick.fairness,
        )
        for pick in picks
        if pick.pk in products
    ]  # fmt: skip


def _products_by_pk(pks: list[int]) -> dict[int, Product]:
    """Kept for the freshness window, like the widgets they are shown in."""
    return runtime.shown_products.get_many(pks, _read_products)


def _read_products(pks: list[int]) -> dict[int, Product]:
    rows = (
        Product.objects.filter(Product.OFFERED, pk__in=pks)
        .select_related("store")
        .only(*_READ_FIELDS)
    )
    return {product.pk: product for product in rows}


def _identifier_agreement(viewed: Product | None, product: Product | Candidate) -> float:
    return 0.0 if viewed is None else identifier_agreement(viewed.title, product.title)


def _model_numbers(same_ids: float) -> str:
    return f", same model numbers {same_ids:.2f}" if same_ids else ""


def _raw_ranking(hits: list[Hit], viewed: Product | None) -> list[Recommendation]:
    """The hits ranked by the fused score and the titles' model numbers, hard filters only."""
    products = _products_by_pk([hit.product_id for hit in hits])
    ranked = []
    for hit in hits:
        product = products.get(hit.product_id)
        if product is None:
            continue
        same_ids = _identifier_agreement(viewed, product)
        score = hit.score + IDENTIFIER_WEIGHT * same_ids
        reason = "nearest partner product (raw)" + _model_numbers(same_ids)
        ranked.append(Recommendation(product, "partner", score, hit.cosine, reason))
    return sorted(ranked, key=lambda r: (-r.score, r.product.pk))


# Own products read beyond the slots where the merchant excludes categories: the nearest
# may be of one of them.
OWN_SPARE = 20


def in_categories(product: Product | Candidate, categories: set[str]) -> bool:
    """A product is in an excluded category or any of its subcategories."""
    return category_in(product.category_id, categories)


def category_in(category_id: str, categories: set[str]) -> bool:
    """``category_id`` is one of ``categories`` or a subcategory of one."""
    if not categories or not category_id:
        return False
    own = category_id.rsplit("/", 1)[-1]
    return any(
        own == c or own.startswith(c + "-") for c in (c.rsplit("/", 1)[-1] for c in categories)
    )
