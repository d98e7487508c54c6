"""The settings page for a store with a year of events: stats query and page render time.

DATABASE_URL=postgres://.../interlayer_bench .venv/bin/python bench/settings_stats.py [--per-day 200]
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "interlayer.settings")
os.environ.setdefault("INTERLAYER_ENV", "development")  # throwaway secrets, like the demo
os.environ.setdefault("LOG_LEVEL", "WARNING")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--per-day", type=int, default=200, help="clicks and impressions per day")
    args = parser.parse_args()
    import django

    django.setup()
    from django.core.management import call_command
    from django.test import RequestFactory

    from bench.local_servers import cpu_model
    from recommender.models import Click, Impression, LedgerEntry
    from recommender.web import stats
    from recommender.web.settings_page import settings_page
    from stores.models import Store
    from tests.factories import seed_exchange_history

    call_command("migrate", verbosity=0)
    call_command("flush", "--noinput", verbosity=0)
    store = Store.objects.create(shop_domain="busy.myshopify.com", name="Busy", status="active")
    partners = [
        Store.objects.create(shop_domain=f"p{n}.myshopify.com", name=f"P{n}", status="active")
        for n in range(20)
    ]
    seed_exchange_history(
        store, partners, days=365, per_day=args.per_day, billable=lambda n: n % 3 != 0
    )

    def timed(fn, runs=10):
        samples = []
        for _ in range(runs):
            started = time.perf_counter()
            fn()
            samples.append((time.perf_counter() - started) * 1000)
        return statistics.median(samples), max(samples)

    request = RequestFactory().get("/")
    stats_ms = timed(lambda: stats.store_stats(store, days=365))
    page_ms = timed(lambda: settings_page(request, store).content)
    print(f"CPU: {cpu_model()}")
    print(
        f"a year of events: {Click.objects.count():,} clicks, {Impression.objects.count():,} "
        f"impressions, {LedgerEntry.objects.count():,} ledger entries"
    )
    print(
        f"stats for 365 days: median {stats_ms[0]:.0f} ms, worst {stats_ms[1]:.0f} ms (7 queries)"
    )
    print(f"settings page render: median {page_ms[0]:.0f} ms, worst {page_ms[1]:.0f} ms")


if __name__ == "__main__":
    main()
