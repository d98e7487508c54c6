"""How catalog changes reach the index: an append-only log of events every serving process
applies, and the full rebuild that folds them into a fresh published version."""

from __future__ import annotations

import fcntl
import logging
from collections.abc import Iterable
from datetime import datetime, timedelta

import numpy as np
from django.conf import settings
from django.db import transaction
from django.db.models import Max, QuerySet
from django.db.models.functions import Now
from django.utils import timezone

from recommender.models import IndexEvent, Product
from recommender.ranking import relevance
from recommender.ranking.embedding import DIMENSIONS
from recommender.ranking.index import VectorIndex, published_meta
from recommender.ranking.live_index import LEXICAL_FIELDS, SETTLED_AFTER, lexical_text_of
from stores.models import Store

log = logging.getLogger(__name__)


def emit_index_events(kind: str, products: Iterable[tuple[int, int]]) -> None:
    """Record (product pk, store pk) changes for every process's index to apply."""
    events = [IndexEvent(product_id=pk, store_id=store_id, kind=kind) for pk, store_id in products]
    if events:
        IndexEvent.objects.bulk_create(events, batch_size=1000)


def delete_products(queryset: QuerySet[Product]) -> int:
    """Delete products and take them out of the index."""
    doomed = list(queryset.values_list("pk", "store_id"))
    if not doomed:
        return 0
    with transaction.atomic():
        Product.objects.filter(pk__in=[pk for pk, _ in doomed]).delete()
        emit_index_events(IndexEvent.Kind.REMOVE, doomed)
    return len(doomed)


# Applied events are kept this long after the published index folded them in.
APPLIED_EVENT_RETENTION = timedelta(days=1)


def prune_applied_events(*, now: datetime | None = None) -> int:
    """Delete events the published index already holds (at or below its watermark) once
    they are a day old: every process loads that version and applies only what is newer."""
    meta = published_meta(settings.RECOMMENDER_INDEX_DIR)
    if meta is None:
        return 0
    now = now or timezone.now()
    deleted, _ = IndexEvent.objects.filter(
        id__lte=meta["watermark"], created_at__lt=now - APPLIED_EVENT_RETENTION
    ).delete()
    return deleted


def rebuild_index(*, exact_limit: int | None = None, keep_old_versions: bool = True) -> VectorIndex:
    """Build the whole index aside from the database and publish it atomically; serving
    processes pick it up on their next poll. Never runs on a web request.

    ``keep_old_versions=False`` deletes every older version at once (a redaction: they
    hold vectors that must go), instead of keeping a couple for processes mid-load."""
    root = settings.RECOMMENDER_INDEX_DIR
    root.mkdir(parents=True, exist_ok=True)
    # One build at a time per index directory: a build that read the products before a
    # redaction must not publish after the redaction's own rebuild.
    with open(root / ".rebuild.lock", "w") as lock_file:
        fcntl.flock(lock_file, fcntl.LOCK_EX)
        return _build_and_publish(root, exact_limit, keep_old_versions)


def _build_and_publish(root, exact_limit: int | None, keep_old_versions: bool) -> VectorIndex:
    # Only settled events are folded in by the watermark: a later one that commits out of
    # id order is applied on top by every process (it reads current state, so re-applying
    # what the build already holds is harmless).
    settled = IndexEvent.objects.filter(created_at__lte=Now() - SETTLED_AFTER)  # its clock
    watermark = settled.aggregate(last=Max("id"))["last"] or 0
    rows = Product.objects.filter(
        Product.OFFERED, store__status=Store.Status.ACTIVE, vector__isnull=False
    ).values_list("pk", "store_id", "vector", "category_id", *LEXICAL_FIELDS)
    ids, stores, vectors, categories, texts = [], [], [], [], []
    for pk, store_id, vector, category, *lexical in rows.iterator(chunk_size=5000):
        ids.append(pk)
        stores.append(store_id)
        vectors.append(np.frombuffer(vector, dtype=np.float32))
        categories.append(category)
        texts.append(lexical_text_of(*lexical))
    matrix = np.vstack(vectors) if vectors else np.zeros((0, DIMENSIONS), dtype=np.float32)
    index = VectorIndex.build(
        matrix,
        ids,
        stores,
        exact_limit=exact_limit or settings.RECOMMENDER_EXACT_INDEX_LIMIT,
        watermark=watermark,
        texts=texts,
    )
    table = relevance.unrelated_cosines(matrix, np.asarray(stores), categories)
    index.calibration = relevance.Calibration(table)
    index.save(root, spare_versions=2 if keep_old_versions else 0)
    log.info("index rebuilt size=%s kind=%s watermark=%s", len(index), index.kind, watermark)
    return index
