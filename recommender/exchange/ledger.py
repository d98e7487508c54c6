"""The credit ledger: append-only entries, balances derived from them."""

from __future__ import annotations

from decimal import Decimal
from typing import TypedDict

from django.db import IntegrityError, transaction
from django.db.models import Count, Q, Sum

from recommender.exchange.rules import EARN_PER_CLICK, SPEND_PER_CLICK, STARTER_GRANT
from recommender.models import Click, LedgerEntry
from stores.models import Store


class PartnerLedgerRow(TypedDict):
    store_id: int
    shop_domain: str
    name: str
    clicks_sent: int
    clicks_received: int
    net: Decimal


def balance(store: Store) -> Decimal:
    total = LedgerEntry.objects.filter(store=store).aggregate(total=Sum("amount"))["total"]
    return total or Decimal("0")


def balances(store_ids: list[int]) -> dict[int, Decimal]:
    rows = (
        LedgerEntry.objects.filter(store_id__in=store_ids)
        .values("store_id")
        .annotate(total=Sum("amount"))
    )
    found = {row["store_id"]: row["total"] for row in rows}
    return {store_id: found.get(store_id, Decimal("0")) for store_id in store_ids}


def exhausted_store_ids() -> set[int]:
    """Stores whose products must not be shown to others right now."""
    rows = LedgerEntry.objects.values("store_id").annotate(total=Sum("amount"))
    return {row["store_id"] for row in rows if row["total"] <= 0}


def grant_starter_credits(store: Store) -> bool:
    """Once per store, ever (a unique constraint makes reinstalls and races harmless)."""
    try:
        with transaction.atomic():
            LedgerEntry.objects.create(
                store=store, kind=LedgerEntry.Kind.GRANT, amount=STARTER_GRANT
            )
    except IntegrityError:
        return False
    return True


def credit_click(click: Click) -> None:
    """The two entries of a billable click: the source earns, the target spends."""
    LedgerEntry.objects.bulk_create(
        [
            LedgerEntry(store_id=click.source_store_id, kind=LedgerEntry.Kind.EARN,
                        amount=EARN_PER_CLICK, counterparty_id=click.target_store_id,
                        click=click, created_at=click.created_at),
            LedgerEntry(store_id=click.target_store_id, kind=LedgerEntry.Kind.SPEND,
                        amount=-SPEND_PER_CLICK, counterparty_id=click.source_store_id,
                        click=click, created_at=click.created_at),
        ]
    )  # fmt: skip


def partner_ledger(store: Store) -> list[PartnerLedgerRow]:
    """Per partner: billable clicks sent to them, received from them, and net credits."""
    earn, spend = Q(kind=LedgerEntry.Kind.EARN), Q(kind=LedgerEntry.Kind.SPEND)
    rows = (
        LedgerEntry.objects.filter(store=store, counterparty__isnull=False)
        .values("counterparty_id", "counterparty__shop_domain", "counterparty__name")
        .annotate(
            clicks_sent=Count("id", filter=earn),
            clicks_received=Count("id", filter=spend),
            net=Sum("amount"),
        )
        .order_by("counterparty__shop_domain")
    )
    return [
        {
            "store_id": row["counterparty_id"],
            "shop_domain": row["counterparty__shop_domain"],
            "name": row["counterparty__name"] or row["counterparty__shop_domain"],
            "clicks_sent": row["clicks_sent"],
            "clicks_received": row["clicks_received"],
            "net": row["net"],
        }
        for row in rows
    ]
