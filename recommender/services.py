"""Recommender services: what writes catalog, vector, index and settings state."""

from __future__ import annotations

import logging
from collections.abc import Iterable

import numpy as np
from django.conf import settings
from django.db import transaction
from django.db.models import Max

from recommender.index import VectorIndex
from recommender.models import CatalogSync, IndexEvent, Product, WidgetSettings
from stores.models import Store

log = logging.getLogger(__name__)


def emit_index_events(kind: str, products: Iterable[tuple[int, int]]) -> None:
    """Record (product pk, store pk) changes for every process's index to apply."""
    events = [IndexEvent(product_id=pk, store_id=store_id, kind=kind) for pk, store_id in products]
    if events:
        IndexEvent.objects.bulk_create(events, batch_size=1000)


def delete_products(queryset) -> int:
    """Delete products and take them out of the index."""
    doomed = list(queryset.values_list("pk", "store_id"))
    if not doomed:
        return 0
    with transaction.atomic():
        Product.objects.filter(pk__in=[pk for pk, _ in doomed]).delete()
        emit_index_events(IndexEvent.Kind.REMOVE, doomed)
    return len(doomed)


def purge_store_data(store: Store) -> None:
    """Delete everything of a redacted store but its partners' ledger entries (and the
    clicks those entries point to, which hold only hashed visitors and product ids)."""
    delete_products(Product.objects.filter(store=store))
    CatalogSync.objects.filter(store=store).delete()
    WidgetSettings.objects.filter(store=store).delete()
    from recommender.models import Impression

    Impression.objects.filter(store=store).delete()


def widget_settings_for(store: Store) -> WidgetSettings:
    settings_row, _ = WidgetSettings.objects.get_or_create(store=store)
    return settings_row


def rebuild_index(*, exact_limit: int | None = None) -> VectorIndex:
    """Build the whole index aside from the database and publish it atomically; serving
    processes pick it up on their next poll. Never runs on a web request."""
    watermark = IndexEvent.objects.aggregate(last=Max("id"))["last"] or 0
    rows = Product.objects.filter(
        store__status=Store.Status.ACTIVE, eligible=True, opted_out=False, vector__isnull=False
    ).values_list("pk", "store_id", "vector")
    ids, stores, vectors = [], [], []
    for pk, store_id, vector in rows.iterator(chunk_size=5000):
        ids.append(pk)
        stores.append(store_id)
        vectors.append(np.frombuffer(vector, dtype=np.float32))
    matrix = np.vstack(vectors) if vectors else np.zeros((0, 384), dtype=np.float32)
    index = VectorIndex.build(
        matrix,
        ids,
        stores,
        exact_limit=exact_limit or settings.RECOMMENDER_EXACT_INDEX_LIMIT,
        watermark=watermark,
    )
    index.save(settings.RECOMMENDER_INDEX_DIR)
    log.info("index rebuilt size=%s kind=%s watermark=%s", len(index), index.kind, watermark)
    return index


def update_widget_settings(*, store: Store, actor: str, cleaned: dict) -> WidgetSettings:
    """Apply a validated settings form and record what changed, by whom."""
    from recommender.models import SettingsChange

    with transaction.atomic():
        widget = WidgetSettings.objects.select_for_update().get_or_create(store=store)[0]
        changes: dict[str, list] = {}
        for field in ("enabled", "title", "items", "own_share", "placement", "accent_color",
                      "text_color", "background_color", "avoid_competitors", "excluded_categories"):  # fmt: skip
            old, new = getattr(widget, field), cleaned[field]
            if old != new:
                changes[field] = [old, new]
                setattr(widget, field, new)
        blocked_before = set(widget.blocked_stores.values_list("shop_domain", flat=True))
        blocked_after = {s.shop_domain for s in cleaned["blocked_stores"]}
        if blocked_before != blocked_after:
            widget.blocked_stores.set(cleaned["blocked_stores"])
            changes["blocked_stores"] = [
                sorted(blocked_before - blocked_after),
                sorted(blocked_after - blocked_before),
            ]
        if changes:
            widget.save()
            SettingsChange.objects.create(store=store, actor=actor, changes=changes)
    return widget


def set_products_opted_out(
    *, store: Store, actor: str, shopify_ids: list[int], opted_out: bool
) -> int:
    """Take products out of the network (or back in); the index follows at once."""
    from recommender.models import SettingsChange

    with transaction.atomic():
        products = Product.objects.filter(store=store, shopify_id__in=shopify_ids).exclude(
            opted_out=opted_out
        )
        changed = list(products.values_list("pk", "shopify_id"))
        if not changed:
            return 0
        Product.objects.filter(pk__in=[pk for pk, _ in changed]).update(opted_out=opted_out)
        kind = IndexEvent.Kind.REMOVE if opted_out else IndexEvent.Kind.UPSERT
        emit_index_events(kind, [(pk, store.pk) for pk, _ in changed])
        SettingsChange.objects.create(
            store=store,
            actor=actor,
            changes={"opted_out" if opted_out else "opted_in": sorted(sid for _, sid in changed)},
        )
    return len(changed)
