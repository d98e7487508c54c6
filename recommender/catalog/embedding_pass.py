"""The embedding pass: vectors for every eligible product whose text changed, debounced
so a burst of edits is embedded once, announced to the index by events."""

from __future__ import annotations

import logging
import threading
import time
from concurrent.futures import Future, ThreadPoolExecutor

import numpy as np
from django.conf import settings
from django.db import connection, transaction
from django.db.models import F, Max
from django.utils import timezone

from interlayer.queue import enqueue
from recommender.catalog.index_events import emit_index_events
from recommender.catalog.products import embedding_text
from recommender.models import CatalogSync, IndexEvent, Product
from recommender.ranking import embedding
from stores.models import Store

log = logging.getLogger(__name__)


def get_embedder() -> embedding.Embedder:
    return embedding.load_embedder(
        settings.RECOMMENDER_EMBEDDER,
        str(settings.RECOMMENDER_MODEL_DIR),
        settings.RECOMMENDER_EMBED_THREADS,
    )


def request_embedding(store: Store) -> None:
    """Queue one embedding pass for the store unless one is already queued (debounce)."""
    sync, _ = CatalogSync.objects.get_or_create(store=store)
    if CatalogSync.objects.filter(pk=sync.pk, embed_queued=False).update(embed_queued=True):
        transaction.on_commit(
            lambda: enqueue(
                "recommender.tasks.embed_store", store.pk, task_name=f"embed:{store.pk}"
            )
        )


def wait_for_quiet(store: Store) -> None:
    """Let a burst of webhooks settle so a product updated five times is embedded once."""
    quiet = settings.RECOMMENDER_EMBED_QUIET_SECONDS
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        last = Product.objects.filter(store=store).aggregate(last=Max("updated_at"))["last"]
        if last is None or (timezone.now() - last).total_seconds() >= quiet:
            return
        time.sleep(min(quiet, 0.5))


def embed_store(store: Store, *, batch: int = 256) -> int:
    """Embed every eligible product whose text changed since its vector was made.

    Pipelined: while one batch is encoded (a helper thread; the encoder's own threads do
    the work outside the GIL), the next is read and the one before is saved, so the
    encoder never waits on the database (measured: about 0.1 s between 256-text batches
    before, bench/catalog_sync.py). Only this thread touches the database."""
    CatalogSync.objects.filter(store=store).update(embed_queued=False)
    pending = Product.objects.filter(store=store, eligible=True).exclude(
        embedded_hash=F("content_hash")
    )

    def after(pk: int) -> list[Product]:
        return list(pending.filter(pk__gt=pk).order_by("pk")[:batch])

    products = after(0)
    if not products:
        return 0
    embedder = get_embedder()
    done = 0
    with ThreadPoolExecutor(1, thread_name_prefix="embed-ahead") as ahead:

        def encode(chosen: list[Product]) -> Future[np.ndarray]:
            return ahead.submit(embedder.encode, [embedding_text(p.__dict__) for p in chosen])

        encoding = encode(products)
        while products:
            following = after(products[-1].pk)
            vectors = encoding.result()
            if following:
                encoding = encode(following)
            # Saved and announced together: vectors saved unannounced are no longer pending,
            # so no pass would embed them again, and no process would ever index them.
            with transaction.atomic():
                _save_vectors(products, vectors)
                emit_index_events(IndexEvent.Kind.UPSERT, [(p.pk, p.store_id) for p in products])
            done += len(products)
            if not following:
                # Products changed meanwhile below the last one read: the pass ends when
                # nothing is pending at all.
                following = after(0)
                if following:
                    encoding = encode(following)
            products = following
    CatalogSync.objects.filter(store=store).update(embeddings_total=F("embeddings_total") + done)
    log.info("embedded shop=%s products=%s", store.shop_domain, done)
    return done


class EmbeddingAlongside:
    """Embeds a store's changed products while its catalog is still being read.

    The read mostly waits (on Shopify: a bulk operation, the leaky bucket; on the
    database) and the embedder mostly computes, outside the GIL, so a first sync takes
    about as long as the longer of the two instead of their sum. The reader calls
    ``wake()`` after each committed batch; a thread embeds whatever is pending then.
    What it has not reached when the read ends is left to the caller's ``embed_store``.
    Only where other connections see the reader's rows at once and may write beside it:
    not inside a caller's transaction, not on SQLite (one writer at a time)."""

    def __init__(self, store: Store):
        self.store = store
        self._wakeup = threading.Event()
        self._stopped = threading.Event()
        self._thread: threading.Thread | None = None
        self.embedded = 0

    def __enter__(self) -> EmbeddingAlongside:
        if connection.vendor != "sqlite" and not connection.in_atomic_block:
            self._thread = threading.Thread(
                target=self._run, name=f"embed-alongside:{self.store.pk}", daemon=True
            )
            self._thread.start()
        return self

    def wake(self) -> None:
        self._wakeup.set()

    def __exit__(self, *exc_info) -> None:
        self._stopped.set()
        self._wakeup.set()
        if self._thread is not None:
            self._thread.join()

    def _run(self) -> None:
        try:
            while True:
                self._wakeup.wait()
                self._wakeup.clear()
                if self._stopped.is_set():
                    return
                self.embedded += embed_store(self.store)
        except Exception:  # the caller's own pass after the read embeds what this missed
            log.exception("embedding alongside the sync failed shop=%s", self.store.shop_domain)
        finally:
            connection.close()  # this thread's own connection


def _save_vectors(products: list[Product], vectors: np.ndarray) -> None:
    """One pipelined executemany: Django's bulk_update builds a CASE per column and row,
    which is slow for a few hundred 1.5 KB vectors."""
    now = timezone.now()
    rows = [
        (vector.astype("float32").tobytes(), product.content_hash, now, product.pk)
        for product, vector in zip(products, vectors, strict=True)
    ]
    table = Product._meta.db_table
    with transaction.atomic(), connection.cursor() as cursor:
        cursor.executemany(
            f"UPDATE {table} SET vector = %s, embedded_hash = %s, embedded_at = %s WHERE id = %s",  # noqa: S608 - table name from the model
            rows,
        )
