"""Operator command: earnings held for review — list them, release them, or void them."""

from __future__ import annotations

from django.core.management.base import BaseCommand, CommandError

from recommender.exchange import ledger, review
from stores.auth import valid_shop_domain
from stores.models import Store


class Command(BaseCommand):
    help = (
        "List stores with clicks held for review; --release SHOP bills them (each partner pays "
        "if settling would bill the click now and it can pay, else that click is voided; a "
        "click whose store is frozen or must re-authorise waits), --void SHOP drops them."
    )

    def add_arguments(self, parser) -> None:
        action = parser.add_mutually_exclusive_group()
        action.add_argument("--release", metavar="SHOP")
        action.add_argument("--void", metavar="SHOP")

    def handle(self, *args, release: str | None, void: str | None, **options) -> None:
        shop = release or void
        if shop is None:
            held = ledger.held_by_store()
            for store in Store.objects.filter(pk__in=held).order_by("shop_domain"):
                flag = " (still under review)" if review.under_review(store.pk) else ""
                self.stdout.write(f"{store.shop_domain}: {held[store.pk]:.2f} held{flag}")
            if not held:
                self.stdout.write("no earnings are held for review")
            return
        store = Store.objects.filter(shop_domain=valid_shop_domain(shop)).first()
        if store is None:
            raise CommandError(f"unknown store {shop!r}")
        released, voided = ledger.resolve_held(store, release=bool(release))
        waiting = ledger.held_earnings(store)
        note = (
            f", {waiting:.2f} still held (a store is frozen or must re-authorise: release again "
            "later)"
            if waiting
            else ""
        )
        self.stdout.write(f"{store.shop_domain}: {released} released, {voided} voided{note}")
