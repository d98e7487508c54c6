"""Filtered top-10 query latency of the cross-store index at several sizes.

Synthetic 384-d vectors with cluster structure (stores sell from a few niches; products
scatter around niche centres), one query per call on 2 cores, with the host store and ten
blocked stores excluded. Recall@10 is measured against exact search of the same filtered
set. Also: index memory, build time, and the time to make one changed product searchable.

    .venv/bin/python bench/index_latency.py [--sizes 10000 100000 1000000] [--queries 1000]
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
os.environ.setdefault("OMP_NUM_THREADS", "2")

from bench.local_servers import cpu_model
from recommender.ranking.index import VectorIndex

DIMENSIONS = 384
PRODUCTS_PER_STORE = 1000


def clustered(n: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    niches = rng.normal(size=(max(50, n // 500), DIMENSIONS)).astype(np.float32)
    stores = max(20, n // PRODUCTS_PER_STORE)
    store_of = rng.integers(0, stores, size=n)
    # Each store sells from three niches; each product sits near one of its store's niches.
    store_niches = rng.integers(0, len(niches), size=(stores, 3))
    niche_of = store_niches[store_of, rng.integers(0, 3, size=n)]
    vectors = np.empty((n, DIMENSIONS), dtype=np.float32)
    for start in range(0, n, 100_000):
        end = min(start + 100_000, n)
        block = niches[niche_of[start:end]] + 0.6 * rng.normal(size=(end - start, DIMENSIONS))
        vectors[start:end] = block / np.linalg.norm(block, axis=1, keepdims=True)
    return vectors, store_of.astype(np.int64)


def exact_top(vectors, stores, query, excluded, k=10):
    scores = vectors @ query
    scores[np.isin(stores, list(excluded))] = -np.inf
    top = np.argpartition(-scores, k)[:k]
    return set(top[np.argsort(-scores[top])].tolist())


def run(n: int, queries: int, rng: np.random.Generator) -> None:
    vectors, stores = clustered(n)
    ids = np.arange(n, dtype=np.int64)
    started = time.perf_counter()
    index = VectorIndex.build(vectors, ids, stores)
    build = time.perf_counter() - started
    store_ids = np.unique(stores)
    picks = rng.integers(0, n, size=queries)
    latencies, recalls = [], []
    for number, row in enumerate(picks):
        host = int(stores[row])
        blocked = set(rng.choice(store_ids[store_ids != host], size=10, replace=False).tolist())
        excluded = {host} | blocked
        started = time.perf_counter()
        hits = index.search(vectors[row], 10, exclude_stores=excluded)
        latencies.append(time.perf_counter() - started)
        if number < 200:  # recall against exact search of the same filtered set
            truth = exact_top(vectors, stores, vectors[row], excluded)
            recalls.append(len({h.product_id for h in hits} & truth) / 10)
    # One changed product: replace its vector and find it.
    changed = vectors[:1] * 0.5 + vectors[1:2] * 0.5
    changed /= np.linalg.norm(changed)
    started = time.perf_counter()
    index.upsert(changed, [0], [int(stores[0])])
    found = index.search(changed[0], 1)[0].product_id == 0
    update_ms = (time.perf_counter() - started) * 1000
    memory = index.memory_bytes / 2**20
    latencies_ms = np.array(latencies) * 1000
    exact_line = ""
    if index.kind != "exact":
        # The goal is a ratio in one run: p99 against exact (flat) search's p50, same filters.
        exact = VectorIndex.build(vectors, ids, stores, exact_limit=n)
        exact_ms = []
        for row in picks[:50]:
            host = int(stores[row])
            blocked = set(rng.choice(store_ids[store_ids != host], size=10, replace=False).tolist())
            started = time.perf_counter()
            exact.search(vectors[row], 10, exclude_stores={host} | blocked)
            exact_ms.append((time.perf_counter() - started) * 1000)
        del exact
        exact_p50 = float(np.percentile(exact_ms, 50))
        ratio = np.percentile(latencies_ms, 99) / exact_p50
        exact_line = f" | exact p50 {exact_p50:.1f} ms, p99/exact p50 = 1/{1 / ratio:.0f}"
    print(
        f"{n:>9,} vectors | {index.kind:<5} | build {build:6.1f}s | "
        f"p50 {np.percentile(latencies_ms, 50):.3f} ms | p99 {np.percentile(latencies_ms, 99):.3f} ms | "
        f"recall@10 {np.mean(recalls):.3f} | index {memory:,.0f} MB | "
        f"upsert+find {update_ms:.2f} ms ({'found' if found else 'NOT found'}){exact_line}",
        flush=True,
    )


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--sizes", type=int, nargs="+", default=[10_000, 100_000, 1_000_000])
    parser.add_argument("--queries", type=int, default=1000)
    args = parser.parse_args()
    print(f"CPU: {cpu_model()}")
    print("filtered top-10, host + 10 blocked stores excluded, one query per call")
    rng = np.random.default_rng(42)
    for size in args.sizes:
        run(size, args.queries, rng)


if __name__ == "__main__":
    main()
