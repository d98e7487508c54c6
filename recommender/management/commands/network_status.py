"""Operator command: the state of the whole network at a glance."""

from __future__ import annotations

import json
import time

from django.core.management.base import BaseCommand
from django.db.models import Count, Q
from django_q.brokers import get_broker
from django_q.models import Failure

from recommender.exchange import ledger
from recommender.models import CatalogSync, Product
from recommender.ranking import live_index
from stores.models import Store, WebhookDelivery


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
    held = ledger.held_by_store()
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
        "held_for_review": {domains[pk]: float(amount) for pk, amount in sorted(held.items())},
        "failed_webhooks": WebhookDelivery.objects.filter(
            status__in=[WebhookDelivery.Status.FAILED, WebhookDelivery.Status.DEAD]
        ).count(),
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
        ]
        self.stdout.write("\n".join(lines))
