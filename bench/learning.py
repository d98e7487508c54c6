"""Does ranking learn from clicks? A simulated shopper population on the demo network,
served through the product's real path: widget_payload (the recommendation, its tokens
and the signed impression), record_impression (the viewable-impression beacon) and
follow_click (billing rules and all), with the learner retrained every 1,000 impressions
as the worker's schedule would.

The shoppers' hidden preferences are not the model's similarity: a niche-affinity matrix
(how much a shopper on store A's pages wants store B's products, uniform in [0.1, 1]) and a
per-item appeal (log-normal, sigma 1), both drawn from a seeded RNG. A shopper clicks a
shown partner item with probability BASE_CTR x affinity x appeal, at most one per widget.

Two arms over the same population and the same page sequence: static (content ranking,
learning off) and learned. Prints CTR per 1,000 impressions over time for both, the ratio
after all impressions, the cumulative regret against the best items either arm showed on
each page (the top three distinct stores' best items), and the rule check (the host's own
items in partner slots; blocks and the other rules are covered by tests/recommender/
test_learning.py). Expected clicks add up the shown items' chances (a shopper clicks at
most one, so this is an upper bound of a few percent at these rates).

    DATABASE_URL=postgres://.../empty_db .venv/bin/python bench/learning.py [--impressions 20000]
"""

from __future__ import annotations

import argparse
import os
import random
import subprocess
import sys
import tempfile
import time
from collections import defaultdict
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ.setdefault("INTERLAYER_ENV", "development")
# Every widget is recomputed (no 10-second reuse), so each view sees the learner's latest.
os.environ.setdefault("RECOMMENDER_STATE_TTL_SECONDS", "0")
# Each click is inserted and settled as it is made, as the click path does without a
# journal. On PostgreSQL the journal keeps a click until the web process's settling thread
# inserts it, and the bench (which calls the click path directly and settles each click
# before the next view) starts none: it would count no click at all.
os.environ.setdefault("RECOMMENDER_CLICK_JOURNAL", "false")

from bench.local_servers import free_port  # noqa: E402
from bench.relevance import set_up  # noqa: E402

BASE_CTR = 0.03
RETRAIN_EVERY = 1000
SHOPPER_UA = "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/156.0"


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--impressions", type=int, default=20_000)
    parser.add_argument("--seed", type=int, default=11)
    parser.add_argument("--reuse", action="store_true", help="keep a previous run's stores")
    args = parser.parse_args()
    workdir = Path(tempfile.mkdtemp(prefix="interlayer-learning-"))
    port = free_port()
    simulator = subprocess.Popen(
        [sys.executable, "-m", "simulator", "serve", "--port", str(port)],
        cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    try:
        stores = set_up(workdir, f"http://127.0.0.1:{port}", reuse=args.reuse)
        run(stores, args.impressions, args.seed)
    finally:
        simulator.terminate()
        simulator.wait()


def run(stores: dict, impressions: int, seed: int) -> None:
    from django.conf import settings

    from recommender import runtime
    from recommender.models import Click, Impression, ItemFeedback, LedgerEntry, Product

    rng = random.Random(seed)
    ids = sorted(store.pk for store in stores.values())
    affinity = {(a, b): rng.uniform(0.1, 1.0) for a in ids for b in ids if a != b}
    products = list(Product.objects.filter(eligible=True).exclude(vector=None))
    appeal = {(p.store_id, p.shopify_id): rng.lognormvariate(-0.5, 1.0) for p in products}
    pages = [(p.store, p.shopify_id) for p in products]
    sequence = [rng.choice(pages) for _ in range(impressions)]
    # Balances must not confound the comparison: every store can pay for the whole run.
    for store in stores.values():
        LedgerEntry.objects.create(store=store, kind=LedgerEntry.Kind.EARN, amount=100_000)

    results = {}
    for arm, learning in (("static", False), ("learned", True)):
        Impression.objects.all().delete()
        LedgerEntry.objects.exclude(click=None).delete()
        Click.objects.all().delete()
        ItemFeedback.objects.all().delete()
        settings.RECOMMENDER_LEARNING = learning
        runtime.reset()
        started = time.perf_counter()
        results[arm] = serve(sequence, affinity, appeal, random.Random(seed + 1), learning)
        print(f"{arm}: {impressions} page views in {time.perf_counter() - started:.0f}s",
              flush=True)  # fmt: skip
    report(results, affinity, appeal)


def serve(sequence, affinity, appeal, rng, learning: bool) -> dict:
    from recommender.exchange import clicks, impressions
    from recommender.exchange.rules import visitor
    from recommender.models import Click
    from recommender.ranking import learning as learner
    from recommender.web.widget import widget_payload

    buckets: list[list[int]] = []  # [viewable impressions, billable clicks] per 1,000 views
    shown_on: dict = defaultdict(set)  # page -> partner items either arm showed
    expected: list[tuple] = []  # (page, expected clicks of the widget shown)
    violations = 0
    for n, (host, product_id) in enumerate(sequence):
        if n % RETRAIN_EVERY == 0:
            if n == 2 * RETRAIN_EVERY:
                _require_clicks(buckets, n)  # stop early rather than after the whole run
            buckets.append([0, 0])
            if learning and n:
                learner.learn_from_clicks()
        ip = f"10.{n // 65536 % 256}.{n // 256 % 256}.{n % 256}"
        payload = widget_payload(
            host, product_id=product_id, visitor=visitor(ip=ip, user_agent=SHOPPER_UA)
        )
        items = payload.get("items") or []
        partners = [item for item in items if item.get("token")]
        if not partners:
            continue
        outcome = impressions.record_impression(
            host=host, raw=payload["impression"], ip=ip, user_agent=SHOPPER_UA
        )
        if outcome != "counted":
            continue
        buckets[-1][0] += 1
        targets = [target for _, target in _targets(payload)]
        violations += sum(1 for store_id, _ in targets if store_id == host.pk)
        page = (host.pk, product_id)
        shown_on[page].update(targets)
        chances = [BASE_CTR * affinity[(host.pk, s)] * appeal[(s, p)] for s, p in targets]
        expected.append((page, sum(min(c, 1.0) for c in chances)))
        for item, chance in zip(partners, chances, strict=True):
            if rng.random() < chance:
                outcome = clicks.follow_click(
                    host=host, raw_token=item["token"], ip=ip, user_agent=SHOPPER_UA
                )
                clicks.settle_clicks()  # what the request does after its redirect
                buckets[-1][1] += Click.objects.filter(pk=outcome.click_id, billable=True).exists()
                break
    _require_clicks(buckets, len(sequence))
    return {"buckets": buckets, "shown_on": shown_on, "expected": expected,
            "violations": violations}  # fmt: skip


def _require_clicks(buckets: list[list[int]], views: int) -> None:
    """Shoppers click a few percent of widgets: none billed in ``views`` views means the
    clicks are not being counted, and a CTR of 0 would be no measurement, not a result."""
    if not sum(billed for _, billed in buckets):
        raise SystemExit(f"no billable click was counted in {views} views")


def _targets(payload):
    from recommender.exchange import tokens

    data = tokens.read_impression(payload["impression"]) or {}
    return [(n, tuple(target)) for n, target in enumerate(data.get("t", []))]


def report(results: dict, affinity, appeal) -> None:
    print("\nbillable clicks per 1,000 viewable impressions (CTR), every 1,000 page views")
    print(f"{'views':>7s} {'static':>8s} {'learned':>8s}")
    static, learned = results["static"]["buckets"], results["learned"]["buckets"]
    for n, (s, lrn) in enumerate(zip(static, learned, strict=False)):
        print(f"{(n + 1) * RETRAIN_EVERY:7d} {1000 * s[1] / max(s[0], 1):8.1f} "
              f"{1000 * lrn[1] / max(lrn[0], 1):8.1f}")  # fmt: skip
    # The goal is about what learning has reached: the last quarter of the run.
    tail = max(1, len(static) // 4)

    def ctr(buckets):
        return sum(b[1] for b in buckets) / max(sum(b[0] for b in buckets), 1)

    print(f"\nCTR over the last {tail * RETRAIN_EVERY} views: static {1000 * ctr(static[-tail:]):.1f}, "
          f"learned {1000 * ctr(learned[-tail:]):.1f} per 1,000; learned/static = "
          f"{ctr(learned[-tail:]) / max(ctr(static[-tail:]), 1e-9):.2f}x")  # fmt: skip
    print(f"CTR over the whole run: static {1000 * ctr(static):.1f}, learned "
          f"{1000 * ctr(learned):.1f}")  # fmt: skip
    pool = defaultdict(set)
    for arm in results.values():
        for page, items in arm["shown_on"].items():
            pool[page] |= items
    for name, arm in results.items():
        regret = 0.0
        for page, got in arm["expected"]:
            best_by_store = defaultdict(float)
            for s, p in pool[page]:
                best_by_store[s] = max(
                    best_by_store[s], BASE_CTR * affinity[(page[0], s)] * appeal[(s, p)]
                )
            slots = 3
            regret += sum(sorted(best_by_store.values(), reverse=True)[:slots]) - got
        print(f"cumulative regret ({name}): {regret:.0f} expected clicks against the best "
              f"items shown on each page by either arm")  # fmt: skip
    print("rule checks: host in partner slots",
          sum(arm["violations"] for arm in results.values()))  # fmt: skip


if __name__ == "__main__":
    main()
