"""Operator command: re-read a store's catalog from Shopify."""

from __future__ import annotations

from datetime import timedelta

from django.core.management.base import BaseCommand, CommandError

from recommender.catalog import sync as catalog
from stores.auth import valid_shop_domain
from stores.models import Store


class Command(BaseCommand):
    help = "Sync a store's catalog (queued for the worker, or --now in this process)."

    def add_arguments(self, parser) -> None:
        parser.add_argument("shop", nargs="?", help="e.g. coffee-corner.myshopify.com")
        parser.add_argument("--now", action="store_true", help="run here instead of queueing")
        parser.add_argument(
            "--stalled",
            action="store_true",
            help="queue a sync for every active store whose last sync did not finish",
        )

    def handle(self, *args, shop: str | None, now: bool, stalled: bool, **options) -> None:
        if stalled:
            count = catalog.resume_stalled_syncs(older_than=timedelta(0))
            self.stdout.write(f"{count} stalled sync(s) queued")
            return
        if not shop:
            raise CommandError("name a shop, or use --stalled")
        domain = valid_shop_domain(shop)
        store = Store.objects.filter(shop_domain=domain, status=Store.Status.ACTIVE).first()
        if store is None:
            raise CommandError(f"no active store {shop!r}")
        if not now:
            catalog.request_sync(store, requeue=True)  # the operator asks for it
            self.stdout.write(f"sync of {domain} queued")
            return
        sync = catalog.sync_catalog(store)
        self.stdout.write(
            f"{domain}: {sync.state}, {sync.products_seen} products read ({sync.mode})"
            + (f", error: {sync.last_error}" if sync.state == sync.State.FAILED else "")
        )
