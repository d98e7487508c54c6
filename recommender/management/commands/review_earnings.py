"""Operator command: earnings held for review — list them, release them, or void them."""

from __future__ import annotations

from django.core.management.base import BaseCommand, CommandError

from recommender.exchange import ledger, review
from stores.auth import valid_shop_domain
from stores.models import Store


class Command(BaseCommand):
    help = (
        "List stores with clicks held for review; --release SHOP --through ENTRY bills the ones "
        "listed (each partner pays if settling would bill the click now and it can pay, else "
        "that click is voided; a click whose store is frozen or must re-authorise waits), "
        "--void SHOP --through ENTRY drops them. ENTRY is the last held entry the listing "
        "showed: clicks held after it were not looked at and stay held."
    )

    def add_arguments(self, parser) -> None:
        action = parser.add_mutually_exclusive_group()
        action.add_argument("--release", metavar="SHOP")
        action.add_argument("--void", metavar="SHOP")
        parser.add_argument("--through", metavar="ENTRY", type=int)

    def handle(self, *args, release: str | None, void: str | None, through: int | None,
               **options) -> None:  # fmt: skip
        shop = release or void
        if shop is None:
            self._list()
            return
        if through is None:
            raise CommandError(
                "name the last held entry you looked at: --through ENTRY (list them first: "
                "manage.py review_earnings)"
            )
        store = Store.objects.filter(shop_domain=valid_shop_domain(shop)).first()
        if store is None:
            raise CommandError(f"unknown store {shop!r}")
        if not ledger.is_held_entry_of(store, through):
            raise CommandError(
                f"entry {through} is no held click of {store.shop_domain}: list them again "
                "(manage.py review_earnings) and take the number on its line"
            )
        released, voided = ledger.resolve_held(store, release=bool(release), through=through)
        notes = []
        if waiting := ledger.held_earnings(store, through=through):
            notes.append(
                f"{waiting:.2f} still held (a store is frozen or must re-authorise: release "
                "again later)"
            )
        if unseen := ledger.held_earnings(store) - waiting:
            notes.append(f"{unseen:.2f} still held, not yet reviewed (held after entry {through})")
        note = "".join(f", {text}" for text in notes)
        self.stdout.write(f"{store.shop_domain}: {released} released, {voided} voided{note}")

    def _list(self) -> None:
        held = ledger.held_for_review()
        for store in Store.objects.filter(pk__in=held).order_by("shop_domain"):
            summary = held[store.pk]
            flag = " (still under review)" if review.under_review(store.pk) else ""
            self.stdout.write(
                f"{store.shop_domain}: {summary.amount:.2f} held ({summary.clicks} clicks, "
                f"through {summary.through}){flag}; resolve with --release or --void "
                f"{store.shop_domain} --through {summary.through}"
            )
        if not held:
            self.stdout.write("no earnings are held for review")
