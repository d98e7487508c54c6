"""The index each process serves from.

Loaded from disk at first use (never built on a request), swapped when a rebuild publishes
a new version, and kept current by applying ``IndexEvent``s newer than its watermark, so a
product change is searchable in every web process within seconds. A daemon thread does the
polling; ``current(refresh=True)`` does it inline (commands, tests).
"""

from __future__ import annotations

import logging
import threading
import time
from pathlib import Path

import numpy as np
from django.conf import settings
from django.db import close_old_connections

from recommender import runtime
from recommender.models import IndexEvent, Product
from recommender.ranking.index import VectorIndex, current_version
from stores.models import Store

log = logging.getLogger(__name__)


class _Holder:
    def __init__(self, root: Path):
        self.root = root
        self.index: VectorIndex | None = None
        self.version: str | None = None
        self.loaded_at = 0.0
        self.lock = threading.Lock()
        self.thread: threading.Thread | None = None
        self.stopped = threading.Event()

    def refresh(self) -> None:
        with self.lock:
            version = current_version(self.root)
            if version and version != self.version:
                started = time.monotonic()
                loaded = VectorIndex.load(self.root)
                if loaded is not None:
                    self.index, self.version, self.loaded_at = loaded, version, time.time()
                    log.info(
                        "index loaded version=%s size=%s kind=%s in %.2fs",
                        version, len(loaded), loaded.kind, time.monotonic() - started,
                    )  # fmt: skip
            if self.index is None:
                self.index = VectorIndex.empty()
                self.version = None
            apply_events(self.index)

    def start_polling(self) -> None:
        if self.thread is not None:
            return
        interval = settings.RECOMMENDER_INDEX_POLL_SECONDS

        def loop() -> None:
            while not self.stopped.wait(interval):
                try:
                    self.refresh()
                except Exception:  # keep serving the index we have; log why it did not move
                    log.exception("index refresh failed")
                finally:
                    close_old_connections()

        self.thread = threading.Thread(target=loop, name="index-refresh", daemon=True)
        self.thread.start()

    def stop(self) -> None:
        self.stopped.set()


def _holder() -> _Holder:
    root = str(settings.RECOMMENDER_INDEX_DIR)
    with runtime.index_holders_lock:
        if root not in runtime.index_holders:
            runtime.index_holders[root] = _Holder(Path(root))
        return runtime.index_holders[root]


def current(*, refresh: bool = False) -> VectorIndex:
    holder = _holder()
    if refresh or holder.index is None:
        holder.refresh()
    if not refresh and settings.RECOMMENDER_INDEX_POLL_SECONDS > 0:
        holder.start_polling()
    return holder.index


def status() -> dict:
    holder = _holder()
    index = holder.index
    return {
        "loaded": index is not None,
        "version": holder.version,
        "size": len(index) if index else 0,
        "kind": index.kind if index else None,
        "built_at": index.built_at if index else None,
        "watermark": index.watermark if index else 0,
    }


def products_waiting() -> bool:
    """Whether any product is ready to be searched (embedded, eligible, of an active store)."""
    return Product.objects.filter(
        store__status=Store.Status.ACTIVE, eligible=True, opted_out=False, vector__isnull=False
    ).exists()


def apply_events(index: VectorIndex, *, batch: int = 5000) -> int:
    """Apply IndexEvents newer than the index's watermark; returns how many."""
    applied = 0
    while True:
        events = list(
            IndexEvent.objects.filter(id__gt=index.watermark)
            .order_by("id")
            .values_list("id", "product_id", "kind")[:batch]
        )
        if not events:
            return applied
        upserts = {pid for _, pid, kind in events if kind == IndexEvent.Kind.UPSERT}
        rows = Product.objects.filter(
            pk__in=upserts, eligible=True, opted_out=False, vector__isnull=False
        ).values_list("pk", "store_id", "vector")
        found = {pk: (store, vector) for pk, store, vector in rows}
        # Last event wins; an upsert whose product is gone or ineligible is a removal.
        final: dict[int, str] = {}
        for _, pid, kind in events:
            final[pid] = kind
        to_add = [
            pid for pid, kind in final.items() if kind == IndexEvent.Kind.UPSERT and pid in found
        ]
        adding = set(to_add)
        to_remove = [pid for pid in final if pid not in adding]
        if to_add:
            vectors = np.vstack([np.frombuffer(found[pid][1], dtype=np.float32) for pid in to_add])
            index.upsert(vectors, to_add, [found[pid][0] for pid in to_add])
        index.remove(to_remove)
        index.watermark = events[-1][0]
        applied += len(events)
