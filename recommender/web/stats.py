"""Selectors for the settings page: what the app did for a store, in bounded queries."""

from __future__ import annotations

from datetime import date, timedelta
from typing import TypedDict

from django.db.models import Count, Q, Sum
from django.db.models.functions import TruncDate
from django.utils import timezone

from recommender.exchange import ledger
from recommender.models import CatalogSync, Click, Impression, LedgerEntry, Product
from stores.models import Store

MAX_DAYS = 366


class DayStats(TypedDict):
    impressions: int
    sent: int
    sent_billable: int
    received: int
    received_billable: int
    earned: float
    spent: float


class DatedDayStats(DayStats):
    date: str


class TotalStats(DayStats):
    ctr: float | None


class StoreStats(TypedDict):
    days: list[DatedDayStats]
    totals: TotalStats
    partners: list[ledger.PartnerLedgerRow]
    balance: float


class CatalogOverview(TypedDict):
    synced: int
    eligible: int
    embedded: int
    opted_out: int
    state: str
    last_finished: str | None
    last_error: str
    last_error_at: str | None


class PartnerChoice(TypedDict):
    shop: str
    name: str


class ProductChoice(TypedDict):
    shopify_id: int
    title: str
    opted_out: bool
    eligible: bool
    ineligible_reason: str


def store_stats(store: Store, *, days: int) -> StoreStats:
    """Daily series and totals for the last ``days`` days: viewable impressions, raw and
    billable clicks sent and received, credits earned and spent. Five aggregate queries,
    whatever the volume."""
    days = max(1, min(days, MAX_DAYS))
    start = timezone.now().date() - timedelta(days=days - 1)
    since = timezone.make_aware(timezone.datetime.combine(start, timezone.datetime.min.time()))
    series: dict[str, DayStats] = {
        (start + timedelta(days=n)).isoformat(): {
            "impressions": 0, "sent": 0, "sent_billable": 0, "received": 0,
            "received_billable": 0, "earned": 0.0, "spent": 0.0,
        }
        for n in range(days)
    }  # fmt: skip

    def by_day(queryset, **aggregates):
        return queryset.annotate(day=TruncDate("created_at")).values("day").annotate(**aggregates)

    for row in by_day(Impression.objects.filter(store=store, created_at__gte=since), n=Count("id")):
        series[_key(row["day"])]["impressions"] = row["n"]
    sent = Click.objects.filter(source_store=store, created_at__gte=since)
    for row in by_day(sent, n=Count("id"), b=Count("id", filter=Q(billable=True))):
        series[_key(row["day"])].update(sent=row["n"], sent_billable=row["b"])
    received = Click.objects.filter(target_store=store, created_at__gte=since)
    for row in by_day(received, n=Count("id"), b=Count("id", filter=Q(billable=True))):
        series[_key(row["day"])].update(received=row["n"], received_billable=row["b"])
    entries = LedgerEntry.objects.filter(store=store, created_at__gte=since)
    for row in by_day(
        entries,
        earned=Sum("amount", filter=Q(kind=LedgerEntry.Kind.EARN)),
        spent=Sum("amount", filter=Q(kind=LedgerEntry.Kind.SPEND)),
    ):
        series[_key(row["day"])].update(
            earned=float(row["earned"] or 0), spent=float(-(row["spent"] or 0))
        )
    summed = {key: sum(day[key] for day in series.values()) for key in DayStats.__annotations__}
    ctr = round(summed["sent"] / summed["impressions"], 4) if summed["impressions"] else None
    return {
        "days": [DatedDayStats(date=day, **values) for day, values in series.items()],
        "totals": TotalStats(**summed, ctr=ctr),
        "partners": ledger.partner_ledger(store),
        "balance": float(ledger.balance(store)),
    }


def _key(day: date) -> str:
    return day.isoformat()


def catalog_overview(store: Store) -> CatalogOverview:
    counts = Product.objects.filter(store=store).aggregate(
        n_synced=Count("id"),
        n_eligible=Count("id", filter=Q(eligible=True)),
        n_embedded=Count("id", filter=Q(eligible=True, vector__isnull=False)),
        n_opted_out=Count("id", filter=Q(opted_out=True)),
    )
    sync = CatalogSync.objects.filter(store=store).first()
    return {
        "synced": counts["n_synced"],
        "eligible": counts["n_eligible"],
        "embedded": counts["n_embedded"],
        "opted_out": counts["n_opted_out"],
        "state": sync.get_state_display() if sync else "Not synced yet",
        "last_finished": sync.finished_at.isoformat() if sync and sync.finished_at else None,
        "last_error": sync.last_error if sync else "",
        "last_error_at": sync.last_error_at.isoformat() if sync and sync.last_error_at else None,
    }


def known_categories() -> dict[str, str]:
    """Standard-taxonomy categories seen in the network, every level: full name -> id."""
    rows = (
        Product.objects.exclude(category_id="")
        .values_list("category_id", "category_full_name")
        .distinct()
    )
    names: dict[str, str] = {}
    for gid, full_name in rows:
        prefix, _, code = gid.rpartition("/")
        parts = code.split("-")
        levels = full_name.split(" > ")
        if len(parts) != len(levels):
            names[full_name] = gid
            continue
        for depth in range(1, len(parts) + 1):
            names[" > ".join(levels[:depth])] = f"{prefix}/{'-'.join(parts[:depth])}"
    return names


def category_search(query: str, *, limit: int = 50) -> list[str]:
    """Known category names containing ``query`` (any case), alphabetically."""
    query = query.lower()
    return sorted(name for name in known_categories() if query in name.lower())[:limit]


def category_names(ids: list[str]) -> list[str]:
    by_id = {gid: name for name, gid in known_categories().items()}
    return [by_id.get(gid, gid) for gid in ids]


def partner_search(store: Store, query: str, *, limit: int = 20) -> list[PartnerChoice]:
    stores = (
        Store.objects.filter(status=Store.Status.ACTIVE)
        .exclude(pk=store.pk)
        .filter(Q(name__icontains=query) | Q(shop_domain__icontains=query))
        .order_by("name")[:limit]
    )
    return [{"shop": s.shop_domain, "name": s.name or s.shop_domain} for s in stores]


def product_search(
    store: Store, query: str, *, opted_out_only: bool = False, limit: int = 30
) -> list[ProductChoice]:
    found = Product.objects.filter(store=store, title__icontains=query)
    if opted_out_only:
        found = found.filter(opted_out=True)
    products = found.order_by("title").values(
        "shopify_id", "title", "opted_out", "eligible", "ineligible_reason"
    )[:limit]
    return list(products)
