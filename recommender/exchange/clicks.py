"""A shopper's click on a partner link: where it goes, and whether it bills."""

from __future__ import annotations

import logging
import threading
import time
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal
from functools import cached_property, lru_cache
from typing import ClassVar
from urllib.parse import urlencode, urlsplit, urlunsplit

import psycopg
from django import db
from django.conf import settings
from django.db import transaction
from django.db.backends.base.base import BaseDatabaseWrapper
from django.db.models import Q, QuerySet
from django.utils import timezone

from recommender import runtime
from recommender.exchange import (
    attribution,
    click_journal,
    ledger,
    locks,
    review,
    rules,
    tokens,
)
from recommender.exchange.tokens import ClickToken
from recommender.models import (
    CLICK_PENDING,
    Click,
    Impression,
    LedgerEntry,
    Product,
)
from stores.models import Store

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ClickOutcome:
    location: str | None  # where to send the shopper; None when we cannot tell
    reason: str  # CLICK_PENDING for a recorded click, else why nothing was recorded
    click_id: int | None = None  # the recorded click, settled right after (settle_clicks)


# The outcome of a link followed again once this process recorded RECORDED_FOLLOWS of it
# (follow_click): sent on, not recorded.
FOLLOWED_AGAIN = "followed again"
RECORDED_FOLLOWS = 3


# The outcome of a request the browser says is not a navigation (rules.not_a_navigation):
# sent on, not recorded.
NOT_A_NAVIGATION = "not a navigation"


def follow_click(
    *, host: Store, raw_token: str, ip: str, user_agent: str, record: bool = True
) -> ClickOutcome:
    """Record a click and say where it goes: only ever the product the token names, and
    only from the storefront whose widget issued the token. ``record=False`` (the browser
    says the link was not opened as a page) sends on, recording nothing.

    The click is on record before the shopper is redirected (journaled, or inserted and
    committed: record_click); whether it bills is decided by settle_clicks right after
    the response, so nothing a shopper was redirected for is lost if this process dies
    then: its journal is replayed and the worker's sweep settles it."""
    try:
        token = tokens.read_click_token(raw_token)
    except tokens.InvalidClickToken as error:
        if error.reason != "expired":
            return ClickOutcome(None, error.reason)
        try:
            token = tokens.read_click_token_unchecked_age(raw_token)
        except tokens.InvalidClickToken as unreadable:
            return ClickOutcome(None, unreadable.reason)
        if token.source_store_id != host.pk:
            return ClickOutcome(None, "issued for another store")
        url = _target_url(token)
        # An old link still takes the shopper to the product; it just earns nothing.
        location = _with_utm(url, host) if url else _storefront_instead(token, host)
        return ClickOutcome(location, "expired")
    if token.source_store_id != host.pk:
        return ClickOutcome(None, "issued for another store")
    # A link is recorded the first few times it is followed (a double click, a link preview
    # before the shopper, the back button after a click too quick for the view to count:
    # each judged on its own), then sent on where it went last, with that reference, and
    # not recorded: a script replaying a link fills neither the table nor the settler's
    # queue. Kept per process for as long as a link bills.
    followed = runtime.followed_tokens.get(token.token_id)
    if followed is not None and followed[1] >= RECORDED_FOLLOWS:
        return ClickOutcome(followed[0], FOLLOWED_AGAIN)
    url = _target_url(token)
    if not url:
        return ClickOutcome(_storefront_instead(token, host), "product gone")
    if not record:
        return ClickOutcome(_with_utm(url, host), NOT_A_NAVIGATION)
    click = record_click(token=token, ip=ip, user_agent=user_agent)
    # The partner's web pixel reads the reference where the shopper lands (order attribution).
    location = _with_utm(url, host, reference=attribution.click_reference(click))
    if location is not None:
        recorded = (followed[1] if followed else 0) + 1
        runtime.followed_tokens.put(
            token.token_id,
            (location, recorded),
            ttl_seconds=rules.CLICK_TOKEN_MAX_AGE.total_seconds(),
        )
    return ClickOutcome(location, click.reason, click.pk)


def _target_url(token: ClickToken) -> str:
    """The partner product's URL ("" when it is gone), remembered for the state TTL: the
    click path is the hottest write path the exchange has."""
    key = (token.target_store_id, token.target_product_id)
    return runtime.click_targets.get_or_compute(
        key,
        lambda: (
            Product.objects.filter(store_id=key[0], shopify_id=key[1])
            .exclude(url="")
            .values_list("url", flat=True)
            .first()
            or ""
        ),
    )


def _storefront_instead(token: ClickToken, host: Store) -> str:
    """Where a link whose product is gone takes the shopper: the partner's storefront while
    the partner takes part, else back to the store they were on (never an error page)."""
    partner = Store.objects.filter(pk=token.target_store_id, status=Store.Status.ACTIVE).first()
    return (partner or host).storefront_url


def _with_utm(url: str, source: Store, *, reference: str = "") -> str | None:
    base = _tagged(url, source.shop_name)
    if base is None or not reference:
        return base
    return f"{base}&{urlencode({attribution.REFERENCE_PARAMETER: reference})}"


@lru_cache(maxsize=16_384)
def _tagged(url: str, campaign: str) -> str | None:
    """``url`` with the UTM parameters of a click from the store ``campaign`` names, or None
    when it is not a web address; kept per value, since the same few products are clicked
    from the same stores again and again."""
    parts = urlsplit(url)
    if parts.scheme not in {"http", "https"} or not parts.netloc:
        return None
    utm = urlencode(
        {"utm_source": "interlayer", "utm_medium": "referral", "utm_campaign": campaign}
    )
    query = f"{parts.query}&{utm}" if parts.query else utm
    return urlunsplit((parts.scheme, parts.netloc, parts.path, query, ""))


def record_click(*, token: ClickToken, ip: str, user_agent: str) -> Click:
    """Record a click as it happened, not yet settled (no locks): who clicked (visitor and
    address), the agent and the time, all the rules need. It is
    settled behind the response (settle_after_response).

    Where clicks are settled behind on PostgreSQL, it is appended to this process's
    journal and inserted by the settling thread (click_journal); elsewhere it is written
    with one committed INSERT rather than ``Click.objects.create``: the ORM's model save
    costs more than the statement itself on the exchange's hottest write path (on
    PostgreSQL a prepared statement, ``_insert_prepared``). Either way the Click returned
    has its id, which the shopper's attribution reference carries."""
    now = timezone.now()
    addresses = rules.ip_hashes(ip, now=now)
    sites = rules.site_hashes(ip, now=now)
    # Who clicked, not whom the token names: a view counts for a click only when the same
    # shopper made both (settlement compares this with the view's visitor).
    clicker = rules.visitor_hashes(ip=ip, user_agent=user_agent, now=now)
    written = {
        "source_store_id": token.source_store_id,
        "target_store_id": token.target_store_id,
        "target_product_id": token.target_product_id,
        "impression_id": token.impression_id[:64],
        "token_id": token.token_id[:64],
        "visitor_hash": clicker[0],
        "previous_visitor_hash": clicker[1],
        "ip_hash": addresses[0],
        "previous_ip_hash": addresses[1],
        "site_hash": sites[0],
        "previous_site_hash": sites[1],
        "billable": False,
        "reason": CLICK_PENDING,
        "user_agent": user_agent[:300],
        "created_at": now,
    }
    using = db.router.db_for_write(Click)
    connection = db.connections[using]
    journaled = _journaled(written)
    if journaled is not None:
        written[Click._meta.pk.attname] = journaled
    elif connection.vendor == "postgresql":
        row = [written[field.attname] for field in RECORDED]  # plain str, int, bool, datetime
        written[Click._meta.pk.attname] = _insert_prepared(connection, row)
    else:
        row = [field.get_db_prep_save(written[field.attname], connection) for field in RECORDED]
        with connection.cursor() as cursor:
            cursor.execute(_RECORD_CLICK_SQL, row)
            (written[Click._meta.pk.attname],) = cursor.fetchone()
    # from_db takes every field's value in the model's field order (it ignores the order of
    # the names); the columns not written hold NULL, as they would after objects.create.
    fields = Click._meta.concrete_fields
    return Click.from_db(
        using, [field.attname for field in fields], [written.get(field.attname) for field in fields]
    )


def _journaled(written: dict) -> int | None:
    """The click's id once this process's journal holds it (click_journal), or None where
    there is no journal or it cannot be written (the click is then inserted here)."""
    if not click_journal.enabled():
        return None
    try:
        return click_journal.of_this_process().record(written)
    except click_journal.Unavailable:
        return None
    except OSError:
        log.exception("the click journal cannot be written; recording the click directly")
        return None


# The columns record_click writes: all but the id and the two that stay NULL until the
# click is billed or lands (a field added to Click must be given a value there).
RECORDED = [
    field
    for field in Click._meta.concrete_fields
    if field.attname not in {Click._meta.pk.attname, "billed_impression", "landed_at"}
]
# Names from the model's own metadata, values as parameters.
_RECORD_CLICK_SQL = "INSERT INTO {} ({}) VALUES ({}) RETURNING {}".format(  # noqa: S608
    Click._meta.db_table,
    ", ".join(field.column for field in RECORDED),
    ", ".join(["%s"] * len(RECORDED)),
    Click._meta.pk.column,
)


def _insert_prepared(connection: BaseDatabaseWrapper, row: list) -> int:
    """The click's INSERT on PostgreSQL, as a statement prepared once per persistent
    connection with its values bound by the server (behind PgBouncer in transaction mode
    this needs its ``max_prepared_statements``), on the connection as it stands
    (click_journal.on_connection: no health check ahead of it, a lost connection replaced
    once). Should the first attempt have been committed with only its answer lost, the
    click is recorded twice, and settling bills it at most once (one billable click per
    impression).

    Measured on the click path (bench/storefront_load.py): about half the client's time of
    the same INSERT through Django's cursor, and one round trip fewer."""
    # Prepared where connections last (CONN_MAX_AGE): on a connection used once, preparing
    # would be a round trip of its own.
    persistent = connection.settings_dict["CONN_MAX_AGE"] != 0

    def execute(cursor: psycopg.Cursor) -> int:
        cursor.execute(_RECORD_CLICK_SQL, row, prepare=persistent)
        (pk,) = cursor.fetchone()
        return pk

    return click_journal.on_connection(connection, execute)


def settle_after_response() -> None:
    """Called once the shopper has the redirect (the storefront's redirect calls this when
    the WSGI server closes it): wake this process's settling thread, or settle here. A
    failure loses nothing: the clicks stay pending for the next settler or the sweep."""
    if settings.RECOMMENDER_SETTLE_CLICKS_BEHIND:
        Settler.of_this_process().wake()
        return
    try:
        settle_clicks()
    except Exception:
        log.exception("settling clicks failed; they stay pending for the sweep")


class Settler:
    """A thread of each web process that settles clicks behind the responses. Clicks that
    arrive while it works wait for its next round, so under load one round settles many
    in the same few queries, and no request waits for the rules, the lock or the ledger.
    A round settles what is pending when it starts; what arrives meanwhile is the next
    round's (its requests woke this thread, or the thread of their own process)."""

    def __init__(self) -> None:
        self._wake = threading.Event()
        self._stopping = False
        self._thread = threading.Thread(target=self._run, name="click-settler", daemon=True)
        self._thread.start()

    @classmethod
    def of_this_process(cls) -> Settler:
        with _settler_lock:
            if runtime.click_settler is None:
                runtime.click_settler = cls()
            return runtime.click_settler

    def wake(self) -> None:
        self._wake.set()

    def stop(self) -> None:
        self._stopping = True
        self._wake.set()
        self._thread.join(timeout=10)

    def _run(self) -> None:
        settle_at, replay_at, failures = 0.0, 0.0, 0
        try:
            while True:
                self._wake.wait()
                # The clicks of the moment join: their insert (a pixel may report the
                # shopper's landing a moment after the redirect), then their settling.
                time.sleep(JOURNAL_GATHER_SECONDS)
                self._wake.clear()
                if self._stopping:  # looked at after the clear, which may have taken stop's wake
                    _save_journal()
                    return
                try:
                    db.close_old_connections()
                    _save_journal()
                    if click_journal.enabled() and time.monotonic() >= replay_at:
                        replay_at = time.monotonic() + 60
                        click_journal.recover_orphans()  # a neighbour that died
                    if time.monotonic() < settle_at:
                        self._wake.set()  # back once the settling gather is over
                        continue
                    settle_at = time.monotonic() + SETTLE_GATHER_SECONDS
                    if _settle_pending().busy or _waiting():
                        # Another process was settling, perhaps from before this one's
                        # clicks were written, or clicks are not old enough to settle
                        # yet: look again once the next ones gather.
                        self._wake.set()
                    failures = 0
                except Exception:
                    log.exception("inserting or settling clicks failed; tried again later")
                    db.connection.close()  # a broken connection is not reused
                    failures += 1
                    time.sleep(min(2 ** (failures - 1), 60))  # 1, 2, 4 ... s; a minute at most
                    if click_journal.enabled():
                        # Its journal is this thread's alone to insert, and its young
                        # clicks wait for a round: try again.
                        self._wake.set()
        finally:
            db.connections.close_all()  # this thread's


def _waiting() -> bool:
    """Pending clicks after a round that went through: not old enough yet when it looked
    (_settleable), or inserted meanwhile. (A click that cannot be settled fails its round
    instead, and the thread backs off.)"""
    return click_journal.enabled() and Click.objects.filter(reason=CLICK_PENDING).exists()


def _save_journal() -> None:
    """Insert the clicks this process journaled since the last round (click_journal)."""
    if runtime.click_journal is not None:
        runtime.click_journal.save()


_settler_lock = threading.Lock()
# How long the settling thread lets clicks gather once woken: under load a round then
# settles dozens in the same few queries; a lone click is billed this much later.
SETTLE_GATHER_SECONDS = 0.5
# ... and before it inserts what this process journaled (click_journal): a batch per
# round, and a click is in the table before its shopper's landing is usually reported
# (a landing that comes first waits for it: attribution.CLICK_INSERT_WAIT_SECONDS).
# Under load a round's insert costs as much for its transaction as for its rows: at
# 0.05 s the click redirect's throughput was about a sixth lower, in turns on
# bench/storefront_load.py's setup.
JOURNAL_GATHER_SECONDS = 0.2
# How old a journaled click must be before it is settled (_settleable): well beyond the
# moment every process takes to insert what it journaled.
SETTLE_LAG = timedelta(seconds=1)
SETTLE_BATCH = 500


def settle_clicks() -> int:
    """Apply the rules to every recorded click, oldest first, and bill the billable ones;
    returns how many were settled.

    One settler at a time (the BILLING lock; a request that finds it taken leaves its
    click to the holder), so every rule is applied in the order clicks were recorded with
    nothing interleaving: rate limits, the partner's balance and one billable click per
    impression hold across processes, with a unique ``billed_impression`` behind the last.
    Each batch is one transaction: settled whole or not at all; a batch that fails is
    settled click by click, so a click that cannot be settled holds up no other."""
    settled = 0
    while True:
        done = _settle_pending()
        settled += done.settled
        if done.busy:
            return settled  # the holder looks again after it lets go
        # Looked at after letting go: a click committed while we held the lock, whose
        # request therefore left it to us, is seen here.
        if not _settleable().exists():
            return settled


def _settleable():
    """The pending clicks a round may settle, oldest first. Where clicks are journaled,
    each process inserts its own a moment after they happened, so a click only becomes
    settleable once it is SETTLE_LAG old: by then every process has inserted the
    clicks made before it, and the rules see them in the order they happened (review
    counts a store's billable clicks up to each click's own time)."""
    pending = Click.objects.filter(reason=CLICK_PENDING)
    if click_journal.enabled():
        pending = pending.filter(created_at__lte=timezone.now() - SETTLE_LAG)
    return pending.order_by("created_at", "id")


@dataclass(frozen=True)
class _Settled:
    settled: int
    busy: bool  # another settler held the lock: what it has not seen is still pending


def _settle_pending() -> _Settled:
    """Settle the clicks pending now, in batches, unless another settler holds the lock.
    Clicks recorded meanwhile are left to the next look (settle_clicks looks again at
    once; the settling thread after its next gather, so a busy moment is settled in a
    few large batches rather than a stream of small ones)."""
    settled = 0
    while True:
        batch: list[Click] = []
        try:
            with transaction.atomic():
                if not locks.try_lock_for_transaction(locks.BILLING):
                    return _Settled(settled, busy=True)
                batch = list(_settleable()[:SETTLE_BATCH])
                if batch:
                    _settle(batch)
        except Exception:
            if len(batch) < 2:
                raise
            # One click the database refuses (or the rules cannot judge) must not hold up
            # every click after it, round after round: the batch's clicks are settled one
            # by one instead, and what fails stays pending for a later round (raised).
            log.exception("settling %s clicks failed; settling them one by one", len(batch))
            settled += _settle_one_by_one([click.pk for click in batch])
            continue
        settled += len(batch)
        if len(batch) < SETTLE_BATCH:
            return _Settled(settled, busy=False)


def _settle_one_by_one(click_ids: list[int]) -> int:
    """Settle each of ``click_ids`` still pending in a transaction of its own, in order;
    raises the first failure once the others are settled (the failed ones stay pending)."""
    settled, failure = 0, None
    for click_id in click_ids:
        try:
            with transaction.atomic():
                if not locks.try_lock_for_transaction(locks.BILLING):
                    break  # another settler took over
                click = Click.objects.filter(pk=click_id, reason=CLICK_PENDING).first()
                if click is not None:
                    _settle([click])
                    settled += 1
        except Exception as error:
            failure = failure or error
    if failure is not None:
        raise failure
    return settled


def _settle(batch: list[Click]) -> None:
    book = _Book(batch)
    entries = []
    for click in batch:
        reason = book.not_billable_because(click)
        held = not reason and review.held_at(
            click.source_store_id, click.created_at, address=review.address_of(click)
        )
        click.billable = not reason
        click.billed_impression = None if reason else click.impression_id
        click.reason = reason or (rules.HELD_FOR_REVIEW if held else "billable")
        if click.billable:
            book.bill(click, held=held)
            entries += ledger.click_entries(click, held=held)
            # Written before the next click is judged: review counts the source's billable
            # clicks, and those of this batch are among them.
            Click.objects.filter(pk=click.pk).update(
                billable=True, billed_impression=click.billed_impression, reason=click.reason
            )
    # One UPDATE per outcome rather than a CASE per row: a batch is mostly one outcome.
    for reason, ids in _ids_by_reason(c for c in batch if not c.billable).items():
        Click.objects.filter(pk__in=ids).update(reason=reason)
    LedgerEntry.objects.bulk_create(entries)


def _ids_by_reason(clicks: Iterable[Click]) -> dict[str, list[int]]:
    grouped: dict[str, list[int]] = defaultdict(list)
    for click in clicks:
        grouped[click.reason].append(click.pk)
    return grouped


@dataclass(frozen=True)
class _Billed:
    source: int
    target: int
    visitor: str
    address: str
    site: str
    product: int
    at: datetime

    COLUMNS: ClassVar[tuple[str, ...]] = (
        "source_store_id", "target_store_id", "visitor_hash", "ip_hash", "site_hash",
        "target_product_id", "created_at",
    )  # fmt: skip


def _judged_billable(clicks: QuerySet[Click]) -> list[_Billed]:
    """Those of ``clicks`` the rules judged billable (rules.JUDGED_BILLABLE)."""
    return [
        _Billed(*row)
        for judged in rules.JUDGED_BILLABLE
        for row in clicks.filter(judged).values_list(*_Billed.COLUMNS)
    ]


class _Book:
    """What the rules need to know about a batch of clicks: each part read (in one query)
    the first time a rule asks for it, and what the batch bills kept beside it, so later
    clicks of the batch see earlier ones."""

    def __init__(self, batch: list[Click]) -> None:
        self.batch = batch
        self.earliest = min(c.created_at for c in batch)
        self.stores = {c.source_store_id for c in batch} | {c.target_store_id for c in batch}
        self.new: list[_Billed] = []  # billed by this batch so far
        self.new_impressions: set[str] = set()
        self.spent: dict[int, Decimal] = defaultdict(Decimal)  # balance changes so far

    @cached_property
    def seen(self) -> dict[tuple[str, int], set[str]]:
        """(impression, store) -> the visitors who saw it, for the viewable impressions the
        batch's clicks name."""
        impressions = {c.impression_id for c in self.batch}
        rows = Impression.objects.filter(impression_id__in=impressions)
        seen: dict[tuple[str, int], set[str]] = defaultdict(set)
        for impression_id, store_id, visitor in rows.values_list(
            "impression_id", "store_id", "visitor_hash"
        ):
            seen[(impression_id, store_id)].add(visitor)
        return dict(seen)

    @cached_property
    def billed_impressions(self) -> set[str]:
        impressions = {c.impression_id for c in self.batch}
        rows = Click.objects.filter(billed_impression__in=impressions)
        return set(rows.values_list("billed_impression", flat=True))

    @cached_property
    def by_shoppers(self) -> list[_Billed]:
        """Billable clicks of the batch's visitors, addresses and IPv6 sites within the day
        window."""
        batch = self.batch
        visitors = {h for c in batch for h in (c.visitor_hash, c.previous_visitor_hash) if h}
        addresses = {h for c in batch for h in (c.ip_hash, c.previous_ip_hash) if h}
        sites = {h for c in batch for h in (c.site_hash, c.previous_site_hash) if h}
        shoppers = Q(visitor_hash__in=visitors) | Q(ip_hash__in=addresses)
        if sites:
            # Spelled out, though no site is blank: PostgreSQL proves the sites' partial
            # index (billable ones with a site) from an IN list of at most 100 values, and
            # a batch of more than 50 IPv6 shoppers would scan the whole table instead.
            shoppers |= Q(site_hash__in=sites) & ~Q(site_hash="")
        return _judged_billable(
            Click.objects.filter(shoppers, created_at__gte=self.earliest - rules.DEDUPE_WINDOW)
        )

    @cached_property
    def by_sources(self) -> list[_Billed]:
        """Billable clicks the batch's source stores sent within the hour window."""
        return _judged_billable(
            Click.objects.filter(
                created_at__gte=self.earliest - timedelta(hours=1),
                source_store_id__in={c.source_store_id for c in self.batch},
            )
        )

    @cached_property
    def billing_state(self) -> ledger.BillingState:
        return ledger.BillingState(self.stores)

    @cached_property
    def balances(self) -> dict[int, Decimal]:
        return ledger.balances(sorted(self.stores))

    def balance(self, store_id: int) -> Decimal:
        return self.balances.get(store_id, Decimal("0")) + self.spent[store_id]

    def bill(self, click: Click, *, held: bool) -> None:
        self.new_impressions.add(click.impression_id)
        self.new.append(
            _Billed(click.source_store_id, click.target_store_id, click.visitor_hash,
                    click.ip_hash, click.site_hash, click.target_product_id, click.created_at)
        )  # fmt: skip
        if not held:  # a held click charges nobody until it is released
            self.spent[click.target_store_id] -= rules.SPEND_PER_CLICK
            self.spent[click.source_store_id] += rules.EARN_PER_CLICK

    def not_billable_because(self, click: Click) -> str:
        """The first rule the click breaks, or "" when it is billable. The time windows end
        at the click's own time: what it would have been judged by the moment it came."""
        source, target = click.source_store_id, click.target_store_id
        if source == target:
            return rules.OWN_STORE
        if rules.is_bot(click.user_agent):
            return rules.BOT
        visitor = {click.visitor_hash, click.previous_visitor_hash} - {""}
        viewers = self.seen.get((click.impression_id, source))
        if viewers is None:
            return rules.NO_VIEW
        if not viewers & visitor:  # seen, but by someone else (or this click's agent changed)
            return rules.ANOTHER_SHOPPER
        if click.impression_id in self.new_impressions or (
            click.impression_id in self.billed_impressions
        ):
            return "impression already clicked"
        address = {click.ip_hash, click.previous_ip_hash} - {""}
        day_start = click.created_at - rules.DEDUPE_WINDOW
        hour_start = click.created_at - timedelta(hours=1)
        day = [b for b in (*self.by_shoppers, *self.new) if b.at >= day_start]
        hour = [b for b in day if b.at >= hour_start]
        if any(
            (b.visitor in visitor or b.address in address) and b.product == click.target_product_id
            for b in day
        ):
            return "repeat within 24h"
        if sum(b.visitor in visitor for b in hour) >= rules.BILLABLE_CLICKS_PER_VISITOR_PER_HOUR:
            return "visitor limit"
        if sum(b.address in address for b in hour) >= rules.BILLABLE_CLICKS_PER_IP_PER_HOUR:
            return "address limit"
        if sum(b.address in address for b in day) >= rules.BILLABLE_CLICKS_PER_IP_PER_DAY:
            return "address limit"
        site = {click.site_hash, click.previous_site_hash} - {""}
        if site:
            # Per store the site's clicks came from, and per store they charged: one /48
            # clicking one partner in the widgets of many stores bills that partner once.
            from_site = [b for b in day if b.site in site]
            for between in (
                [b for b in from_site if b.source == source],
                [b for b in from_site if b.target == target],
            ):
                in_hour = sum(b.at >= hour_start for b in between)
                if in_hour >= rules.BILLABLE_CLICKS_PER_SITE_PER_STORE_PER_HOUR:
                    return rules.SITE_LIMIT
                if len(between) >= rules.BILLABLE_CLICKS_PER_SITE_PER_STORE_PER_DAY:
                    return rules.SITE_LIMIT
        sent = (*self.by_sources, *self.new)
        sent_in_hour = sum(b.source == source and b.at >= hour_start for b in sent)
        if sent_in_hour >= rules.BILLABLE_CLICKS_PER_SOURCE_STORE_PER_HOUR:
            return "store limit"
        return self._billing_state_forbids(click=click)

    @cached_property
    def withdrawn(self) -> set[tuple[int, int]]:
        """(store, Shopify product id) of the batch's targets taken out of the exchange since:
        kept off by their merchant, or no longer shown (sold out, a draft). A product deleted
        in the moment since its click was followed (its row gone) is not among them."""
        targets = {(c.target_store_id, c.target_product_id) for c in self.batch}
        rows = Product.objects.filter(
            ~Product.OFFERED,
            store_id__in={store for store, _ in targets},
            shopify_id__in={product for _, product in targets},
        )
        return set(rows.values_list("store_id", "shopify_id")) & targets

    def _billing_state_forbids(self, *, click: Click) -> str:
        """As things stand when the click is settled (under the BILLING lock): both stores
        installed and taking part, the product still in the exchange, the partner able to
        pay, no block either way. Settled a moment after the click, so a store that has
        switched its widget off since earns nothing either (releasing a held click, long
        after, asks this of the partner alone: ledger.resolve_held)."""
        source, target = click.source_store_id, click.target_store_id
        forbidden = self.billing_state.forbids(source=source, target=target)
        if forbidden:
            return forbidden
        if source in self.billing_state.paused:
            return rules.NOT_PARTICIPATING
        if (target, click.target_product_id) in self.withdrawn:
            return rules.PRODUCT_WITHDRAWN
        if self.balance(target) < rules.SPEND_PER_CLICK:
            return "partner cannot pay"
        return ""
