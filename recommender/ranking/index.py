"""The cross-store vector index: FAISS, plain NumPy, no Django.

Labels are FAISS's own sequential ids. A build inserts products grouped by store, so each
store owns one contiguous label range; excluding the host and blocked stores is then a
handful of ``IDSelectorRange``s checked during the search (cheap, and recall holds because
exclusions remove little). Products added after the build go to a tail whose labels are
listed per store; changed or removed products are marked dead and skipped the same way.
A periodic rebuild folds the tail back into ranges.

Exact search (``IndexFlatIP``) while the network is small; an inverted-file index
(``IndexIVFFlat``, nlist = 4 sqrt(n), nprobe 32) beyond ``EXACT_LIMIT`` vectors. IVF rather
than HNSW because of what the exclusion does here: the host store's products are the
query's nearest neighbours, and HNSW's bounded candidate list fills with those excluded
nodes (measured: recall@10 0.78 at 100k with efSearch 64, 0.87 at 400), while IVF scans
whole lists and skips excluded ids without losing the rest (0.975 at nprobe 32).

Beside the vectors, with the same labels, a lexical index (``lexical.LexicalIndex``) scores
model numbers and title words. A search given the query's text fuses the two: the dense
neighbours and the lexical ones are pooled and ranked by cosine + ``LEXICAL_WEIGHT`` *
lexical score, so lexical evidence only ever adds to what the embedding says.
"""

from __future__ import annotations

import json
import math
import os
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
IVF_NPROBE = 32
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
        self._products = list(product_ids.astype(np.int64))
        self._stores = list(store_ids.astype(np.int64))
        # Labels below build_size were inserted grouped by store (one range each); the rest
        # were added later and are listed per store (a saved index keeps both apart).
        self._build_size = len(product_ids) if build_size is None else build_size
        built = store_ids[: self._build_size]
        self._ranges: dict[int, tuple[int, int]] = {}
        for store in np.unique(built):
            labels = np.flatnonzero(built == store)
            self._ranges[int(store)] = (int(labels[0]), int(labels[-1]) + 1)
        self._label_of: dict[int, int] = {int(p): i for i, p in enumerate(product_ids)}
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
        lexical = None if texts is None else LexicalIndex.build([texts[i] for i in order])
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
        return int(faiss.serialize_index(self._index).nbytes) if self._index.ntotal else 0

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
            start = self._index.ntotal
            self._index.add(vectors)
            if self.lexical is not None:
                self.lexical.append(texts if texts is not None else [""] * len(product_ids))
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
        return None if label is None else self._index.reconstruct(label)

    def store_ids(self) -> set[int]:
        return set(self._ranges) | set(self._tail)

    def store_vectors(self, store_id: int) -> tuple[list[int], np.ndarray]:
        """The live products of one store and their vectors (for profiles, own products)."""
        with self._lock:
            start, end = self._ranges.get(store_id, (0, 0))
            # The build range comes back in one call; the (small) tail label by label.
            blocks = [self._index.reconstruct_n(start, end - start)] if end > start else []
            labels = list(range(start, end))
            for label in self._tail.get(store_id, []):
                blocks.append(self._index.reconstruct(label).reshape(1, -1))
                labels.append(label)
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
            live = sorted(self._label_of.items(), key=lambda item: (self._stores[item[1]], item[0]))
            products = np.array([product for product, _ in live], dtype=np.int64)
            labels = np.array([label for _, label in live], dtype=np.int64)
            stores = np.array([self._stores[label] for label in labels], dtype=np.int64)
            vectors = (
                self._index.reconstruct_batch(labels)
                if len(labels)
                else np.zeros((0, self._index.d), dtype=np.float32)
            )
            fresh = faiss.clone_index(self._index) if self.kind == "ivf" else None
            watermark, applied = self.watermark, set(self.applied)
            lexical = None if self.lexical is None else self.lexical.take(labels)
        if fresh is not None:
            fresh.reset()
        else:
            fresh = faiss.IndexFlatIP(vectors.shape[1])
        if len(vectors):
            fresh.add(np.ascontiguousarray(vectors, dtype=np.float32))
        if self.kind == "ivf":
            fresh.nprobe = IVF_NPROBE
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
    ) -> list[Hit]:
        """The k best live products, skipping every product of ``exclude_stores``: nearest
        by cosine, or with ``text`` (the query product's lexical text) by the fused score."""
        exclude_stores = set(exclude_stores)
        hits = self._dense_search(query, k, exclude_stores)
        if text and self.lexical is not None and hits is not None:
            return self._fused(query, text, hits, k, exclude_stores)
        return hits or []

    def _fused(
        self, query: np.ndarray, text: str, dense: list[Hit], k: int, exclude_stores: set[int]
    ) -> list[Hit]:
        with self._lock:
            lexical = self.lexical.scores(self.lexical.query(text))
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
                vectors = self._index.reconstruct_batch(extra.astype(np.int64))
                cosines.update(zip(extra.tolist(), (vectors @ query.ravel()).tolist(), strict=True))
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
        if self._index.ntotal == 0 or k <= 0:
            return None
        query = np.ascontiguousarray(query.reshape(1, -1), dtype=np.float32)
        with self._lock:
            selector, keep = self._exclusion(exclude_stores)
            if self.kind == "ivf":
                params = faiss.SearchParametersIVF(sel=selector, nprobe=IVF_NPROBE)
            else:
                params = faiss.SearchParameters(sel=selector)
            scores, labels = self._index.search(query, k, params=params)
            del keep  # the selectors had to outlive the search
            products, stores = self._products, self._stores
            return [
                Hit(int(products[label]), int(stores[label]), float(score))
                for score, label in zip(scores[0], labels[0], strict=True)
                if label >= 0
            ]

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
            faiss.write_index(self._index, str(staging / "index.faiss"))
            np.savez(
                staging / "labels.npz",
                products=np.asarray(self._products, dtype=np.int64),
                stores=np.asarray(self._stores, dtype=np.int64),
                dead=np.fromiter(self._dead, dtype=np.int64),
            )
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
        staging.rename(root / version)
        pointer = root / ".CURRENT.tmp"
        pointer.write_text(version)
        pointer.replace(root / "CURRENT")
        _prune(root, keep=version, spare=spare_versions)
        return root / version

    @classmethod
    def load(cls, root: Path) -> VectorIndex | None:
        faiss = _faiss()
        try:
            version = (root / "CURRENT").read_text().strip()
        except FileNotFoundError:
            return None
        directory = root / version
        meta = json.loads((directory / "meta.json").read_text())
        labels = np.load(directory / "labels.npz")
        index = faiss.read_index(str(directory / "index.faiss"))
        if meta["kind"] == "ivf":
            index.make_direct_map()  # reconstruct() for store profiles
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
        loaded.calibration = Calibration(meta.get("unrelated_cosines"))
        loaded._dead = {int(label) for label in labels["dead"]}
        for label in loaded._dead:
            product = loaded._products[label]
            if loaded._label_of.get(product) == label:
                loaded._label_of.pop(product)
        return loaded


def _faiss() -> ModuleType:
    import faiss  # noqa: PLC0415 -- heavy (~0.3 s); loaded on first use, not at import

    return faiss


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
    index.nprobe = IVF_NPROBE
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
