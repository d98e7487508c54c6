"""Operator command: give a store credits, with the reason kept in its ledger."""

from __future__ import annotations

from decimal import Decimal, InvalidOperation

from django.core.management.base import BaseCommand, CommandError

from recommender.exchange import ledger
from stores.auth import valid_shop_domain
from stores.models import Store


class Command(BaseCommand):
    help = (
        "Give SHOP AMOUNT credits, with --reason kept in its ledger: e.g. a development store "
        "under App Store review, which gets no starter grant and so is never shown on other "
        f"stores. At most {ledger.OPERATOR_GRANT_LIMIT} at a time."
    )

    def add_arguments(self, parser) -> None:
        parser.add_argument("shop")
        parser.add_argument("amount")
        parser.add_argument("--reason", required=True)

    def handle(self, *args, shop: str, amount: str, reason: str, **options) -> None:
        domain = valid_shop_domain(shop)
        store = Store.objects.filter(shop_domain=domain).first() if domain else None
        if store is None:
            raise CommandError(f"unknown store {shop!r}")
        try:
            given = Decimal(amount)
        except InvalidOperation:
            raise CommandError(f"give a positive amount, not {amount!r}") from None
        try:
            entry = ledger.grant_from_operator(store, given, reason=reason)
        except ValueError as error:
            raise CommandError(str(error)) from None
        self.stdout.write(
            f"{store.shop_domain}: {entry.amount:.2f} given ({entry.note}); "
            f"balance {ledger.balance(store):.2f}"
        )
