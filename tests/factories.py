"""Small factories for rows the tests and benchmarks need directly (installs go through the
simulator)."""

from __future__ import annotations

import itertools
from collections.abc import Callable, Sequence
from datetime import timedelta

import numpy as np
from django.utils import timezone

from recommender.exchange.rules import EARN_PER_CLICK
from recommender.models import Click, Impression, LedgerEntry, Product, WidgetSettings
from recommender.ranking import embedding
from stores.models import Store

_ids = itertools.count(1)
_rng = np.random.default_rng(1234)
TOPICS = {name: _rng.normal(size=384) for name in ("coffee", "tea", "dogs", "books", "dresses")}


def topic_vector(topic: str, *, noise: float = 0.35, seed: int | None = None) -> np.ndarray:
    rng = np.random.default_rng(seed)
    vector = TOPICS[topic] + noise * rng.normal(size=384)
    return (vector / np.linalg.norm(vector)).astype(np.float32)


def toward(query: np.ndarray, other: np.ndarray, similarity: float) -> np.ndarray:
    """A unit vector whose cosine with ``query`` is exactly ``similarity`` (up to float32)."""
    orthogonal = other - (other @ query) * query
    orthogonal /= np.linalg.norm(orthogonal)
    vector = similarity * query + np.sqrt(1 - similarity**2) * orthogonal
    return (vector / np.linalg.norm(vector)).astype(np.float32)


def mixed_vector(*parts: tuple[str, float], noise: float = 0.3, seed: int | None = None):
    """A product between topics, e.g. a coffee-table book: (("coffee", 0.7), ("books", 0.7))."""
    rng = np.random.default_rng(seed)
    vector = sum(weight * TOPICS[topic] for topic, weight in parts) + noise * rng.normal(size=384)
    return (vector / np.linalg.norm(vector)).astype(np.float32)


def make_store(handle: str, *, status: str = Store.Status.ACTIVE, **fields) -> Store:
    store = Store.objects.create(
        shop_domain=f"{handle}.myshopify.com",
        status=status,
        name=fields.pop("name", handle.title()),
        plan_name=fields.pop("plan_name", "Basic"),
        **fields,
    )
    WidgetSettings.objects.create(store=store)
    return store


def make_product(store: Store, title: str, vector: np.ndarray | None = None, **fields) -> Product:
    number = next(_ids)
    text_hash = embedding.content_hash(title + str(number))
    values = {
        "shopify_id": 9_000_000 + number,
        "handle": f"p-{number}",
        "title": title,
        "status": "ACTIVE",
        "published": True,
        "available": True,
        "eligible": True,
        "price_min": 10,
        "price_max": 10,
        "currency": "USD",
        "url": f"https://{store.shop_domain.split('.')[0]}.example/products/p-{number}",
        "content_hash": text_hash,
        "embedded_hash": text_hash if vector is not None else "",
        "vector": vector.astype(np.float32).tobytes() if vector is not None else None,
    }
    values.update(fields)
    return Product.objects.create(store=store, **values)


def seed_exchange_history(
    store: Store,
    partners: Sequence[Store],
    *,
    days: int,
    per_day: int,
    billable: Callable[[int], bool],
) -> None:
    """``days`` of traffic sent by ``store``: ``per_day`` clicks and viewable impressions a
    day, spread over ``partners``, the n-th click of a day billable when ``billable(n)``,
    with the ledger entry record_click writes for each billable one."""
    now = timezone.now()
    clicks, impressions, entries = [], [], []
    for day in range(days):
        at = now - timedelta(days=day)  # day 0 is today, whatever the time
        for n in range(per_day):
            partner, paid = partners[n % len(partners)], billable(n)
            clicks.append(Click(source_store=store, target_store=partner, target_product_id=n,
                                impression_id=f"{day}-{n}", token_id=f"{day}-{n}",
                                visitor_hash=str(n), billable=paid,
                                reason="billable" if paid else "bot", created_at=at))  # fmt: skip
            impressions.append(Impression(store=store, impression_id=f"{day}-{n}",
                                          visitor_hash=str(n), items=4, partner_items=3,
                                          created_at=at))  # fmt: skip
            if paid:
                entries.append(LedgerEntry(store=store, kind=LedgerEntry.Kind.EARN,
                                           amount=EARN_PER_CLICK, counterparty=partner,
                                           created_at=at))  # fmt: skip
    Click.objects.bulk_create(clicks, batch_size=5000)
    Impression.objects.bulk_create(impressions, batch_size=5000)
    LedgerEntry.objects.bulk_create(entries, batch_size=5000)
