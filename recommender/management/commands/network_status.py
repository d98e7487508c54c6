"""Operator command: the state of the whole network at a glance."""

from __future__ import annotations

import json
import time

from django.core.management.base import BaseCommand
from django.db.models import Count, Q, Sum
from django_q.brokers import get_broker
from django_q.models import Failure

from recommender.exchange import attribution, ledger
from recommender.models import AttributedOrder, CatalogSync, Product
from recommender.ranking import live_index
from recommender.web.stats import period_start
from stores.models import Store, WebhookDelivery

# Attributed sales are reported over the settings page's default period, with its figures.
SALES_DAYS = 30


def attributed_sales(days: int = SALES_DAYS) -> dict:
    """Orders the exchange brought, network-wide (reference currency) and per store (each in
    its own currency), over the last ``days`` days: what each settings page shows."""
    since = period_start(days)
    per_store = attribution.store_sales(since=since)
    domains = dict(Store.objects.filter(pk__in=per_store).values_list("pk", "shop_domain"))
    network = AttributedOrder.objects.filter(attribution.counted(), created_at__gte=since)
    totals = network.aggregate(
        n=Count("id"),
        revenue=Sum("total_reference"),
        unpriced=attribution.unpriced_orders(),
    )
    return {
        "days": days,
        "orders": totals["n"],
        "revenue": float(totals["revenue"] or 0),
        # In the orders, not in the revenue: a currency without a reference rate.
        "orders_unpriced": totals["unpriced"],
        "currency": attribution.REFERENCE_CURRENCY,
        "stores": {
            domains[pk]: figures
            for pk, figures in sorted(per_store.items())
            if figures["orders_received"] or figures["orders_sent"]
        },
    }


def network_status() -> dict:
    stores = Store.objects.values("status").annotate(n=Count("id")).order_by("status")
    counts = Product.objects.aggregate(
        n_total=Count("id"),
        n_eligible=Count("id", filter=Q(eligible=True)),
        n_embedded=Count("id", filter=Q(eligible=True, vector__isnull=False)),
    )
    products = {name.removeprefix("n_"): value for name, value in counts.items()}
    syncs = CatalogSync.objects.values("state").annotate(n=Count("id")).order_by("state")
    index = live_index.status()
    held = ledger.held_for_review()
    domains = dict(Store.objects.filter(pk__in=held).values_list("pk", "shop_domain"))
    return {
        "stores": {row["status"]: row["n"] for row in stores},
        "products": products,
        "catalog_syncs": {row["state"]: row["n"] for row in syncs},
        "index": {
            "size": index["size"],
            "kind": index["kind"],
            "version": index["version"],
            "age_seconds": round(time.time() - index["built_at"]) if index["version"] else None,
        },
        "queue_depth": get_broker().queue_size(),
        "failed_tasks": Failure.objects.count(),
        "held_for_review": {domains[pk]: float(it.amount) for pk, it in sorted(held.items())},
        "failed_webhooks": WebhookDelivery.objects.filter(
            status__in=[WebhookDelivery.Status.FAILED, WebhookDelivery.Status.DEAD]
        ).count(),
        "attributed_sales": attributed_sales(),
    }


class Command(BaseCommand):
    help = "Print the network's state: stores, products, index, queue and failures."

    def add_arguments(self, parser) -> None:
        parser.add_argument("--json", action="store_true")

    def handle(self, *args, **options) -> None:
        live_index.current(refresh=True)
        state = network_status()
        if options["json"]:
            self.stdout.write(json.dumps(state))
            return
        p = state["products"]
        i = state["index"]
        lines = [
            "stores:        " + ", ".join(f"{n} {s}" for s, n in state["stores"].items()),
            f"products:      {p['total']} ({p['eligible']} eligible, {p['embedded']} embedded)",
            "catalog syncs: " + ", ".join(f"{n} {s}" for s, n in state["catalog_syncs"].items()),
            f"index:         {i['size']} vectors, {i['kind']} search, "
            + (
                f"built {i['age_seconds']}s ago"
                if i["age_seconds"] is not None
                else "not built yet"
            ),
            f"queue:         {state['queue_depth']} waiting, {state['failed_tasks']} failed tasks",
            f"webhooks:      {state['failed_webhooks']} failed deliveries",
            "held earnings: "
            + (
                ", ".join(
                    f"{shop} {amount:.2f}" for shop, amount in state["held_for_review"].items()
                )
                or "none"
            )
            + (" (manage.py review_earnings)" if state["held_for_review"] else ""),
            _sales_line(state["attributed_sales"]),
            *(
                f"  {shop}: {f['orders_received']} orders received ({f['revenue_received']:.2f} "
                f"{f['currency']}"
                + (
                    f", {f['orders_received_unpriced']} in a former currency not priced"
                    if f["orders_received_unpriced"]
                    else ""
                )
                + f"), {f['orders_sent']} sent ({f['revenue_sent']:.2f} "
                f"{f['sent_currency']}"
                + (f", {f['orders_sent_unpriced']} not priced" if f["orders_sent_unpriced"] else "")
                + (
                    f", {f['revenue_sent_per_1000_impressions']:.2f} per 1,000 impressions)"
                    if f["revenue_sent_per_1000_impressions"] is not None
                    else ")"
                )
                for shop, f in state["attributed_sales"]["stores"].items()
            ),
        ]
        self.stdout.write("\n".join(lines))


def _sales_line(sales: dict) -> str:
    return (
        f"attributed:    {sales['orders']} orders, {sales['revenue']:.2f} {sales['currency']} "
        f"in the last {sales['days']} days (refunded orders left out"
        + (
            f"; {sales['orders_unpriced']} in currencies without a reference rate, not in the "
            "amount)"
            if sales["orders_unpriced"]
            else ")"
        )
    )
