"""Embedding throughput on this machine: the int8 ONNX fast path against the reference,
sentence-transformers fp32 ``encode``, on the same product texts in the same run.

    .venv/bin/python bench/embedding_throughput.py [--texts 512] [--threads 2] [--repeats 3]
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ.setdefault("HF_HUB_OFFLINE", "1")

from bench.local_servers import cpu_model  # noqa: E402
from recommender.ranking import embedding  # noqa: E402
from tests.demo_texts import demo_product_texts  # noqa: E402


def product_texts(limit: int) -> list[str]:
    texts = demo_product_texts()
    return (texts * (limit // len(texts) + 1))[:limit]


def timed_in_turns(embedders, texts, repeats=3):
    """Best-of-``repeats`` texts/s of each embedder, taking turns: on a shared machine the
    load changes by the minute, and turns give both sides the same share of it."""
    for embedder in embedders:
        embedder.encode(texts[:32])  # warm-up
    best = [float("inf")] * len(embedders)
    vectors = [None] * len(embedders)
    for _ in range(repeats):
        for number, embedder in enumerate(embedders):
            started = time.perf_counter()
            vectors[number] = embedder.encode(texts)
            best[number] = min(best[number], time.perf_counter() - started)
    return [(v, len(texts) / b) for v, b in zip(vectors, best, strict=True)]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--texts", type=int, default=512)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    texts = product_texts(args.texts)
    model_dir = ROOT / "var" / "models"

    started = time.perf_counter()
    reference = embedding.SentenceTransformerEmbedder(threads=args.threads)
    reference_load = time.perf_counter() - started
    started = time.perf_counter()
    fast = embedding.OnnxEmbedder(
        embedding.build_onnx_model(model_dir / embedding.ONNX_FILENAME), threads=args.threads
    )
    fast_load = time.perf_counter() - started

    (ref_vectors, ref_rate), (fast_vectors, fast_rate) = timed_in_turns(
        [reference, fast], texts, args.repeats
    )
    cosines = (ref_vectors * fast_vectors).sum(axis=1)

    print(
        f"texts: {len(texts)} product texts, batch {embedding.BATCH_SIZE}, {args.threads} threads"
    )
    print(
        f"reference (sentence-transformers fp32): {ref_rate:7.1f} texts/s, load {reference_load:.2f}s"
    )
    print(
        f"fast path (ONNX Runtime int8):          {fast_rate:7.1f} texts/s, load {fast_load:.2f}s"
    )
    print(f"speed-up: {fast_rate / ref_rate:.2f}x  (CPU: {cpu_model()}, {os.cpu_count()} cores)")
    print(f"load average during the run: {os.getloadavg()[0]:.1f}")
    print(f"agreement: mean cosine {cosines.mean():.4f}, min {cosines.min():.4f}")


if __name__ == "__main__":
    main()
