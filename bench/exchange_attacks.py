"""The exchange under attack, through the full stack: gunicorn (2 workers), PostgreSQL, the
simulator's signed app proxy, real HTTP from loopback addresses of their own.

Three small stores (alpha hosts the widget; beta and gamma are its partners). Every
scenario starts from the same state: starter grants only. For each it prints what the
attacking host earned (available), what was held for review, and what partners were
charged. Goal: the honest path moves exactly the published amounts; every attack earns 0
beyond it (a bot rotating real addresses is bounded by review: see the note it prints).

    DATABASE_URL=postgres://.../interlayer_bench .venv/bin/python bench/exchange_attacks.py
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from decimal import Decimal
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.local_servers import cpu_model, full_stack, wait_for  # noqa: E402

PYTHON = sys.executable


def main() -> None:
    stack = full_stack("attacks")
    work, sim_port, app_port = stack.work, stack.sim_port, stack.app_port
    sim_url, app_url = stack.sim_url, stack.app_url
    os.environ.update({
        "INTERLAYER_ENV": "development", "SHOPIFY_SIMULATOR_URL": sim_url,
        "SHOPIFY_APP_URL": app_url, "RECOMMENDER_INDEX_DIR": str(work / "index"),
        "RECOMMENDER_CLICK_JOURNAL_DIR": str(work / "click-journal"),
        "RECOMMENDER_INDEX_POLL_SECONDS": "0.5", "RECOMMENDER_STATE_TTL_SECONDS": "0",
        # Every partner item qualifies: this measures the exchange's rules, not relevance.
        "RECOMMENDER_EMBEDDER": "hash", "RECOMMENDER_RELEVANCE_FLOOR": "-1",
        "DATABASE_CONN_MAX_AGE": "0", "LOG_LEVEL": "WARNING",
        "DJANGO_SETTINGS_MODULE": "interlayer.settings", "ALLOWED_HOSTS": "127.0.0.1",
    })  # fmt: skip
    shops = work / "shops"
    shops.mkdir()
    catalogs = {
        handle: [f"{handle.title()} item {n}" for n in range(8)]
        for handle in ("alpha", "beta", "gamma")
    }
    for handle, titles in catalogs.items():
        products = [
            {"id": 1000 + n, "title": title, "handle": title.lower().replace(" ", "-"),
             "body_html": f"<p>{title}</p>", "vendor": handle, "product_type": "Things",
             "variants": [{"price": "20.00", "inventory_quantity": 5}]}
            for n, title in enumerate(titles)
        ]  # fmt: skip
        (shops / f"{handle}.json").write_text(
            json.dumps({"shop": {"name": handle.title(), "plan": "Basic"}, "products": products})
        )
    subprocess.run([PYTHON, "manage.py", "migrate", "--noinput"], cwd=ROOT, check=True,
                   capture_output=True)  # fmt: skip
    subprocess.run([PYTHON, "manage.py", "flush", "--noinput"], cwd=ROOT, check=True,
                   capture_output=True)  # fmt: skip
    procs = [
        subprocess.Popen([PYTHON, "-m", "simulator", "serve", "--port", str(sim_port),
                          "--app-url", app_url, "--shops", str(shops)],
                         cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL),
        subprocess.Popen([PYTHON, "-m", "gunicorn", "interlayer.wsgi", "--bind",
                          f"127.0.0.1:{app_port}", "--workers", "2", "--log-level", "warning"],
                         cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL),
    ]  # fmt: skip
    try:
        wait_for(sim_url + "/_sim/state")
        wait_for(app_url + "/health")
        run(sim_url, app_url, list(catalogs), catalogs["alpha"])
    finally:
        for proc in procs:
            proc.terminate()
            proc.wait()


def run(sim_url: str, app_url: str, handles: list[str], catalogs_of_alpha: list[str]) -> None:
    import django

    django.setup()
    from recommender.catalog import index_events
    from recommender.catalog import sync as catalog_sync
    from recommender.exchange import ledger, review, rules
    from recommender.models import Click, Impression, LedgerEntry, WidgetSettings
    from stores import tasks as store_tasks
    from stores.models import Store
    from tests import shoppers
    from tests.conftest import wait_until_clicks_settled

    for handle in handles:
        subprocess.run([PYTHON, "-m", "simulator", "install", f"{handle}.myshopify.com",
                        "--app", app_url, "--simulator", sim_url],
                       cwd=ROOT, check=True, capture_output=True)  # fmt: skip
    stores = {s.shop_domain.split(".")[0]: s for s in Store.objects.all()}
    for store in stores.values():
        store_tasks.after_install(store.pk)  # details (the plan), grant, widget settings
        catalog_sync.sync_catalog(store)
    WidgetSettings.objects.update(own_share=0)
    index_events.rebuild_index()
    time.sleep(2)  # the web workers pick up the published index

    def reset() -> None:
        LedgerEntry.objects.exclude(kind=LedgerEntry.Kind.GRANT).delete()
        Click.objects.all().delete()
        Impression.objects.all().delete()
        Store.objects.update(status=Store.Status.ACTIVE)
        for widget in WidgetSettings.objects.all():
            widget.blocked_stores.clear()

    def uninstall_partners() -> None:
        Store.objects.exclude(pk=stores["alpha"].pk).update(status=Store.Status.UNINSTALLED)

    def block_both_ways() -> None:
        WidgetSettings.objects.get(store=stores["alpha"]).blocked_stores.add(stores["beta"])
        WidgetSettings.objects.get(store=stores["gamma"]).blocked_stores.add(stores["alpha"])

    def partners_cannot_pay() -> None:
        for handle in ("beta", "gamma"):
            LedgerEntry.objects.create(store=stores[handle], kind=LedgerEntry.Kind.SPEND,
                                       amount=-(rules.STARTER_GRANT - Decimal("0.50")))  # fmt: skip

    product = 1000
    products = [1000 + n for n in range(len(catalogs_of_alpha))]
    ip_rounds = rules.BILLABLE_CLICKS_PER_IP_PER_HOUR + 5
    scenarios = [
        ("honest: view, then click", 1,
         lambda: shoppers.honest_view_and_click(sim_url, "alpha", product)),
        ("harvest tokens, never view", 0,
         lambda: shoppers.harvest_without_viewing(sim_url, "alpha", product)),
        ("rotate agents after one view", 1,
         lambda: shoppers.rotate_agents_after_one_view(sim_url, "alpha", product)),
        (f"forge X-Forwarded-For ({ip_rounds} rounds)", None,
         lambda: shoppers.spoof_forwarded_addresses(sim_url, "alpha", product, rounds=ip_rounds)),
        ("pad views, click 12 distinct items", None,
         lambda: shoppers.pad_views_from_one_address(sim_url, "alpha", products, views=50, clicks=12)),
        ("bot on 15 real addresses", None,
         lambda: shoppers.bot_rotating_real_addresses(sim_url, "alpha", product, rounds=15)),
        ("replay a billed token", 1,
         lambda: shoppers.replay_a_billed_token(sim_url, "alpha", product)),
        ("16 concurrent clicks, one view", 1,
         lambda: shoppers.concurrent_clicks_on_one_view(sim_url, "alpha", product)),
        ("tokens from before an uninstall", 0,
         lambda: shoppers.view_then(sim_url, "alpha", product, uninstall_partners)),
        ("tokens from before a block", 0,
         lambda: shoppers.view_then(sim_url, "alpha", product, block_both_ways)),
        ("partner cannot pay", 0,
         lambda: shoppers.view_then(sim_url, "alpha", product, partners_cannot_pay)),
    ]  # fmt: skip
    print(f"CPU: {cpu_model()}")
    print(f"published: earn {rules.EARN_PER_CLICK}, spend {rules.SPEND_PER_CLICK} per billable "
          f"click; a store clicking every view is held after {review.CLICKS_BEFORE_A_HOLD}")  # fmt: skip
    print(f"{'scenario':<36} {'clicks':>6} {'billable':>8} {'earned':>7} {'held':>6} "
          f"{'charged':>8} {'beyond honest':>14}")  # fmt: skip
    for name, honest_clicks, play in scenarios:
        reset()
        before = {h: ledger.balance(s) for h, s in stores.items()}
        statuses = play()
        wait_until_clicks_settled()  # billing follows the redirects by the settling thread's gather
        after = {h: ledger.balance(s) for h, s in stores.items()}
        earned = after["alpha"] - before["alpha"]
        held = ledger.held_earnings(stores["alpha"])
        charged = -sum(
            e.amount
            for e in LedgerEntry.objects.filter(kind=LedgerEntry.Kind.SPEND, click__isnull=False)
        )
        billable = Click.objects.filter(billable=True).count()
        allowed = (honest_clicks or 0) * rules.EARN_PER_CLICK
        beyond = (
            f"{earned - allowed:+.2f}"
            if honest_clicks is not None
            else (f"{earned:.2f} (bound {review.CLICKS_BEFORE_A_HOLD * rules.EARN_PER_CLICK:.2f})")
        )
        print(f"{name:<36} {len(statuses):>6} {billable:>8} {earned:>7.2f} {held:>6.2f} "
              f"{charged:>8.2f} {beyond:>14}")  # fmt: skip
    print("\nno partner balance below zero:",
          all(ledger.balance(s) >= 0 for s in stores.values()))  # fmt: skip
    # A dev store on the same stack: installed, no grant.
    print("development-plan store's starter grant:",
          "none" if not rules.starter_grant_allowed(
              Store(plan_name="Development", plan_partner_development=True)) else "GRANTED")  # fmt: skip


if __name__ == "__main__":
    main()
