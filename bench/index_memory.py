"""Memory of the index across web processes: one copy per machine, not one per process.

Builds a synthetic 1M-vector index (the clustered vectors of bench/index_latency.py, with
short product titles for the lexical index beside it), saves it as a rebuild publishes it,
then starts processes that each load it through the product's loading code
(``VectorIndex.load``, what live_index calls), compute every store's profile (which reads
every vector, so each process has touched the whole index), add products the way index
events do, and run filtered searches. Prints the summed PSS (``Pss`` in
/proc/<pid>/smaps_rollup: shared pages divided among the processes mapping them) of 4
processes against 1, and the ratio.

    .venv/bin/python bench/index_memory.py [--vectors 1000000] [--processes 4]
        [--directory DIR (reused when it holds an index)]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ.setdefault("OMP_NUM_THREADS", "1")  # several processes share 2 cores

from bench.index_latency import clustered  # noqa: E402
from bench.local_servers import cpu_model  # noqa: E402
from recommender.ranking.index import VectorIndex, current_version  # noqa: E402

WORDS = [
    "linen", "cotton", "steel", "brass", "oak", "walnut", "ceramic", "glass", "leather",
    "wool", "burr", "conical", "espresso", "pour", "over", "kettle", "grinder", "mug", "bowl",
    "lamp", "chair", "table", "shelf", "bookends", "candle", "apron", "jacket", "boots",
    "tent", "stove", "lantern", "backpack", "watch", "strap", "dial", "case",
]  # fmt: skip


def titles(count: int, seed: int = 0) -> list[str]:
    rng = np.random.default_rng(seed)
    picks = rng.integers(0, len(WORDS), size=(count, 3))
    models = rng.integers(100, 10_000, size=count)
    return [
        f"{WORDS[a].title()} {WORDS[b]} {WORDS[c]} X{model}"
        for (a, b, c), model in zip(picks.tolist(), models.tolist(), strict=True)
    ]


def build(directory: Path, count: int) -> None:
    vectors, stores = clustered(count)
    started = time.perf_counter()
    index = VectorIndex.build(
        vectors, np.arange(count, dtype=np.int64), stores, texts=titles(count)
    )
    index.save(directory)
    print(
        f"built and saved {count:,} vectors ({index.kind}) in {time.perf_counter() - started:.0f}s"
    )


def pss_kb(pid: int) -> int:
    with open(f"/proc/{pid}/smaps_rollup") as rollup:
        for line in rollup:
            if line.startswith("Pss:"):
                return int(line.split()[1])
    raise RuntimeError(f"no Pss for {pid}")


def serve(directory: Path, queries: int, seed: int) -> None:
    """One web process's share of the work; says "ready" and waits to be measured."""
    started = time.perf_counter()
    index = VectorIndex.load(directory)
    loaded = time.perf_counter() - started
    for store in sorted(index.store_ids()):
        index.store_profile(store)
    rng = np.random.default_rng(seed)
    # Index events arriving: new products, appended to this process's tail.
    added = rng.normal(size=(100, index._index.d)).astype(np.float32)
    added /= np.linalg.norm(added, axis=1, keepdims=True)
    new_ids = list(range(10**9, 10**9 + 100))
    index.upsert(added, new_ids, [1] * 100, ["Added walnut lamp"] * 100)
    found = index.search(added[0], 1)[0].product_id == new_ids[0]
    stores = sorted(index.store_ids())
    for _ in range(queries):
        row = int(rng.integers(0, len(stores)))
        query = index.store_profile(stores[row])
        excluded = set(rng.choice(stores, size=11, replace=False).tolist())
        index.search(query, 10, exclude_stores=excluded, text="walnut lamp X1234")
    print(json.dumps({"ready": True, "load_seconds": loaded, "update_found": found}), flush=True)
    sys.stdin.readline()  # measured by the parent meanwhile


def measure(directory: Path, processes: int, queries: int) -> tuple[int, list[dict]]:
    children = [
        subprocess.Popen(
            [
                sys.executable,
                __file__,
                "--serve",
                str(directory),
                "--queries",
                str(queries),
                "--seed",
                str(number),
            ],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        for number in range(processes)
    ]
    try:
        reports = [json.loads(child.stdout.readline()) for child in children]
        total = sum(pss_kb(child.pid) for child in children)
    finally:
        for child in children:
            child.stdin.close()
            child.wait()
    return total, reports


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--vectors", type=int, default=1_000_000)
    parser.add_argument("--processes", type=int, default=4)
    parser.add_argument("--queries", type=int, default=200)
    parser.add_argument("--directory", type=Path)
    parser.add_argument("--serve", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--seed", type=int, default=0, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve:
        serve(args.serve, args.queries, args.seed)
        return
    directory = args.directory or Path(tempfile.mkdtemp(prefix="interlayer-index-"))
    if current_version(directory) is None:
        build(directory, args.vectors)
    print(f"CPU: {cpu_model()}, {os.cpu_count()} cores")
    one, (report,) = measure(directory, 1, args.queries)
    many, reports = measure(directory, args.processes, args.queries)
    found = all(r["update_found"] for r in [report, *reports])
    print(
        f"index: {directory} ({sum(f.stat().st_size for f in (directory / current_version(directory)).iterdir()) / 2**20:,.0f} MB on disk)"
    )
    print(
        f"load: {report['load_seconds']:.2f}s; incremental updates found in every process: {found}"
    )
    print(f"1 process:  PSS {one / 1024:,.0f} MB")
    print(f"{args.processes} processes: PSS {many / 1024:,.0f} MB summed")
    print(f"ratio {args.processes} : 1 = {many / one:.2f}x (goal <= 1.3x)")


if __name__ == "__main__":
    main()
