"""Search cost under churn: the filtered top-10 query at 100k vectors (IVF) after 0, 50k and
100k product updates, without and with compaction (what every serving process does once
dead labels pass live_index's threshold). Goal: flat with compaction.

    .venv/bin/python bench/index_churn.py [--size 100000] [--updates 100000] [--queries 300]
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ.setdefault("OMP_NUM_THREADS", "2")

from bench.index_latency import clustered  # noqa: E402
from bench.local_servers import cpu_model  # noqa: E402
from recommender.ranking.index import VectorIndex  # noqa: E402


def p50_ms(index: VectorIndex, queries: np.ndarray, excluded: list[set[int]]) -> float:
    samples = []
    for query, exclude in zip(queries, excluded, strict=True):
        started = time.perf_counter()
        index.search(query, 10, exclude_stores=exclude)
        samples.append((time.perf_counter() - started) * 1000)
    return statistics.median(samples)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--size", type=int, default=100_000)
    parser.add_argument("--updates", type=int, default=100_000)
    parser.add_argument("--queries", type=int, default=300)
    args = parser.parse_args()
    rng = np.random.default_rng(0)
    vectors, stores = clustered(args.size)
    ids = np.arange(args.size, dtype=np.int64)
    store_ids = np.unique(stores)
    picks = rng.integers(0, args.size, size=args.queries)
    queries = vectors[picks]
    excluded = [{int(stores[p]), *map(int, rng.choice(store_ids, 10))} for p in picks]
    print(f"CPU: {cpu_model()}")
    print(f"{args.size:,} vectors; filtered top-10 p50 after N product updates")
    print(f"{'updates':>8} {'no compaction':>14} {'compacted':>10} {'dead labels':>12}")
    plain = VectorIndex.build(vectors, ids, stores)
    managed = VectorIndex.build(vectors, ids, stores)
    baseline = p50_ms(plain, queries, excluded)
    print(f"{0:>8} {baseline:>11.2f} ms {p50_ms(managed, queries, excluded):>7.2f} ms {0:>12}")
    done = 0
    compactions = 0
    for checkpoint in (args.updates // 2, args.updates):
        while done < checkpoint:
            batch = min(1000, checkpoint - done)
            rows = rng.integers(0, args.size, size=batch)
            fresh = vectors[rows] + 0.05 * rng.normal(size=(batch, vectors.shape[1]))
            fresh = (fresh / np.linalg.norm(fresh, axis=1, keepdims=True)).astype(np.float32)
            for index in (plain, managed):
                index.upsert(fresh, ids[rows].tolist(), stores[rows].tolist())
            if managed.needs_compaction():
                managed = managed.compacted()
                compactions += 1
            done += batch
        print(f"{done:>8} {p50_ms(plain, queries, excluded):>11.2f} ms "
              f"{p50_ms(managed, queries, excluded):>7.2f} ms {plain.dead_count:>12}")  # fmt: skip
    started = time.perf_counter()
    managed.compacted()
    print(f"compactions: {compactions}; one compaction at this size: "
          f"{time.perf_counter() - started:.2f} s (in the polling thread, searches go on)")  # fmt: skip
    ratio = p50_ms(managed, queries, excluded) / baseline
    print(f"with compaction, p50 after {done:,} updates / before: {ratio:.2f}x")


if __name__ == "__main__":
    main()
