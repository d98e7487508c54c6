"""Full sync + embed of a 10,000-product store from the simulator, end to end.

Prints products/s, the share of time spent outside embedding, the re-sync time of the
unchanged catalog against the first, and the worker's peak memory. The simulator runs
in its own process so the memory figure is the worker's alone. ``--first-sync`` is the
goal's measure: a 1,000-product store's first sync (read + embed) against 10 s.

    DATABASE_URL=postgres://... .venv/bin/python bench/catalog_sync.py [--products 10000]
    DATABASE_URL=postgres://... .venv/bin/python bench/catalog_sync.py --first-sync
(without DATABASE_URL a temporary SQLite database is used; SQLite takes one writer at a
time, so there the embedding waits for the read instead of going on alongside it)
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
# Benchmarks run the development profile (throwaway secrets), like the demo.
os.environ.setdefault("INTERLAYER_ENV", "development")

from bench.local_servers import cpu_model, free_port, install_app, wait_for  # noqa: E402

FIRST_SYNC_PRODUCTS = 1000
FIRST_SYNC_GOAL_SECONDS = 10.0


def write_catalog(directory: Path, count: int) -> None:
    from simulator.demo_shops import NICHES, catalog

    base = [product for niche in NICHES for product in catalog(niche)]
    products = []
    for index in range(count):
        product = dict(base[index % len(base)])
        product["title"] = f"{product['title']} No. {index // len(base) + 1}"
        product["handle"] = f"{product['handle']}-{index}"
        product["status"] = "active"
        products.append(product)
    (directory / "bench-store.json").write_text(json.dumps({"products": products}))


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--products", type=int, default=10_000)
    parser.add_argument(
        "--first-sync",
        action="store_true",
        help=f"a {FIRST_SYNC_PRODUCTS:,}-product store against the {FIRST_SYNC_GOAL_SECONDS:.0f} s goal",
    )
    args = parser.parse_args()
    if args.first_sync:
        args.products = FIRST_SYNC_PRODUCTS
    workdir = Path(tempfile.mkdtemp(prefix="interlayer-bench-"))
    write_catalog(workdir, args.products)
    port = free_port()
    simulator = subprocess.Popen(
        [sys.executable, "-m", "simulator", "serve", "--port", str(port), "--shops", str(workdir)],
        cwd=ROOT,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        run(args, workdir, f"http://127.0.0.1:{port}")
    finally:
        simulator.terminate()
        simulator.wait()


def run(args, workdir: Path, simulator_url: str) -> None:
    os.environ.update(
        DJANGO_SETTINGS_MODULE="interlayer.settings",
        SHOPIFY_SIMULATOR_URL=simulator_url,
        HF_HUB_OFFLINE="1",
        RECOMMENDER_EMBEDDER="onnx",
        LOG_LEVEL="WARNING",
    )
    os.environ.setdefault("DATABASE_URL", f"sqlite:///{workdir / 'bench.sqlite3'}")
    wait_for(simulator_url + "/_sim/state")

    import django

    django.setup()
    from django.core.management import call_command

    call_command("migrate", verbosity=0)
    call_command("flush", "--noinput", verbosity=0)

    from django.conf import settings

    from recommender.catalog import embedding_pass
    from recommender.catalog import sync as catalog_sync
    from recommender.models import Product

    store = install_app(simulator_url, "bench-store")

    embedder = embedding_pass.get_embedder()
    spent = {"embedding": 0.0, "texts": 0}
    original = embedder.encode

    def measured(texts):
        started = time.perf_counter()
        vectors = original(texts)
        spent["embedding"] += time.perf_counter() - started
        spent["texts"] += len(texts)
        return vectors

    embedder.encode = measured

    load_before = os.getloadavg()[0]
    started = time.perf_counter()
    first = catalog_sync.sync_catalog(store)
    first_seconds = time.perf_counter() - started
    embedded = spent["texts"]
    embed_seconds = spent["embedding"]

    started = time.perf_counter()
    catalog_sync.sync_catalog(store)
    resync_seconds = time.perf_counter() - started

    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    products = Product.objects.filter(store=store).count()
    overhead = (first_seconds - embed_seconds) / first_seconds
    print(f"CPU: {cpu_model()}, {os.cpu_count()} cores, load average {load_before:.1f} before")
    print(f"database: {settings.DATABASES['default']['ENGINE'].rsplit('.', 1)[-1]}")
    print(f"catalog: {products} products read ({first.mode}), {embedded} embedded")
    print(f"first sync + embed: {first_seconds:.1f}s = {products / first_seconds:.0f} products/s")
    print(f"  embedding alone:  {embed_seconds:.1f}s ({embedded / embed_seconds:.0f} texts/s)")
    print(
        f"  pipeline overhead beyond embedding: {overhead:.1%} (negative: read and embedding overlap)"
    )
    if args.first_sync:
        print(
            f"first sync of {products:,} products: {first_seconds:.1f}s = "
            f"{first_seconds / FIRST_SYNC_GOAL_SECONDS:.2f} of the {FIRST_SYNC_GOAL_SECONDS:.0f} s goal"
        )
    print(
        f"re-sync unchanged: {resync_seconds:.1f}s = {resync_seconds / first_seconds:.3f} of the "
        f"first, embedded {spent['texts'] - embedded}"
    )
    print(f"worker peak memory (RSS): {peak_mb:.0f} MB")


if __name__ == "__main__":
    main()
