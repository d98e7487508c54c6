"""Selectors for the settings page: what the app did for a store, in bounded queries."""

from __future__ import annotations

import dataclasses
from collections import Counter
from datetime import UTC, date, datetime, time, timedelta, tzinfo
from decimal import Decimal
from typing import Any, NotRequired, TypedDict

from django.db.models import Count, OuterRef, Q, Sum
from django.db.models.functions import TruncDate
from django.utils import timezone

from recommender import runtime
from recommender.catalog import sync as catalog_sync
from recommender.exchange import attribution, ledger
from recommender.models import (
    AttributedOrder,
    CatalogSync,
    Click,
    Impression,
    LedgerEntry,
    PendingOptOut,
    Product,
    WidgetSettings,
)
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
    # Attributed orders (recommender.exchange.attribution): those the network brought this
    # store (revenue in its currency), and those its clicks brought partners (their revenue
    # in this store's currency at the reference rates).
    orders_received: int
    revenue_received: float
    orders_sent: int
    revenue_sent: float


class DatedDayStats(DayStats):
    date: str


class TotalStats(DayStats):
    ctr: float | None
    revenue_sent_per_1000_impressions: float | None


class PartnerRow(ledger.PartnerLedgerRow):
    orders_received: int
    revenue_received: float
    orders_sent: int
    revenue_sent: float


class StoreStats(TypedDict):
    days: list[DatedDayStats]
    totals: TotalStats
    partners: list[PartnerRow]
    balance: float
    currency: str
    # What the store brought partners is in this currency: its own, or the reference
    # currency where its own has no reference rate (attribution.figures_currency).
    sent_currency: str
    orders_sent_unpriced: int  # orders sent in a currency without a reference rate
    orders_received_unpriced: int  # orders received in a former currency without a rate
    time_zone: str  # the shop's, whose days the series counts


class CatalogOverview(TypedDict):
    synced: int
    eligible: int
    embedded: int
    opted_out: int
    state: str
    syncing: bool  # queued or running: the page looks again until it is done
    last_finished: str | None
    last_error: str
    last_error_at: str | None


class CategoryChip(TypedDict):
    value: str  # what the page posts back
    label: str


class PartnerChoice(TypedDict):
    shop: str
    name: str


class ProductChoice(TypedDict):
    shopify_id: int
    title: str
    opted_out: bool
    eligible: bool
    ineligible_reason: str
    not_synced: NotRequired[bool]  # kept off once the catalog sync reads it


def period_start(days: int, zone: tzinfo = UTC) -> datetime:
    """The start of a period of ``days`` days ending today: midnight in ``zone`` (a store's
    own days; the network's in UTC)."""
    today = timezone.now().astimezone(zone).date()
    start = today - timedelta(days=max(1, min(days, MAX_DAYS)) - 1)
    return datetime.combine(start, time.min, tzinfo=zone)


def store_stats(store: Store, *, days: int) -> StoreStats:
    """Daily series and totals for the last ``days`` days: viewable impressions, raw and
    billable clicks sent and received, credits earned and spent, attributed orders and
    revenue received and sent. Seven aggregate queries, whatever the volume."""
    days = max(1, min(days, MAX_DAYS))
    zone = store.zone  # the shop's own days, midnight to midnight
    since = period_start(days, zone)
    start = since.date()
    series: dict[str, DayStats] = {
        (start + timedelta(days=n)).isoformat(): {
            "impressions": 0, "sent": 0, "sent_billable": 0, "received": 0,
            "received_billable": 0, "earned": 0.0, "spent": 0.0,
            "orders_received": 0, "revenue_received": 0.0, "orders_sent": 0, "revenue_sent": 0.0,
        }
        for n in range(days)
    }  # fmt: skip

    def by_day(queryset, **aggregates):
        return (
            queryset.annotate(day=TruncDate("created_at", tzinfo=zone))
            .values("day")
            .annotate(**aggregates)
        )

    for row in by_day(Impression.objects.filter(store=store, created_at__gte=since), n=Count("id")):
        series[_key(row["day"])]["impressions"] = row["n"]
    sent = Click.objects.filter(source_store=store, created_at__gte=since)
    for row in by_day(sent, n=Count("id"), b=Count("id", filter=Q(billable=True))):
        series[_key(row["day"])].update(sent=row["n"], sent_billable=row["b"])
    # Billable clicks received: those the store pays for, not those held for review (their
    # partner earned nothing yet, and the store is charged only if they are released).
    received = Click.objects.filter(target_store=store, created_at__gte=since).annotate(
        held=ledger.still_held(OuterRef("pk"))
    )
    for row in by_day(received, n=Count("id"), b=Count("id", filter=Q(billable=True, held=False))):
        series[_key(row["day"])].update(received=row["n"], received_billable=row["b"])
    entries = LedgerEntry.objects.filter(store=store, created_at__gte=since)
    for row in by_day(
        entries,
        # Held earnings count as earned once an operator releases them (on that day).
        earned=Sum("amount", filter=Q(kind__in=[LedgerEntry.Kind.EARN, LedgerEntry.Kind.RELEASE])),
        spent=Sum("amount", filter=Q(kind=LedgerEntry.Kind.SPEND)),
    ):
        series[_key(row["day"])].update(
            earned=float(row["earned"] or 0), spent=float(-(row["spent"] or 0))
        )
    currency = store.currency or attribution.REFERENCE_CURRENCY
    sent_currency = attribution.figures_currency(currency)
    found = _attributed_orders(store, since, series, currency, sent_currency, zone)
    orders = found.partners
    summed = {key: sum(day[key] for day in series.values()) for key in DayStats.__annotations__}
    # Totals of money are summed before rounding, as network_status sums them.
    summed["revenue_received"] = float(found.received)
    summed["revenue_sent"] = float(found.sent)
    # Billable clicks sent (held ones included) over viewable impressions: raw clicks count
    # bots and rows never seen, and can outnumber views. (Review judges a store by the same
    # clicks over the views that showed partner items, smoothed: exchange.review.)
    impressions = summed["impressions"]
    ctr = round(summed["sent_billable"] / impressions, 4) if impressions else None
    per_1000 = attribution.per_1000(summed["revenue_sent"], summed["impressions"])
    return {
        "days": [DatedDayStats(date=day, **values) for day, values in series.items()],
        "totals": TotalStats(**summed, ctr=ctr, revenue_sent_per_1000_impressions=per_1000),
        "partners": _with_orders(ledger.partner_ledger(store, since=since), orders, sent_currency),
        "balance": float(ledger.balance(store)),
        "currency": currency,
        "sent_currency": sent_currency,
        "orders_sent_unpriced": found.sent_unpriced,
        "orders_received_unpriced": found.received_unpriced,
        "time_zone": zone.key,
    }


@dataclasses.dataclass
class _Orders:
    partners: dict[int, dict[str, Any]] = dataclasses.field(default_factory=dict)
    received: Decimal = Decimal("0")  # the total received, in the store's currency
    sent: Decimal = Decimal("0")  # the total sent, in the store's figures currency
    sent_unpriced: int = 0  # orders sent in a currency without a reference rate
    received_unpriced: int = 0  # orders received in a currency the store no longer uses


def _attributed_orders(
    store: Store, since: datetime, series: dict[str, DayStats], currency: str,
    sent_currency: str, zone: tzinfo,
) -> _Orders:  # fmt: skip
    """Fill the series with attributed orders received (revenue in ``currency``, the store's)
    and sent (in ``sent_currency``), in two queries; return them per partner, with what
    could not be priced."""
    found = _Orders()
    partners = found.partners

    def partner(store_id: int) -> dict[str, Any]:
        zero = {"orders_received": 0, "received": Decimal("0"), "orders_sent": 0,
                "sent": Decimal("0")}  # fmt: skip
        return partners.setdefault(store_id, zero)

    counted = AttributedOrder.objects.filter(attribution.counted(), created_at__gte=since)
    by_day = counted.annotate(day=TruncDate("created_at", tzinfo=zone))
    # Both sides grouped by the receiving store's currency of the day an order came (a
    # store can change its currency): received orders in the store's own currency, sent
    # ones in its figures currency.
    found.received, found.received_unpriced = _tally(
        by_day.filter(store=store), "received", "source_store_id", currency, series, partner
    )
    found.sent, found.sent_unpriced = _tally(
        by_day.filter(source_store=store), "sent", "store_id", sent_currency, series, partner
    )
    return found


def _tally(
    orders, side: str, partner_field: str, to_currency: str, series: dict[str, DayStats], partner
) -> tuple[Decimal, int]:
    """One side of a store's attributed orders (``side``: "received" or "sent"; ``orders``
    annotated with their ``day``), per day, partner and currency, counted into the days
    and the partners. Amounts are summed per currency and converted once per sum (the
    day's, the partner's, the total's), as network_status does: two stores of one
    currency see the same amount on both sides. Returns the total, and how many orders no
    rate could price."""
    by_partner: dict[int, Counter[str]] = {}
    by_currency: Counter[str] = Counter()
    unpriced = 0
    rows = orders.values("day", partner_field, "store_currency").annotate(
        n=Count("id"), revenue=Sum("total_store_currency")
    )
    for row in rows:
        day, theirs = series[_key(row["day"])], partner(row[partner_field])
        day[f"orders_{side}"] += row["n"]
        theirs[f"orders_{side}"] += row["n"]
        amount = attribution.in_currency(
            row["revenue"], from_currency=row["store_currency"], to_currency=to_currency
        )
        if amount is None:
            unpriced += row["n"]
            continue
        day[f"revenue_{side}"] = round(day[f"revenue_{side}"] + float(amount), 2)
        by_partner.setdefault(row[partner_field], Counter())[row["store_currency"]] += row[
            "revenue"
        ]
        by_currency[row["store_currency"]] += row["revenue"]
    for store_id, sums in by_partner.items():
        partner(store_id)[side] = _converted(sums, to_currency)
    return _converted(by_currency, to_currency), unpriced


def _converted(sums: Counter[str], to_currency: str) -> Decimal:
    """Amounts summed per currency, each sum converted (all have a rate: _tally)."""
    return sum(
        (attribution.convert(amount, from_currency=code, to_currency=to_currency)
         for code, amount in sums.items()),
        Decimal("0"),
    )  # fmt: skip


def _with_orders(
    rows: list[ledger.PartnerLedgerRow], orders: dict[int, dict[str, Any]], currency: str
) -> list[PartnerRow]:
    """The partner ledger with each partner's attributed orders; a partner with orders but
    no billed click yet gets a row of its own (one more query, only then)."""
    missing = set(orders) - {row["store_id"] for row in rows}
    for other in Store.objects.filter(pk__in=missing) if missing else []:
        rows.append({"store_id": other.pk, "shop_domain": other.shop_domain,
                     "name": other.name or other.shop_domain, "clicks_sent": 0,
                     "clicks_received": 0, "net": Decimal("0")})  # fmt: skip
    result: list[PartnerRow] = []
    for row in sorted(rows, key=lambda r: r["shop_domain"]):
        found = orders.get(row["store_id"]) or {}
        sent = found.get("sent", Decimal("0"))
        result.append(
            PartnerRow(
                **row,
                orders_received=found.get("orders_received", 0),
                revenue_received=float(found.get("received", 0)),
                orders_sent=found.get("orders_sent", 0),
                revenue_sent=float(sent),
            )
        )
    return result


def _key(day: date) -> str:
    return day.isoformat()


def catalog_overview(store: Store) -> CatalogOverview:
    counts = Product.objects.filter(store=store).aggregate(
        n_synced=Count("id"),
        n_eligible=Count("id", filter=Q(eligible=True)),
        n_embedded=Count("id", filter=Q(eligible=True, vector__isnull=False)),
        # Among eligible ones: the page says "N of your M eligible products are in the
        # network; K kept off", and a draft chosen in the resource picker was never in it.
        n_opted_out=Count("id", filter=Q(eligible=True, opted_out=True)),
    )
    sync = CatalogSync.objects.filter(store=store).first()
    # The error of the last read while it stands: a read that succeeded since clears it.
    failed = sync is not None and sync.state == CatalogSync.State.FAILED
    return {
        "synced": counts["n_synced"],
        "eligible": counts["n_eligible"],
        "embedded": counts["n_embedded"],
        "opted_out": counts["n_opted_out"],
        "state": sync.get_state_display() if sync else "Not synced yet",
        "syncing": sync is not None
        and sync.state in (CatalogSync.State.QUEUED, CatalogSync.State.RUNNING),
        "last_finished": sync.finished_at.isoformat() if sync and sync.finished_at else None,
        "last_error": catalog_sync.failure_in_words(sync) if failed else "",
        "last_error_at": sync.last_error_at.isoformat() if failed and sync.last_error_at else None,
    }


def known_categories() -> dict[str, str]:
    """Standard-taxonomy categories seen in the network, every level: full name -> id.
    Read from the products table at most once per RECOMMENDER_STATE_TTL_SECONDS in a
    process (a DISTINCT over every product of the network, asked by every save and
    every keystroke of a category search)."""
    return runtime.network_categories.get(_read_known_categories)


def _read_known_categories() -> dict[str, str]:
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


def excluded_category_chips(ids: list[str]) -> list[CategoryChip]:
    """A store's excluded categories as its page shows them: by full name, or by taxonomy id
    once no product in the network is in the category any more (the settings form takes
    that id back, as it is already saved)."""
    by_id = {gid: name for name, gid in known_categories().items()}
    return [
        {"value": by_id[gid], "label": by_id[gid]}
        if gid in by_id
        else {"value": gid, "label": f"{gid} (no longer in the network)"}
        for gid in ids
    ]


def partner_search(store: Store, query: str, *, limit: int = 20) -> list[PartnerChoice]:
    stores = (
        Store.objects.filter(status=Store.Status.ACTIVE)
        .exclude(pk=store.pk)
        .filter(Q(name__icontains=query) | Q(shop_domain__icontains=query))
        .order_by("name")[:limit]
    )
    return [{"shop": s.shop_domain, "name": s.name or s.shop_domain} for s in stores]


def product_search(
    store: Store,
    query: str,
    *,
    opted_out_only: bool = False,
    eligible_only: bool = False,
    limit: int = 30,
) -> list[ProductChoice]:
    found = Product.objects.filter(store=store, title__icontains=query)
    if opted_out_only:
        found = found.filter(opted_out=True)
    if eligible_only:  # the preview: pages the widget can show something on
        found = found.filter(eligible=True)
    products = list(
        found.order_by("title").values(
            "shopify_id", "title", "opted_out", "eligible", "ineligible_reason"
        )[:limit]
    )
    if opted_out_only and len(products) < limit:
        # And those kept off once the sync reads them (controls.set_products_opted_out).
        waiting = PendingOptOut.objects.filter(store=store, title__icontains=query)
        products += [
            {"shopify_id": shopify_id, "title": title, "opted_out": True, "eligible": False,
             "ineligible_reason": "", "not_synced": True}
            for shopify_id, title in waiting.order_by("title", "shopify_id").values_list(
                "shopify_id", "title"
            )[: limit - len(products)]
        ]  # fmt: skip
    return products


# --- the settings page's recent changes -------------------------------------------------------
_SETTING_NAMES = {
    "items": "Products shown", "accent_color": "Accent colour", "text_color": "Text colour",
    "background_color": "Background colour",
}  # fmt: skip
_PRODUCT_CHOICES = {
    "opted_out": "kept off the network",
    "opted_in": "put back in the network",
    "opted_out_once_synced": "to be kept off once your catalog sync reads them",
    "no_longer_opted_out_once_synced": "no longer to be kept off once synced",
}


def change_in_words(changes: dict[str, Any]) -> list[str]:
    """A settings change (SettingsChange.changes: field -> [old, new]; product choices:
    field -> ids) as the merchant reads it, one phrase per field."""
    words = []
    # In the order of the page's form (jsonb keeps its keys in an order of its own).
    order = [*WidgetSettings.MERCHANT_FIELDS, "blocked_stores", *_PRODUCT_CHOICES]
    for field, value in sorted(changes.items(), key=lambda item: _position(order, item[0])):
        if field in _PRODUCT_CHOICES:
            count = len(value)
            words.append(f"{count} product{'s' if count != 1 else ''} {_PRODUCT_CHOICES[field]}")
            continue
        old, new = value
        if field == "enabled":
            words.append("Widget switched on" if new else "Widget switched off")
        elif field == "avoid_competitors":
            words.append(f"Avoid direct competitors {'on' if new else 'off'}")
        elif field == "title":
            words.append(f"Heading {_heading(old)} → {_heading(new)}")
        elif field == "own_share":
            words.append(f"Share of your own products {old} % → {new} %")
        elif field == "blocked_stores":  # [unblocked, blocked]
            words += [f"Blocked {', '.join(new)}"] if new else []
            words += [f"Unblocked {', '.join(old)}"] if old else []
        elif field == "excluded_categories":
            ids = [*old, *new]
            names = {
                gid: chip["label"]
                for gid, chip in zip(ids, excluded_category_chips(ids), strict=True)
            }
            added = [names[gid] for gid in new if gid not in old]
            removed = [names[gid] for gid in old if gid not in new]
            words += [f"Excluded {', '.join(added)}"] if added else []
            words += [f"No longer excluded: {', '.join(removed)}"] if removed else []
        else:
            words.append(f"{_SETTING_NAMES.get(field, field)} {old} → {new}")
    return words


def _position(order: list[str], field: str) -> int:
    return order.index(field) if field in order else len(order)


def _heading(title: str) -> str:
    return f"“{title}”" if title else "in the shopper's language"
