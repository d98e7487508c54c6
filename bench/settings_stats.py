"""The settings page for a store with a year of events: stats query and page render time.

DATABASE_URL=postgres://.../interlayer_bench .venv/bin/python bench/settings_stats.py [--per-day 200]
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from datetime import timedelta
from decimal import Decimal
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "interlayer.settings")
os.environ.setdefault("LOG_LEVEL", "WARNING")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--per-day", type=int, default=200, help="clicks and impressions per day")
    args = parser.parse_args()
    import django

    django.setup()
    from django.core.management import call_command
    from django.test import RequestFactory
    from django.utils import timezone

    from recommender.models import Click, Impression, LedgerEntry
    from recommender.web import stats
    from recommender.web.settings_page import settings_page
    from stores.models import Store

    call_command("migrate", verbosity=0)
    call_command("flush", "--noinput", verbosity=0)
    store = Store.objects.create(shop_domain="busy.myshopify.com", name="Busy", status="active")
    partners = [
        Store.objects.create(shop_domain=f"p{n}.myshopify.com", name=f"P{n}", status="active")
        for n in range(20)
    ]
    now = timezone.now()
    clicks, impressions, ledger = [], [], []
    for day in range(365):
        at = now - timedelta(days=day, minutes=5)
        for n in range(args.per_day):
            partner = partners[n % len(partners)]
            billable = n % 3 != 0
            clicks.append(Click(source_store=store, target_store=partner, target_product_id=n, impression_id=f"{day}-{n}",
                                token_id=f"{day}-{n}", visitor_hash=str(n), billable=billable,
                                reason="billable" if billable else "bot", created_at=at))  # fmt: skip
            impressions.append(Impression(store=store, impression_id=f"{day}-{n}", visitor_hash=str(n), items=4,
                                          partner_items=3, created_at=at))  # fmt: skip
            if billable:
                ledger.append(
                    LedgerEntry(
                        store=store,
                        kind="earn",
                        amount=Decimal("0.80"),
                        counterparty=partner,
                        created_at=at,
                    )
                )
    Click.objects.bulk_create(clicks, batch_size=5000)
    Impression.objects.bulk_create(impressions, batch_size=5000)
    LedgerEntry.objects.bulk_create(ledger, batch_size=5000)

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
    print(
        f"a year of events: {len(clicks):,} clicks, {len(impressions):,} impressions, {len(ledger):,} ledger entries"
    )
    print(
        f"stats for 365 days: median {stats_ms[0]:.0f} ms, worst {stats_ms[1]:.0f} ms (7 queries)"
    )
    print(f"settings page render: median {page_ms[0]:.0f} ms, worst {page_ms[1]:.0f} ms")


if __name__ == "__main__":
    main()
