"""The cross-store vector index: FAISS, plain NumPy, no Django.

Labels are FAISS's own sequential ids. A build inserts products grouped by store, so each
store owns one contiguous label range; excluding the host and blocked stores is then a
handful of ``IDSelectorRange``s checked during the search (cheap, and recall holds because
exclusions remove little). Products added after the build go to a tail whose labels are
listed per store; changed or removed products are marked dead and skipped the same way.
A periodic rebuild folds the tail back into ranges.

Exact search (``IndexFlatIP``) while the network is small; an inverted-file index
(``IndexIVFFlat``, nlist = 4 sqrt(n), nprobe 32, 16 from about 500k vectors) beyond
``EXACT_LIMIT`` vectors. IVF rather than HNSW because of what the exclusion does here: the
host store's products are the query's nearest neighbours, and HNSW's bounded candidate list
fills with those excluded nodes (measured: recall@10 0.78 at 100k with efSearch 64, 0.87
at 400), while IVF scans whole lists and skips excluded ids without losing the rest (0.968
at nprobe 32).

Beside the vectors, with the same labels, a lexical index (``lexical.LexicalIndex``) scores
model numbers and title words. A search given the query's text fuses the two: the dense
neighbours and the lexical ones are pooled and ranked by cosine + ``LEXICAL_WEIGHT`` *
lexical score, so lexical evidence only ever adds to what the embedding says.

A saved index is loaded memory-mapped (FAISS ``IO_FLAG_MMAP``: the inverted lists, or the
flat codes, stay in the file; the label arrays with ``np.load(mmap_mode="r")``), so every
process on a machine reads one copy through the page cache instead of holding its own.
Mapped data is read-only: products added after the load go to a small per-process tail of
vectors beside it, searched exactly and merged into every result.
"""

from __future__ import annotations

import json
import math
import os
import re
import shutil
import threading
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType

import numpy as np

from recommender.ranking.embedding import DIMENSIONS
from recommender.ranking.lexical import LexicalIndex
from recommender.ranking.relevance import Calibration

# Exact search up to this many vectors, IVF beyond (the default of the
# RECOMMENDER_EXACT_INDEX_LIMIT setting).
EXACT_LIMIT = 50_000
# Inverted lists probed per query. nlist grows as 4 sqrt(n), so a large index holds the
# same recall with fewer lists probed (bench/index_latency.py, filtered top-10): 32 at 100k
# vectors gives recall@10 0.968 (16 would give 0.918); 16 at 1M gives 0.973 with p99 at
# 1/64 of exact search's p50 (32 gives 0.989 at 1/37); on real product vectors scaled to 1M
# with store structure (--distribution real) 16 gives 0.997 at 1/85-1/82.
IVF_NPROBE = 32
IVF_NPROBE_LARGE = 16
LARGE_INDEX_LISTS = 2_800  # about 500k vectors
# Replaced and removed products leave dead labels that every search must skip; past this
# many (and a tenth of the index) the serving index is compacted (live_index does it).
COMPACT_AFTER_DEAD = 10_000
IVF_TRAINING_POINTS_PER_LIST = 40
# Fused score = cosine + LEXICAL_WEIGHT * lexical score: ranks as 0.2 dense + 0.8 lexical,
# the blend that found the same product best on the WDC development set
# (bench/relevance.py prints it against the dense, TF-IDF and 50/50 baselines).
LEXICAL_WEIGHT = 4.0


@dataclass(frozen=True)
class Hit:
    product_id: int
    store_id: int
    score: float  # what it ranks by: the cosine, plus lexical evidence when a text was given
    similarity: float | None = None  # the embedding's cosine alone (None: same as score)
    lexical: float = 0.0

    @property
    def cosine(self) -> float:
        return self.score if self.similarity is None else self.similarity


class VectorIndex:
    def __init__(
        self,
        faiss_index,
        product_ids: np.ndarray,
        store_ids: np.ndarray,
        *,
        kind: str,
        built_at: float,
        watermark: int = 0,
        build_size: int | None = None,
        lexical: LexicalIndex | None = None,
    ):
        self._index = faiss_index
        # None when the rows are not aligned with the labels (an index saved before lexical
        # matching): searches are then dense only until the next build.
        self.lexical = lexical if lexical is not None and len(lexical) == len(product_ids) else None
        # What a cosine means in this network (relevance.py); set by the index build.
        self.calibration = Calibration()
        self.kind = kind
        self.built_at = built_at
        # Index events with ids up to the watermark are folded in; ids above it that were
        # applied too are listed (they can commit out of id order: live_index.apply_events).
        self.watermark = watermark
        self.applied: set[int] = set()
        self._products = _Column(product_ids)
        self._stores = _Column(store_ids)
        # Vectors added while the FAISS index is read-only (memory-mapped), labels from
        # its ntotal on; kept in blocks, joined on first use after a change.
        self._mapped = False
        self._added: list[np.ndarray] = []
        self._added_matrix: np.ndarray | None = None
        # Labels below build_size were inserted grouped by store (one range each); the rest
        # were added later and are listed per store (a saved index keeps both apart).
        self._build_size = len(product_ids) if build_size is None else build_size
        built = store_ids[: self._build_size]
        self._ranges: dict[int, tuple[int, int]] = {}
        for store in np.unique(built):
            labels = np.flatnonzero(built == store)
            self._ranges[int(store)] = (int(labels[0]), int(labels[-1]) + 1)
        self._label_of = _LabelMap(product_ids)
        self._tail: dict[int, list[int]] = {}  # store -> labels added after the build
        for label in range(self._build_size, len(product_ids)):
            self._tail.setdefault(int(store_ids[label]), []).append(label)
        self._dead: set[int] = set()
        self._dead_array: np.ndarray | None = None  # the dead set as FAISS takes it, cached
        # Store centroids, computed on first use and dropped when the store's vectors change.
        self._profiles: dict[int, np.ndarray | None] = {}
        self._lock = threading.RLock()

    # --- building ---------------------------------------------------------------------
    @classmethod
    def build(
        cls,
        vectors: np.ndarray,
        product_ids: Sequence[int],
        store_ids: Sequence[int],
        *,
        exact_limit: int = EXACT_LIMIT,
        watermark: int = 0,
        texts: Sequence[str] | None = None,
    ) -> VectorIndex:
        """``texts`` (one per product, ``lexical.lexical_text``) enable lexical matching."""
        faiss = _faiss()
        products = np.asarray(product_ids, dtype=np.int64)
        stores = np.asarray(store_ids, dtype=np.int64)
        order = np.lexsort((products, stores))  # group by store, stable inside
        vectors = np.ascontiguousarray(vectors[order], dtype=np.float32)
        dimensions = vectors.shape[1] if vectors.size else DIMENSIONS
        if len(vectors) <= exact_limit:
            index, kind = faiss.IndexFlatIP(dimensions), "exact"
            if len(vectors):
                index.add(vectors)
        else:
            index, kind = _build_ivf(vectors), "ivf"
        lexical = (
            None if texts is None else LexicalIndex.build([texts[i] for i in order], stores[order])
        )
        return cls(
            index,
            products[order],
            stores[order],
            kind=kind,
            built_at=time.time(),
            watermark=watermark,
            lexical=lexical,
        )

    @classmethod
    def empty(cls) -> VectorIndex:
        """An index with nothing in it (before the first build is published)."""
        return cls.build(np.zeros((0, DIMENSIONS), np.float32), [], [], exact_limit=0, texts=[])

    def __len__(self) -> int:
        return len(self._label_of)

    @property
    def memory_bytes(self) -> int:
        faiss = _faiss()
        added = sum(block.nbytes for block in self._added)
        if self._mapped:  # the mapped file's size, without reading it all into memory
            return int(self._index.ntotal * self._index.d * 4) + added
        return int(faiss.serialize_index(self._index).nbytes) + added if self._index.ntotal else 0

    @property
    def _total(self) -> int:
        return self._index.ntotal + sum(len(block) for block in self._added)

    def _add_vectors(self, vectors: np.ndarray) -> None:
        if self._mapped:
            self._added.append(vectors)
            self._added_matrix = None
        else:
            self._index.add(vectors)

    def _vectors(self, labels) -> np.ndarray:
        """The vectors of these labels, from the FAISS index or the added tail."""
        labels = np.asarray(labels, dtype=np.int64).ravel()
        out = np.empty((len(labels), self._index.d), dtype=np.float32)
        inside = labels < self._index.ntotal
        if inside.any():
            out[inside] = self._index.reconstruct_batch(labels[inside])
        if not inside.all():
            out[~inside] = self._added_vectors()[labels[~inside] - self._index.ntotal]
        return out

    def _added_vectors(self) -> np.ndarray:
        if self._added_matrix is None:
            self._added_matrix = (
                np.vstack(self._added) if self._added else np.zeros((0, self._index.d), np.float32)
            )
        return self._added_matrix

    # --- incremental changes ------------------------------------------------------------
    def upsert(
        self,
        vectors: np.ndarray,
        product_ids: Sequence[int],
        store_ids: Sequence[int],
        texts: Sequence[str] | None = None,
    ):
        """Add or replace products: a replaced product's old label is marked dead."""
        if not len(product_ids):
            return
        vectors = np.ascontiguousarray(vectors, dtype=np.float32)
        with self._lock:
            start = self._total
            self._add_vectors(vectors)
            if self.lexical is not None:
                self.lexical.append(
                    texts if texts is not None else [""] * len(product_ids), store_ids
                )
            for offset, (product, store) in enumerate(zip(product_ids, store_ids, strict=True)):
                self._profiles.pop(int(store), None)
                old = self._label_of.get(int(product))
                if old is not None:
                    self._dead.add(old)
                    self._dead_array = None
                label = start + offset
                self._label_of[int(product)] = label
                self._products.append(int(product))
                self._stores.append(int(store))
                self._tail.setdefault(int(store), []).append(label)

    def remove(self, product_ids: Iterable[int]) -> None:
        with self._lock:
            for product in product_ids:
                label = self._label_of.pop(int(product), None)
                if label is not None:
                    self._dead.add(label)
                    self._dead_array = None
                    self._profiles.pop(int(self._stores[label]), None)

    def vector(self, product_id: int) -> np.ndarray | None:
        label = self._label_of.get(int(product_id))
        return None if label is None else self._vectors([label])[0]

    def store_ids(self) -> set[int]:
        return set(self._ranges) | set(self._tail)

    def store_vectors(self, store_id: int) -> tuple[list[int], np.ndarray]:
        """The live products of one store and their vectors (for profiles, own products)."""
        with self._lock:
            start, end = self._ranges.get(store_id, (0, 0))
            # The build range comes back in one call; the (small) tail label by label.
            blocks = [self._index.reconstruct_n(start, end - start)] if end > start else []
            labels = list(range(start, end))
            tail = self._tail.get(store_id, [])
            if tail:
                blocks.append(self._vectors(tail))
                labels.extend(tail)
            if not labels:
                return [], np.zeros((0, self._index.d), dtype=np.float32)
            matrix = np.vstack(blocks)
            live = np.array([label not in self._dead for label in labels], dtype=bool)
            kept = [
                int(self._products[label]) for label, ok in zip(labels, live, strict=True) if ok
            ]
            return kept, matrix[live]

    def store_profile(self, store_id: int) -> np.ndarray | None:
        """The normalised centroid of a store's live vectors: what the store is about."""
        with self._lock:
            if store_id not in self._profiles:
                _, vectors = self.store_vectors(store_id)
                centroid = vectors.mean(axis=0) if len(vectors) else None
                self._profiles[store_id] = (
                    None
                    if centroid is None
                    else (centroid / max(np.linalg.norm(centroid), 1e-12)).astype(np.float32)
                )
            return self._profiles[store_id]

    # --- compaction ---------------------------------------------------------------------
    @property
    def dead_count(self) -> int:
        return len(self._dead)

    def needs_compaction(self) -> bool:
        return len(self._dead) > max(COMPACT_AFTER_DEAD, len(self) // 10)

    def compacted(self) -> VectorIndex:
        """The same live products in a fresh index: grouped by store again, no dead labels,
        no tail. An IVF index keeps its trained quantizer (no retraining)."""
        faiss = _faiss()
        # Copied under the lock; built outside it, so searches are not held up. The caller
        # makes no changes meanwhile (live_index compacts under its own refresh lock).
        with self._lock:
            products, labels = self._label_of.live()
            stores = self._stores.take(labels)
            order = np.lexsort((products, stores))
            products, labels, stores = products[order], labels[order], stores[order]
            vectors = self._vectors(labels)
            fresh = _empty_like(self._index) if self.kind == "ivf" else None
            watermark, applied = self.watermark, set(self.applied)
            lexical = None if self.lexical is None else self.lexical.take(labels)
        if fresh is not None:
            fresh.reset()
        else:
            fresh = faiss.IndexFlatIP(vectors.shape[1])
        if len(vectors):
            fresh.add(np.ascontiguousarray(vectors, dtype=np.float32))
        if self.kind == "ivf":
            fresh.nprobe = _nprobe(fresh)
            fresh.make_direct_map()
        compact = VectorIndex(
            fresh,
            products,
            stores,
            kind=self.kind,
            built_at=self.built_at,
            watermark=watermark,
            lexical=lexical,
        )
        compact.applied = applied
        compact.calibration = self.calibration
        return compact

    # --- search -------------------------------------------------------------------------
    def search(
        self,
        query: np.ndarray,
        k: int,
        *,
        exclude_stores: Iterable[int] = (),
        text: str | None = None,
        text_store: int | None = None,
        min_cosine: float | None = None,
    ) -> list[Hit]:
        """The k best live products, skipping every product of ``exclude_stores``: nearest
        by cosine, or with ``text`` (the lexical text of the query product, one of
        ``text_store``'s) by the fused score. ``min_cosine`` drops hits below that cosine
        before the k are kept, so lexical matches do not take the places of items the
        caller's floor would keep."""
        exclude_stores = set(exclude_stores)
        # One lock over both steps: the polling thread must not remove a product between
        # the vector search and the fusion that looks its label up.
        with self._lock:
            hits = self._dense_search(query, k, exclude_stores)
            if hits is not None and min_cosine is not None:
                hits = [hit for hit in hits if hit.score >= min_cosine]
            if text and self.lexical is not None and hits is not None:
                return self._fused(query, text, text_store, hits, k, exclude_stores, min_cosine)
        return hits or []

    def _fused(
        self,
        query: np.ndarray,
        text: str,
        text_store: int | None,
        dense: list[Hit],
        k: int,
        exclude_stores: set[int],
        min_cosine: float | None,
    ) -> list[Hit]:
        with self._lock:
            lexical = self.lexical.scores(self.lexical.query(text, text_store))
            if not lexical.any():
                return dense
            for start, end in (self._ranges[s] for s in exclude_stores if s in self._ranges):
                lexical[start:end] = 0
            hidden = [label for s in exclude_stores for label in self._tail.get(s, ())]
            lexical[np.asarray(hidden + list(self._dead), dtype=np.int64)] = 0
            top = np.argpartition(-lexical, min(k, len(lexical) - 1))[:k]
            cosines = {self._label_of[hit.product_id]: hit.score for hit in dense}
            extra = np.array(
                [label for label in top if lexical[label] > 0 and label not in cosines]
            )
            if len(extra):
                vectors = self._vectors(extra)
                found = zip(extra.tolist(), (vectors @ query.ravel()).tolist(), strict=True)
                cosines.update(
                    (label, c) for label, c in found if min_cosine is None or c >= min_cosine
                )
            pooled = [
                Hit(
                    int(self._products[label]),
                    int(self._stores[label]),
                    cosine + LEXICAL_WEIGHT * float(lexical[label]),
                    similarity=cosine,
                    lexical=float(lexical[label]),
                )
                for label, cosine in cosines.items()
            ]
        pooled.sort(key=lambda hit: (-hit.score, hit.product_id))
        return pooled[:k]

    def _dense_search(
        self, query: np.ndarray, k: int, exclude_stores: set[int]
    ) -> list[Hit] | None:
        faiss = _faiss()
        if self._total == 0 or k <= 0:
            return None
        query = np.ascontiguousarray(query.reshape(1, -1), dtype=np.float32)
        with self._lock:
            selector, keep = self._exclusion(exclude_stores)
            if self.kind == "ivf":
                params = faiss.SearchParametersIVF(sel=selector, nprobe=_nprobe(self._index))
            else:
                params = faiss.SearchParameters(sel=selector)
            if self._index.ntotal:
                scores, labels = self._index.search(query, k, params=params)
            else:
                scores, labels = np.zeros((1, 0), np.float32), np.zeros((1, 0), np.int64)
            del keep  # the selectors had to outlive the search
            if self._added:
                scores, labels = self._merge_added(query, k, exclude_stores, scores, labels)
            products, stores = self._products, self._stores
            return [
                Hit(int(products[label]), int(stores[label]), float(score))
                for score, label in zip(scores[0], labels[0], strict=True)
                if label >= 0
            ]

    def _merge_added(self, query, k, exclude_stores, scores, labels):
        """The best of the added tail (exact, it is small) merged into FAISS's results."""
        added = self._added_vectors()
        first = self._index.ntotal
        tail_scores = added @ query[0]
        hidden = [label - first for s in exclude_stores for label in self._tail.get(s, ())]
        hidden += [label - first for label in self._dead if label >= first]
        tail_scores[np.asarray([h for h in hidden if h >= 0], dtype=np.int64)] = -np.inf
        best = np.argsort(-tail_scores)[:k]
        best = best[np.isfinite(tail_scores[best])]
        pooled_scores = np.concatenate([scores[0], tail_scores[best]])
        pooled_labels = np.concatenate([labels[0], best + first])
        pooled_scores[pooled_labels < 0] = -np.inf
        top = np.argsort(-pooled_scores, kind="stable")[:k]
        top = top[np.isfinite(pooled_scores[top])]
        return pooled_scores[top][None, :], pooled_labels[top][None, :]

    def _exclusion(self, stores: set[int]):
        faiss = _faiss()
        parts = []
        for store in stores:
            if store in self._ranges:
                parts.append(faiss.IDSelectorRange(*self._ranges[store]))
        if self._dead:
            if self._dead_array is None:
                self._dead_array = np.fromiter(self._dead, dtype=np.int64, count=len(self._dead))
            parts.append(faiss.IDSelectorBatch(self._dead_array))
        tails = [label for store in stores for label in self._tail.get(store, ())]
        if tails:
            parts.append(faiss.IDSelectorBatch(np.asarray(tails, dtype=np.int64)))
        if not parts:
            return None, parts
        combined = parts[0]
        keep = list(parts)
        for part in parts[1:]:
            combined = faiss.IDSelectorOr(combined, part)
            keep.append(combined)
        selector = faiss.IDSelectorNot(combined)
        keep.append(selector)
        return selector, keep

    # --- persistence --------------------------------------------------------------------
    def save(self, root: Path, *, spare_versions: int = 2) -> Path:
        """Write a new version beside the old ones and point CURRENT at it atomically;
        keep ``spare_versions`` older ones for processes still loading them."""
        faiss = _faiss()
        root.mkdir(parents=True, exist_ok=True)
        version = f"v{int(time.time() * 1000)}-{os.getpid()}"
        staging = root / f".{version}"
        staging.mkdir()
        with self._lock:
            if self._added:
                raise ValueError("a mapped index with added products is saved compacted")
            faiss.write_index(self._index, str(staging / "index.faiss"))
            # Plain .npy files, not one .npz: a zip member cannot be memory-mapped.
            np.save(staging / "products.npy", self._products.array())
            np.save(staging / "stores.npy", self._stores.array())
            np.save(staging / "dead.npy", np.fromiter(self._dead, dtype=np.int64))
            if self.lexical is not None:
                self.lexical.save(staging)
            meta = {
                "kind": self.kind,
                "built_at": self.built_at,
                "watermark": self.watermark,
                "build_size": self._build_size,
                "unrelated_cosines": [float(c) for c in self.calibration.unrelated_cosines],
            }
        (staging / "meta.json").write_text(json.dumps(meta))
        # On the disk before CURRENT names it: after a crash, a version CURRENT names holds
        # its files whole, not the empty ones a file system leaves of unwritten data.
        for written in staging.iterdir():
            _fsync(written)
        _fsync(staging)
        staging.rename(root / version)
        pointer = root / ".CURRENT.tmp"
        pointer.write_text(version)
        _fsync(pointer)
        pointer.replace(root / "CURRENT")
        _fsync(root)
        _prune(root, keep=version, spare=spare_versions)
        return root / version

    @classmethod
    def load(cls, root: Path, version: str | None = None) -> VectorIndex | None:
        """The version CURRENT names (or ``version``); None when none was published. Raises
        when its files cannot be read (damaged on disk)."""
        faiss = _faiss()
        version = version or current_version(root)
        if version is None:
            return None
        directory = root / version
        meta = json.loads((directory / "meta.json").read_text())
        if (directory / "products.npy").exists():
            labels = {
                name: np.load(directory / f"{name}.npy", mmap_mode="r")
                for name in ("products", "stores", "dead")
            }
        else:  # a version saved before label files were mapped
            labels = np.load(directory / "labels.npz")
        # Mapped, read-only: IVF's inverted lists / the flat codes stay in the page cache,
        # one copy for every process on the machine.
        mapping = faiss.IO_FLAG_MMAP if meta["kind"] == "ivf" else faiss.IO_FLAG_MMAP_IFC
        index = faiss.read_index(str(directory / "index.faiss"), mapping)
        if meta["kind"] == "ivf":
            index.make_direct_map()  # reconstruct() for store profiles (8 bytes a vector)
        loaded = cls(
            index,
            labels["products"],
            labels["stores"],
            kind=meta["kind"],
            built_at=meta["built_at"],
            watermark=meta["watermark"],
            build_size=meta.get("build_size"),
            lexical=LexicalIndex.load(directory),
        )
        loaded._mapped = True
        loaded.calibration = Calibration(meta.get("unrelated_cosines"))
        loaded._dead = {int(label) for label in labels["dead"]}
        for label in loaded._dead:
            product = loaded._products[label]
            if loaded._label_of.get(product) == label:
                loaded._label_of.pop(product)
        return loaded


class _Column:
    """One integer per label: the saved labels' array (memory-mapped after a load) and a
    list of the labels added since."""

    def __init__(self, base: np.ndarray):
        self._base = base if isinstance(base, np.memmap) else np.asarray(base, dtype=np.int64)
        self._added: list[int] = []

    def __len__(self) -> int:
        return len(self._base) + len(self._added)

    def __getitem__(self, label) -> int:
        label = int(label)
        if label < len(self._base):
            return int(self._base[label])
        return self._added[label - len(self._base)]

    def append(self, value: int) -> None:
        self._added.append(int(value))

    def array(self) -> np.ndarray:
        return np.concatenate(
            [np.asarray(self._base, dtype=np.int64), np.asarray(self._added, dtype=np.int64)]
        )

    def take(self, labels: np.ndarray) -> np.ndarray:
        labels = np.asarray(labels, dtype=np.int64)
        out = np.empty(len(labels), dtype=np.int64)
        inside = labels < len(self._base)
        out[inside] = self._base[labels[inside]]
        added = np.asarray(self._added, dtype=np.int64)
        out[~inside] = added[labels[~inside] - len(self._base)]
        return out


class _LabelMap:
    """Product id -> its live label. The labels given at construction are found by binary
    search in a sorted copy (16 bytes a product where a dict takes ~100, in every
    process); changes since are a small dict (None: removed)."""

    def __init__(self, products: np.ndarray):
        products = np.asarray(products, dtype=np.int64)
        order = np.argsort(products, kind="stable")  # equal ids: the last label wins
        self._sorted = products[order]
        self._labels = order
        self._changed: dict[int, int | None] = {}
        self._count = len(np.unique(self._sorted)) if len(products) else 0

    def _base(self, product: int) -> int | None:
        at = int(np.searchsorted(self._sorted, product, side="right")) - 1
        if at >= 0 and self._sorted[at] == product:
            return int(self._labels[at])
        return None

    def get(self, product: int, default=None):
        product = int(product)
        label = self._changed[product] if product in self._changed else self._base(product)
        return default if label is None else label

    def __getitem__(self, product: int) -> int:
        label = self.get(product)
        if label is None:
            raise KeyError(product)
        return label

    def __setitem__(self, product: int, label: int) -> None:
        if self.get(product) is None:
            self._count += 1
        self._changed[int(product)] = int(label)

    def pop(self, product: int, default=None):
        label = self.get(product)
        if label is None:
            return default
        self._changed[int(product)] = None
        self._count -= 1
        return label

    def __len__(self) -> int:
        return self._count

    def live(self) -> tuple[np.ndarray, np.ndarray]:
        """(products, labels) of every live product."""
        last = np.ones(len(self._sorted), dtype=bool)
        last[:-1] = self._sorted[1:] != self._sorted[:-1]  # one label per id: the last
        unchanged = last & ~np.isin(self._sorted, np.fromiter(self._changed, np.int64))
        changed = [(p, label) for p, label in self._changed.items() if label is not None]
        products = np.concatenate(
            [self._sorted[unchanged], np.array([p for p, _ in changed], dtype=np.int64)]
        )
        labels = np.concatenate(
            [self._labels[unchanged], np.array([label for _, label in changed], dtype=np.int64)]
        )
        return products, labels


def _empty_like(index):
    """An empty IVF index with the same trained quantizer (no retraining), in memory even
    when ``index`` is mapped from a file."""
    faiss = _faiss()
    quantizer = faiss.clone_index(index.quantizer)
    fresh = faiss.IndexIVFFlat(quantizer, index.d, index.nlist, index.metric_type)
    fresh.is_trained = True
    fresh.referenced_objects = [quantizer]  # the index points into it; keep it alive
    return fresh


def _faiss() -> ModuleType:
    import faiss  # noqa: PLC0415 -- heavy (~0.3 s); loaded on first use, not at import

    return faiss


def _nprobe(index) -> int:
    return IVF_NPROBE_LARGE if index.nlist >= LARGE_INDEX_LISTS else IVF_NPROBE


def _build_ivf(vectors: np.ndarray):
    faiss = _faiss()
    count, dimensions = vectors.shape
    lists = int(4 * math.sqrt(count))
    quantizer = faiss.IndexFlatIP(dimensions)
    index = faiss.IndexIVFFlat(quantizer, dimensions, lists, faiss.METRIC_INNER_PRODUCT)
    rng = np.random.default_rng(0)
    sample = rng.choice(count, size=min(count, lists * IVF_TRAINING_POINTS_PER_LIST), replace=False)
    index.train(vectors[np.sort(sample)])
    index.add(vectors)
    index.nprobe = _nprobe(index)
    index.make_direct_map()
    index.referenced_objects = [quantizer]  # the index points into it; keep it alive
    return index


def published_meta(root: Path) -> dict | None:
    """The published version's metadata (kind, build time, watermark), if one exists."""
    version = current_version(root)
    if version is None:
        return None
    try:
        return json.loads((root / version / "meta.json").read_text())
    except FileNotFoundError:
        return None


def _fsync(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def versions_newest_first(root: Path) -> list[str]:
    """The versions on disk, the newest first."""
    names = [p.name for p in root.iterdir() if p.is_dir() and _VERSION.fullmatch(p.name)]
    return sorted(names, key=saved_at, reverse=True)


def saved_at(version: str) -> int:
    """When a version was saved, in milliseconds (its name starts with it)."""
    match = _VERSION.fullmatch(version)
    return int(match.group(1)) if match else 0


_VERSION = re.compile(r"v(\d+)-\d+")


def current_version(root: Path) -> str | None:
    try:
        return (root / "CURRENT").read_text().strip()
    except FileNotFoundError:
        return None


def _prune(root: Path, *, keep: str, spare: int = 2) -> None:
    """Drop old versions, leaving a couple for processes still loading them, and staging
    folders a crashed save left (an hour old, or all of them when nothing is spared)."""
    stale = time.time() - 3600
    for staging in root.iterdir():
        crashed = staging.is_dir() and staging.name.startswith(".v")
        if crashed and (not spare or staging.stat().st_mtime < stale):
            shutil.rmtree(staging, ignore_errors=True)
    versions = sorted(
        (p for p in root.iterdir() if p.is_dir() and p.name.startswith("v") and p.name != keep),
        key=lambda p: p.stat().st_mtime,
    )
    for old in versions[:-spare] if spare else versions:
        shutil.rmtree(old, ignore_errors=True)
