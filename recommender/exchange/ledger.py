"""The credit ledger: append-only entries, balances derived from them.

A balance is the sum of a store's entries, held earnings left out. A click held for review
charges nobody yet; it is resolved once by an operator: released (the partner pays then,
if it can, and the source is paid) or voided (nothing moves)."""

from __future__ import annotations

import logging
from collections.abc import Iterable
from datetime import datetime, timedelta
from decimal import Decimal
from typing import NamedTuple, TypedDict

from django.db import IntegrityError, transaction
from django.db.models import Count, Exists, Max, OuterRef, Q, Sum
from django.utils import timezone

from recommender import runtime
from recommender.exchange.locks import BILLING, lock_for_transaction
from recommender.exchange.rules import (
    EARN_PER_CLICK,
    SPEND_PER_CLICK,
    STARTER_GRANT,
    VOIDED_IN_REVIEW,
    starter_grant_allowed,
)
from recommender.models import Click, LedgerEntry, WidgetSettings
from stores.models import Store

log = logging.getLogger(__name__)

# Entries that count towards a balance: everything but earnings still held for review.
_IN_BALANCE = ~Q(kind=LedgerEntry.Kind.HELD)


class PartnerLedgerRow(TypedDict):
    store_id: int
    shop_domain: str
    name: str
    clicks_sent: int
    clicks_received: int
    net: Decimal


_CENT = Decimal("0.01")


def _cents(total: Decimal | None) -> Decimal:
    """A sum of amounts, to the cent: SQLite sums decimals as floats (25.00 - 24.10 + 0.10
    comes back 0.999999999999999), and a partner holding 1.00 must be able to pay."""
    return (total or Decimal("0")).quantize(_CENT)


def balance(store: Store) -> Decimal:
    total = LedgerEntry.objects.filter(_IN_BALANCE, store=store).aggregate(t=Sum("amount"))["t"]
    return _cents(total)


class BalanceParts(TypedDict):
    given: float  # the starter grant and credits from the Interlayer team
    earned: float  # clicks sent, held ones once released
    spent: float  # clicks received (negative)


def balance_parts(store: Store) -> BalanceParts:
    """The balance as its merchant can check it: what was given, earned and spent, ever
    (the three add up to ``balance``; VOID entries are 0.00)."""
    kinds = LedgerEntry.Kind
    parts = LedgerEntry.objects.filter(_IN_BALANCE, store=store).aggregate(
        given=Sum("amount", filter=Q(kind__in=[kinds.GRANT, kinds.OPERATOR])),
        earned=Sum("amount", filter=Q(kind__in=[kinds.EARN, kinds.RELEASE])),
        spent=Sum("amount", filter=Q(kind=kinds.SPEND)),
    )
    return {name: float(_cents(value)) for name, value in parts.items()}  # type: ignore[return-value]


def balances(store_ids: list[int]) -> dict[int, Decimal]:
    rows = (
        LedgerEntry.objects.filter(_IN_BALANCE, store_id__in=store_ids)
        .values("store_id")
        .annotate(total=Sum("amount"))
    )
    found = {row["store_id"]: row["total"] for row in rows}
    return {store_id: _cents(found.get(store_id)) for store_id in store_ids}


# Every transaction that writes ledger entries commits well within this, so entries older
# than it are visible to everyone (ids come from a sequence and can commit out of order).
SETTLED_AFTER = timedelta(minutes=5)


def running_balances() -> dict[int, Decimal]:
    """Every store's balance, as the network state needs them every few seconds, without
    summing the whole ledger each time: settled entries are summed once per process into a
    base, and each call adds only the entries after it (the last few minutes')."""
    book = runtime.balance_book
    settled_before = timezone.now() - SETTLED_AFTER
    with book.lock:
        if book.watermark is None:
            settled = LedgerEntry.objects.filter(created_at__lte=settled_before)
            book.watermark = settled.aggregate(last=Max("id"))["last"] or 0
            rows = (
                LedgerEntry.objects.filter(_IN_BALANCE, id__lte=book.watermark)
                .values("store_id").annotate(total=Sum("amount"))
            )  # fmt: skip
            book.base = {row["store_id"]: _cents(row["total"]) for row in rows}
        newer = list(
            LedgerEntry.objects.filter(_IN_BALANCE, id__gt=book.watermark)
            .order_by("id").values_list("id", "store_id", "amount", "created_at")
        )  # fmt: skip
        totals = dict(book.base)
        settling = True
        for entry_id, store_id, amount, created in newer:
            totals[store_id] = totals.get(store_id, Decimal("0")) + amount
            # Only a prefix by id moves into the base: an entry out of time order (a clock
            # ahead, a lock wait) stops it, so nothing is ever passed over.
            settling = settling and created <= settled_before
            if settling:
                book.base[store_id] = book.base.get(store_id, Decimal("0")) + amount
                book.watermark = entry_id
        return totals


def exhausted_store_ids(
    store_ids: list[int], *, known: dict[int, Decimal] | None = None
) -> set[int]:
    """Of ``store_ids``, those that cannot pay for one more click (no ledger at all
    included): their products must not be shown to others right now. ``known`` balances
    (running_balances) spare the query."""
    totals = known if known is not None else balances(store_ids)
    return {s for s in store_ids if totals.get(s, Decimal("0")) < SPEND_PER_CLICK}


def can_pay_a_click(store_id: int) -> bool:
    return balances([store_id])[store_id] >= SPEND_PER_CLICK


def still_held(click_id) -> Exists:
    """Whether the click (an OuterRef to it) is held for review, neither released nor
    voided: its partner has not paid for it (yet)."""
    return Exists(_unresolved_held().filter(click_id=click_id))


def _unresolved_held():
    resolved = LedgerEntry.objects.filter(
        resolves=OuterRef("pk"), kind__in=[LedgerEntry.Kind.RELEASE, LedgerEntry.Kind.VOID]
    )
    return LedgerEntry.objects.filter(kind=LedgerEntry.Kind.HELD).exclude(Exists(resolved))


def _held_of(store: Store, through: int | None):
    """``store``'s clicks held for review; with ``through``, those held by that entry and
    before it (the ones an operator listed)."""
    held = _unresolved_held().filter(store=store)
    return held if through is None else held.filter(pk__lte=through)


def held_earnings(store: Store, *, through: int | None = None) -> Decimal:
    """Earnings waiting for review: shown to the merchant, not yet in the balance (with
    ``through``, only those held by that entry and before it)."""
    return _cents(_held_of(store, through).aggregate(t=Sum("amount"))["t"])


class HeldSummary(NamedTuple):
    amount: Decimal
    clicks: int
    through: int  # the newest held entry: what an operator who looked at these has seen


def is_held_entry_of(store: Store, entry_id: int) -> bool:
    """Whether ``entry_id`` names a click of ``store`` held for review (resolved since or
    not): the last one an operator's listing showed for it."""
    return LedgerEntry.objects.filter(pk=entry_id, store=store, kind=LedgerEntry.Kind.HELD).exists()


def held_for_review() -> dict[int, HeldSummary]:
    """Per store, what is held for review, as an operator lists it before resolving."""
    rows = (
        _unresolved_held()
        .values("store_id")
        .annotate(t=Sum("amount"), n=Count("pk"), last=Max("pk"))
    )
    return {row["store_id"]: HeldSummary(_cents(row["t"]), row["n"], row["last"]) for row in rows}


def grant_starter_credits(store: Store) -> bool:
    """Once per store (shop domain), ever, and only on a paying plan; a unique constraint
    makes reinstalls and races harmless."""
    if not starter_grant_allowed(store):
        log.info("no starter grant shop=%s plan=%s", store.shop_domain, store.plan_name)
        return False
    try:
        with transaction.atomic():
            LedgerEntry.objects.create(
                store=store, kind=LedgerEntry.Kind.GRANT, amount=STARTER_GRANT
            )
    except IntegrityError:
        return False
    return True


# The most one operator grant gives (a typo of a few zeros is refused, not paid).
OPERATOR_GRANT_LIMIT = Decimal("1000.00")


def grant_from_operator(store: Store, amount: Decimal, *, reason: str) -> LedgerEntry:
    """Credits an operator gives ``store`` (manage.py grant_credits): any plan, as often as
    needed (a development store under App Store review gets no starter grant, so its
    products could never be shown to work), each with its reason in the ledger."""
    reason = " ".join(reason.split())
    if not reason:
        raise ValueError("say why: the reason is kept in the ledger")
    if not amount.is_finite():
        raise ValueError("give a positive amount")
    if amount > OPERATOR_GRANT_LIMIT:
        raise ValueError(f"give at most {OPERATOR_GRANT_LIMIT} at a time")
    amount = amount.quantize(Decimal("0.01"))
    if amount <= 0:
        raise ValueError("give a positive amount (of at least 0.01)")
    entry = LedgerEntry.objects.create(
        store=store, kind=LedgerEntry.Kind.OPERATOR, amount=amount,
        note=reason[:200],
    )  # fmt: skip
    log.info("operator credits shop=%s amount=%s reason=%r", store.shop_domain, entry.amount,
             entry.note)  # fmt: skip
    return entry


def credit_click(click: Click, *, held: bool) -> None:
    LedgerEntry.objects.bulk_create(click_entries(click, held=held))


def click_entries(click: Click, *, held: bool) -> list[LedgerEntry]:
    """The entries of a billable click: the target spends and the source earns; or, for a
    source under review, only a held earning (nobody is charged until it is released)."""
    earning = LedgerEntry(
        store_id=click.source_store_id, kind=LedgerEntry.Kind.HELD if held else LedgerEntry.Kind.EARN,
        amount=EARN_PER_CLICK, counterparty_id=click.target_store_id, click=click,
        created_at=click.created_at,
    )  # fmt: skip
    if held:
        return [earning]
    spending = LedgerEntry(
        store_id=click.target_store_id, kind=LedgerEntry.Kind.SPEND, amount=-SPEND_PER_CLICK,
        counterparty_id=click.source_store_id, click=click, created_at=click.created_at,
    )  # fmt: skip
    return [earning, spending]


def resolve_held(store: Store, *, release: bool, through: int | None = None) -> tuple[int, int]:
    """Release or void the held clicks of ``store`` (with ``through``, only those held by
    that entry and before it: the ones an operator listed and looked at; clicks held since
    wait for the next review); returns (released, voided).

    Releasing bills the click as settling it would now: the partner pays (under its lock,
    and only if it can pay now: never below zero) and the source is paid; a click the rules
    no longer allow (either store gone, the partner paused, a block either way since) or the
    partner can no longer pay is voided instead, and one whose store is out for a while
    (Shopify froze it, or it must be authorised again) stays held for a later release. A
    voided click is no longer billable in anyone's figures. Safe to run twice: each is
    resolved once."""
    released = voided = 0
    for held in _held_of(store, through).order_by("pk"):
        try:
            with transaction.atomic():
                lock_for_transaction(BILLING)  # charges serialised with settling clicks
                state = _release_state(store.pk, held.counterparty_id) if release else "void"
                if state == "wait":
                    continue
                pays = state == "bill" and can_pay_a_click(held.counterparty_id)
                kind = LedgerEntry.Kind.RELEASE if pays else LedgerEntry.Kind.VOID
                LedgerEntry.objects.create(
                    store=store, kind=kind, amount=held.amount if pays else Decimal("0"),
                    counterparty_id=held.counterparty_id, click_id=held.click_id, resolves=held,
                )  # fmt: skip
                if pays:
                    LedgerEntry.objects.create(
                        store_id=held.counterparty_id, kind=LedgerEntry.Kind.SPEND,
                        amount=-SPEND_PER_CLICK, counterparty=store, click_id=held.click_id,
                    )  # fmt: skip
                elif held.click_id is not None:
                    # It keeps its view's one billable click: the view cannot bill again.
                    Click.objects.filter(pk=held.click_id).update(
                        billable=False, reason=VOIDED_IN_REVIEW
                    )
        except IntegrityError:  # resolved concurrently by another operator
            continue
        released, voided = (released + 1, voided) if pays else (released, voided + 1)
    return released, voided


class BillingState:
    """What billing a click between some stores depends on but the partner's balance, read
    in three queries: their statuses, the paused widgets, the blocks among them. Settling
    a batch (exchange.clicks) and releasing a held click judge by it alike."""

    def __init__(self, store_ids: Iterable[int]) -> None:
        ids = set(store_ids)
        self.statuses = dict(Store.objects.filter(pk__in=ids).values_list("pk", "status"))
        paused = WidgetSettings.objects.filter(store_id__in=ids, enabled=False)
        self.paused = set(paused.values_list("store_id", flat=True))
        blocks = WidgetSettings.blocked_stores.through.objects.filter(
            widgetsettings__store_id__in=ids, store_id__in=ids
        )
        self.blocks = set(blocks.values_list("widgetsettings__store_id", "store_id"))

    def forbids(self, *, source: int, target: int) -> str:
        """Why a click from ``source`` to ``target`` cannot bill now, or "": both stores
        installed, the partner still taking part, no block either way."""
        if self.statuses.get(source) != Store.Status.ACTIVE:
            return "store not active"
        if self.statuses.get(target) != Store.Status.ACTIVE:
            return "partner not active"
        if target in self.paused:
            return "partner not participating"
        if (source, target) in self.blocks or (target, source) in self.blocks:
            return "blocked"
        return ""


# A store out of the exchange for a while, not for good: its held clicks wait.
_OUT_FOR_A_WHILE = (Store.Status.FROZEN, Store.Status.NEEDS_REAUTH)


def _release_state(source_id: int, target_id: int) -> str:
    """ "bill" when settling a click from ``source_id`` to ``target_id`` would bill it now
    but for the partner's balance; "wait" while either store is out for a while; else
    "void"."""
    state = BillingState([source_id, target_id])
    if any(state.statuses.get(pk) in _OUT_FOR_A_WHILE for pk in (source_id, target_id)):
        return "wait"
    return "void" if state.forbids(source=source_id, target=target_id) else "bill"


def partner_ledger(store: Store, *, since: datetime | None = None) -> list[PartnerLedgerRow]:
    """Per partner: billable clicks sent to them, received from them, and net credits
    (since ``since``, else ever)."""
    # A held click is sent unless it was voided (whenever that was; its release is not a
    # second click).
    voided = LedgerEntry.objects.filter(resolves=OuterRef("pk"), kind=LedgerEntry.Kind.VOID)
    sent = Q(kind=LedgerEntry.Kind.EARN) | Q(kind=LedgerEntry.Kind.HELD, voided=False)
    received = Q(kind=LedgerEntry.Kind.SPEND)
    entries = LedgerEntry.objects.filter(store=store, counterparty__isnull=False).annotate(
        voided=Exists(voided)
    )
    if since is not None:
        entries = entries.filter(created_at__gte=since)
    rows = (
        entries.values("counterparty_id", "counterparty__shop_domain", "counterparty__name")
        .annotate(
            clicks_sent=Count("id", filter=sent),
            clicks_received=Count("id", filter=received),
            net=Sum("amount", filter=_IN_BALANCE),
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
            "net": _cents(row["net"]),
        }
        for row in rows
    ]
