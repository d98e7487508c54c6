"""Operator command: what a shopper on a page of this store would see, and why."""

from __future__ import annotations

import json

from django.core.management.base import BaseCommand, CommandError

from recommender.ranking import live_index
from recommender.ranking.recommendations import recommendations_for
from stores.auth import valid_shop_domain
from stores.models import Store


class Command(BaseCommand):
    help = "Show the recommendations for a store's page (a product page with --product)."

    def add_arguments(self, parser) -> None:
        parser.add_argument("shop")
        parser.add_argument("--product", type=int, help="Shopify product id of the viewed product")
        parser.add_argument("--limit", type=int)
        parser.add_argument(
            "--raw", action="store_true", help="nearest partner products, hard filters only"
        )
        parser.add_argument("--explain", action="store_true", help="say why each item is there")
        parser.add_argument("--json", action="store_true", help="machine-readable output")

    def handle(self, *args, shop, product, limit, raw, explain, **options) -> None:
        store = Store.objects.filter(shop_domain=valid_shop_domain(shop)).first()
        if store is None:
            raise CommandError(f"unknown store {shop!r}")
        live_index.current(refresh=True)
        items = recommendations_for(store, product_id=product, limit=limit, raw=raw)
        if options["json"]:
            self.stdout.write(json.dumps([item.as_dict(operator=True) for item in items], indent=2))
            return
        if not items:
            self.stdout.write("nothing relevant to show")
        for number, item in enumerate(items, 1):
            line = f"{number:>2}. [{item.slot}] {item.product.title} — {item.product.store.shop_domain} ({item.score:.3f})"
            self.stdout.write(line + (f"\n      {item.explanation}" if explain else ""))
