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
from datetime import timedelta
from pathlib import Path

import numpy as np
from django.conf import settings
from django.db import close_old_connections
from django.db.models import BooleanField, ExpressionWrapper, Q
from django.db.models.functions import Now

from recommender import runtime
from recommender.models import IndexEvent, Product
from recommender.ranking.index import (
    VectorIndex,
    current_version,
    saved_at,
    versions_newest_first,
)
from recommender.ranking.lexical import lexical_text
from stores.models import Store

log = logging.getLogger(__name__)

# Every transaction that writes index events commits well within this: events older than
# it are visible to everyone, so the watermark may pass them.
SETTLED_AFTER = timedelta(minutes=5)
# The product columns its lexical text is made of (lexical_text_of takes them in this order).
LEXICAL_FIELDS = ("title", "vendor", "product_type")


def lexical_text_of(title: str, vendor: str, product_type: str) -> str:
    return lexical_text(title=title, vendor=vendor, product_type=product_type)


class _Holder:
    def __init__(self, root: Path):
        self.root = root
        self.index: VectorIndex | None = None
        self.version: str | None = None
        self.loaded_at = 0.0
        self.lock = threading.Lock()
        self.thread: threading.Thread | None = None
        self.stopped = threading.Event()
        self.unreadable: str | None = None  # the published version last found damaged
        self.unreadable_at = 0.0  # when (monotonic): tried again RECOMMENDER_INDEX_RETRY_SECONDS on

    def _load(self, version: str) -> None:
        """The published version; or, when its files cannot be read (a crash just after it
        was published, a damaged disk), the index this process holds, or else the newest
        older version it can read. Events are applied on top of whichever, and the next
        rebuild's version is loaded when it is published."""
        if self._took(version):
            self.unreadable = None
            return
        self.unreadable, self.unreadable_at = version, time.monotonic()
        if self.index is not None:
            return
        for older in versions_newest_first(self.root):
            if saved_at(older) < saved_at(version) and self._took(older):
                return

    def _passed_over(self, version: str) -> bool:
        """A version found unreadable is not tried on every poll (each try reads its files
        and logs), but again after a while: the cause may have passed."""
        retry_after = settings.RECOMMENDER_INDEX_RETRY_SECONDS
        return version == self.unreadable and time.monotonic() - self.unreadable_at < retry_after

    def _took(self, version: str) -> bool:
        started = time.monotonic()
        try:
            loaded = VectorIndex.load(self.root, version)
        except Exception:
            log.exception("index version could not be loaded version=%s", version)
            return False
        if loaded is None:
            return False
        self.index, self.version, self.loaded_at = loaded, version, time.time()
        log.info(
            "index loaded version=%s size=%s kind=%s in %.2fs",
            version, len(loaded), loaded.kind, time.monotonic() - started,
        )  # fmt: skip
        return True

    def refresh(self) -> None:
        with self.lock:
            version = current_version(self.root)
            if version and version != self.version and not self._passed_over(version):
                self._load(version)
            if self.index is None:
                self.index = VectorIndex.empty()
                self.version = None
            apply_events(self.index)
            if self.index.needs_compaction():
                # Searches go on against the old object until the swap; events wait for
                # this lock, so none lands in the old one after its copy was taken.
                started, dead = time.monotonic(), self.index.dead_count
                self.index = self.index.compacted()
                log.info("index compacted dead=%s in %.2fs", dead, time.monotonic() - started)

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
    polling = settings.RECOMMENDER_INDEX_POLL_SECONDS > 0
    # The first use in a serving process catches up with what was published or changed
    # since a warm-up loaded the index, before the refresh thread takes over.
    if refresh or holder.index is None or (polling and holder.thread is None):
        holder.refresh()
    if not refresh and polling:
        holder.start_polling()
    return holder.index


def warm_up() -> None:
    """Load the index and its lexical rows now, without starting the refresh thread (the
    first ``current()`` does, in the process that serves): a web process calls this as it
    starts, so its first storefront page does not wait for them."""
    index = current(refresh=True)
    if index.lexical is not None:
        index.lexical.warm_up()


def status() -> dict:
    holder = _holder()
    index = holder.index
    if index is None:  # not "if not index": an index with nothing in it is still loaded
        return {"loaded": False, "version": None, "size": 0, "kind": None, "built_at": None,
                "watermark": 0}  # fmt: skip
    return {
        "loaded": True,
        "version": holder.version,
        "size": len(index),
        "kind": index.kind,
        "built_at": index.built_at,
        "watermark": index.watermark,
    }


def products_waiting() -> bool:
    """Whether any product is ready to be searched (embedded, eligible, of an active store)."""
    return Product.objects.filter(
        Product.OFFERED, store__status=Store.Status.ACTIVE, vector__isnull=False
    ).exists()


def apply_events(index: VectorIndex, *, batch: int = 5000) -> int:
    """Apply the IndexEvents this index has not applied yet; returns how many.

    Event ids come from a sequence, so they are assigned when a transaction inserts, not
    when it commits: on PostgreSQL a lower id can become visible after a higher one was
    applied. So every event is applied by id, exactly once, not "above the highest seen":
    the index remembers which ids above its watermark it has applied, and the watermark
    only moves past events older than ``SETTLED_AFTER`` (no transaction of ours stays open
    that long). An event says "this product changed"; applying it reads the product's
    current state, so the order events are applied in does not matter.
    """
    applied = 0
    cursor = index.watermark
    # Settled by the database's clock, which wrote the events' times (no machine's own).
    is_settled = ExpressionWrapper(
        Q(created_at__lte=Now() - SETTLED_AFTER), output_field=BooleanField()
    )
    settled: list[int] = []
    while True:
        events = list(
            IndexEvent.objects.filter(id__gt=cursor)
            .order_by("id")
            .values_list("id", "product_id", is_settled)[:batch]
        )
        if not events:
            break
        cursor = events[-1][0]
        settled += [event_id for event_id, _, old_enough in events if old_enough]
        fresh = [(event_id, pid) for event_id, pid, _ in events if event_id not in index.applied]
        if fresh:
            _apply_current_state(index, {pid for _, pid in fresh})
            index.applied.update(event_id for event_id, _ in fresh)
            applied += len(fresh)
    if settled:
        index.watermark = max(index.watermark, max(settled))
        index.applied = {event_id for event_id in index.applied if event_id > index.watermark}
    return applied


def _apply_current_state(index: VectorIndex, product_ids: set[int]) -> None:
    """In the index exactly when searchable now: eligible, not opted out, embedded."""
    rows = Product.objects.filter(
        Product.OFFERED, pk__in=product_ids, vector__isnull=False
    ).values_list("pk", "store_id", "vector", *LEXICAL_FIELDS)
    found = {pk: (store, vector, lexical_text_of(*lexical)) for pk, store, vector, *lexical in rows}
    to_add = sorted(found)
    if to_add:
        vectors = np.vstack([np.frombuffer(found[pid][1], dtype=np.float32) for pid in to_add])
        index.upsert(
            vectors, to_add, [found[pid][0] for pid in to_add], [found[pid][2] for pid in to_add]
        )
    index.remove(product_ids - set(found))
