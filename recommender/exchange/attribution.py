"""Sales, not only clicks: which orders the exchange brought a store, in one place.

The rules merchants are promised (published in the README and on the settings page from
``RULES_IN_WORDS``): an order a store receives is attributed to the partner whose widget
sent the shopper, when the last exchange click of that browser was at most
``ATTRIBUTION_WINDOW`` before the order; once per order; in the receiving store's currency,
with a reference rate for figures across stores; an order counts for its total less its
refunds, and one refunded in full or cancelled leaves every figure.

How it is known: the click redirect adds an encrypted click reference (``il_ref``) to the
partner's product URL; the receiving store's web pixel keeps it in that store's browser
storage when the shopper lands, and sends it back with ``checkout_completed`` (the order's
id, total, currency and line count: nothing about the customer). The pixel authenticates
with a key bound to its shop (set through ``webPixelCreate``); the reference is bound to the
click and to the store it sent the shopper to, so one shop can neither report another's
orders nor claim another store's clicks. Refunds arrive through the ``refunds/create``
webhook, which has the order read again from Shopify (its total less every refund).

The pixel's report is a claim, not a fact: its key and the reference travel through the
shopper's browser, so anyone can send one. An order counts only once Shopify confirms it
(``verify_order``, in the worker): the order exists in the receiving shop, was placed
within the window after the click, and its total, currency and lines are read from the
Admin API, never taken from the report.
"""

from __future__ import annotations

import logging
import re
import time
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import ROUND_HALF_UP, Decimal, InvalidOperation
from typing import TypedDict

from django.conf import settings
from django.core import signing
from django.db import IntegrityError, transaction
from django.db.models import Count, Q, Sum
from django.utils import timezone

from interlayer.queue import enqueue
from recommender.exchange import rules, tokens
from recommender.models import CLICK_PENDING, AttributedOrder, Click, Impression
from stores import services as store_services
from stores import shopify, webhooks
from stores.models import Store
from stores.webhooks import parse_time

log = logging.getLogger(__name__)

# --- the rules ------------------------------------------------------------------------------
ATTRIBUTION_WINDOW = timedelta(days=7)
# Figures across stores (a partner's sales in its currency, the network's totals) are
# converted at these reference rates: units of REFERENCE_CURRENCY per unit of each currency.
# They are for comparison, not accounting, and are updated with releases. A store's own
# sales need none (Shopify gives an order's total in the shop's currency). A currency
# without one is still taken: its orders count everywhere, and are left out of the
# amounts that would need its rate (each figure says how many were).
REFERENCE_CURRENCY = "USD"
REFERENCE_RATES_AS_OF = "2026-10-30"
_ECB_PER_EUR = {  # the European Central Bank's euro reference rates of that day
    "USD": "1.1172", "JPY": "175.68", "CZK": "24.353", "DKK": "7.4735", "GBP": "0.8338",
    "HUF": "366.33", "PLN": "4.4038", "RON": "5.3447", "SEK": "10.978", "CHF": "0.9194",
    "ISK": "136", "NOK": "10.312", "TRY": "55.8015", "AUD": "1.5904", "BRL": "6.0692",
    "CAD": "1.5606", "CNY": "7.4326", "HKD": "8.7652", "IDR": "20275.17", "ILS": "3.495",
    "INR": "106.084", "KRW": "1491.76", "MXN": "21.1237", "MYR": "4.5325", "NZD": "1.9823",
    "PHP": "71.143", "SGD": "1.4282", "THB": "37.683", "ZAR": "18.6455", "EUR": "1",
    # Fixed to the euro by their central banks.
    "XOF": "655.957", "XAF": "655.957", "KMF": "491.96775", "BAM": "1.95583",
    "CVE": "110.265", "XPF": "119.331742",
}  # fmt: skip
_PER_USD = {  # fixed to the US dollar by their central banks
    "AED": "3.6725", "SAR": "3.75", "QAR": "3.64", "BHD": "0.376", "OMR": "0.3845",
    "JOD": "0.709", "BSD": "1", "BMD": "1", "PAB": "1", "BBD": "2", "BZD": "2", "XCD": "2.7",
    "AWG": "1.79", "ANG": "1.79", "KYD": "0.8333", "DJF": "177.721", "ERN": "15",
}  # fmt: skip
_AT_PAR = {  # at par with another currency (the Nepalese rupee at 1.6 Indian rupees)
    "LSL": ("ZAR", "1"), "NAD": ("ZAR", "1"), "SZL": ("ZAR", "1"), "BTN": ("INR", "1"),
    "FKP": ("GBP", "1"), "GIP": ("GBP", "1"), "SHP": ("GBP", "1"), "NPR": ("INR", "1.6"),
}  # fmt: skip


def _reference_rates() -> dict[str, Decimal]:
    usd_per_eur = Decimal(_ECB_PER_EUR["USD"])
    rates = {code: usd_per_eur / Decimal(per) for code, per in _ECB_PER_EUR.items()}
    rates.update({code: 1 / Decimal(per) for code, per in _PER_USD.items()})
    rates.update({code: rates[base] / Decimal(per) for code, (base, per) in _AT_PAR.items()})
    rates[REFERENCE_CURRENCY] = Decimal("1")
    return rates


REFERENCE_RATES = _reference_rates()
# An order worth more than this in the reference currency is not a shopper's order;
# refused rather than recorded. Judged by its worth, not its number: a million rupiah is
# about 55 US dollars, a million pounds more than a million dollars.
MAX_ORDER_REFERENCE_TOTAL = Decimal("1000000")
# The most the figures' columns hold (DecimalField(max_digits=14, decimal_places=2)): the
# bound of an order in a currency without a reference rate, and of every conversion.
MAX_AMOUNT = Decimal("999999999999.99")
# Orders one click can bring, reported, confirmed or rejected alike: a shopper buys once or
# twice after a click.
MAX_ORDERS_PER_CLICK = 5
# A store asks Shopify about at most this many reported orders an hour (each is an Admin API
# call on its budget; click references are cheap to make, so reports are too); the rest
# wait for reconciliation. Far above the orders a partner's widget brings a store in an hour.
CONFIRMATIONS_PER_STORE_PER_HOUR = 300
# Reports waiting to be confirmed that clicks from one address may bring a store (a shopper
# buys once or twice; anyone can make clicks and post reports for them), and that a store
# may have from every address together, beyond which new ones are refused: one address
# cannot fill a store's queue and have its real orders refused.
MAX_UNCONFIRMED_PER_ADDRESS = 10
MAX_UNCONFIRMED_PER_STORE = 1_000
# A click that billed nothing can still have brought a shopper who buys (a phone that left
# Wi-Fi between the view and the click): only clicks that were no shopper's bring no orders.
_NOT_A_SHOPPER = frozenset({rules.OWN_STORE, rules.BOT})

RULES_IN_WORDS = [
    "An order your store receives is attributed to the partner whose widget sent the shopper "
    f"when that browser's last Interlayer click was at most {ATTRIBUTION_WINDOW.days} days "
    "before the order. A later click through another partner takes over; an order is counted "
    "once, however often it is reported.",
    "Amounts are in your store's currency. Figures across stores (what you brought partners, "
    f"network totals) use published reference rates to {REFERENCE_CURRENCY}, for comparison, "
    "not accounting; an order in a currency without one is counted but left out of them.",
    "An order counts for its total less what was refunded of it; one refunded in full or "
    "cancelled leaves every figure, for you and for the partner.",
    "Orders are reported by Interlayer's web pixel, only when the shopper allows analytics and "
    "marketing under your store's privacy settings. Only the order's number, total, currency "
    "and number of lines are sent; nothing that identifies the customer is sent or stored.",
    "An order counts once Shopify confirms it: Interlayer looks the order up in your store "
    "and takes its total and number of items from Shopify, not from the report; cancelled and "
    f"test orders do not count, nor orders reported after a bot's click, and one click brings "
    f"at most {MAX_ORDERS_PER_CLICK} orders.",
    "Attributed orders are shown to both stores; they move no credits.",
]

# The query parameter the click redirect adds to the partner's URL (the pixel reads it).
REFERENCE_PARAMETER = "il_ref"
_REFERENCE_SALT = "interlayer.click-reference"
_PIXEL_KEY_SALT = "interlayer.pixel-key"
# Shopify's order id, written one way: Shopify reads "0123" (or other digits than ASCII's)
# as the number they make, so one order could be reported under several ids here and
# attributed once for each. ASCII digits only, without leading zeros. Checkout surfaces
# may write it as an OrderIdentity gid, whose number is the order's id in the Admin API.
_ORDER_ID = re.compile(r"\A(?:gid://shopify/Order(?:Identity)?/)?0*([1-9][0-9]{0,19})\Z")
# The most lines an order's report may say it has (the pixel counts lines, not units).
MAX_ORDER_LINES = 10_000
_CURRENCY = re.compile(r"\A[A-Z]{3}\Z")


class AttributionRefused(Exception):
    """A pixel request that must not count, with what to answer."""

    def __init__(self, message: str, *, status: int):
        super().__init__(message)
        self.message = message
        self.status = status


# --- the signed pieces ------------------------------------------------------------------------
def click_reference(click: Click) -> str:
    """The ``il_ref`` the click redirect adds to the partner's URL: bound to the click and
    to the store the shopper is sent to, and private (the partner's analytics and logs
    keep it; the click's id would tell them the network's click count)."""
    return tokens.seal(
        {"c": click.pk, "d": click.target_store_id}, purpose=_REFERENCE_SALT, private=True
    )


def _read_click_reference(raw: str) -> tuple[int, int]:
    try:
        data = tokens.unseal(raw, purpose=_REFERENCE_SALT)
        return int(data["c"]), int(data["d"])
    except (signing.BadSignature, KeyError, TypeError, ValueError):
        raise AttributionRefused("click reference is not valid", status=401) from None


def pixel_key(shop_domain: str) -> str:
    """The key a store's web pixel sends with every event: the shop, signed by us."""
    return signing.Signer(salt=_PIXEL_KEY_SALT).sign(shop_domain)


def pixel_settings(store: Store) -> dict[str, str]:
    """The web pixel's settings for ``store`` (the fields of the extension's
    shopify.extension.toml), given to ``webPixelCreate``/``webPixelUpdate``."""
    return {
        "endpoint": f"{settings.SHOPIFY_APP_URL.rstrip('/')}/pixel/events",
        "key": pixel_key(store.shop_domain),
    }


# A store out of the exchange for a while (Shopify refused our token, or froze the shop)
# keeps its storefront and pixel: a shopper a partner sent there days before still buys,
# and Shopify confirms the order once the store is back. The pixel reports only once.
_TAKES_ORDERS = (Store.Status.ACTIVE, Store.Status.NEEDS_REAUTH, Store.Status.FROZEN)


def pixel_store(*, key: str, shop: str) -> Store:
    """The installed store a pixel request speaks for: its key must be ours and name
    ``shop``."""
    try:
        key_shop = signing.Signer(salt=_PIXEL_KEY_SALT).unsign(key)
    except signing.BadSignature:
        raise AttributionRefused("pixel key is not valid", status=401) from None
    if key_shop != shop:
        raise AttributionRefused("pixel key belongs to another shop", status=403)
    store = Store.objects.filter(shop_domain=shop, status__in=_TAKES_ORDERS).first()
    if store is None:
        raise AttributionRefused("unknown shop", status=404)
    return store


def _click_for(store: Store, reference: str, *, wait: bool = True) -> Click:
    click_id, target_store_id = _read_click_reference(reference)
    if target_store_id != store.pk:
        raise AttributionRefused("click reference is for another store", status=403)
    waits = wait and _fresh(reference)
    deadline = time.monotonic() + (CLICK_INSERT_WAIT_SECONDS if waits else 0)
    while (click := Click.objects.filter(pk=click_id, target_store=store).first()) is None:
        if time.monotonic() >= deadline:
            raise AttributionRefused("click reference is not valid", status=401)
        time.sleep(0.05)
    return click


# A click is inserted a moment after its redirect (exchange.click_journal: the settling
# thread's gather of 0.2 s after the round it is in, unless the database is away); a
# pixel reporting the landing at once may come first, and is answered once the click is
# there. The pixel reports a landing once, so the wait leaves a round that settles a
# backlog time to end. Only a reference made in the last few seconds waits: an old one
# replayed cannot hold a web process.
CLICK_INSERT_WAIT_SECONDS = 2.0
FRESH_REFERENCE_SECONDS = 10


def _fresh(reference: str) -> bool:
    try:
        tokens.unseal(reference, purpose=_REFERENCE_SALT, max_age=FRESH_REFERENCE_SECONDS)
    except signing.BadSignature:  # SignatureExpired among them
        return False
    return True


# --- what the pixel reports -------------------------------------------------------------------
def record_landing(*, store: Store, reference: str, now: datetime | None = None) -> str:
    """page_viewed with a click reference: the shopper arrived (first landing kept). A link
    opened after the click's window (shared, bookmarked) is no landing of that click."""
    click = _click_for(store, reference)
    now = now or timezone.now()
    if now - click.created_at > ATTRIBUTION_WINDOW:
        return "click older than the attribution window"
    Click.objects.filter(pk=click.pk, landed_at__isnull=True).update(landed_at=now)
    return "landed"


@dataclass(frozen=True)
class ReportedOrder:
    order_id: str
    total: Decimal
    currency: str
    line_count: int


def reported_order(
    *, order_id: object, total: object, currency: object, lines: object
) -> ReportedOrder:
    """Validate what the pixel says of an order; AttributionRefused (400) when malformed."""
    match = _ORDER_ID.match(str(order_id or ""))
    if match is None:
        raise AttributionRefused("order id must be Shopify's order id", status=400)
    try:
        amount = Decimal(str(total)).quantize(Decimal("0.01"), ROUND_HALF_UP)
    except (InvalidOperation, ValueError):
        raise AttributionRefused("total must be a decimal amount", status=400) from None
    if not amount.is_finite() or not Decimal("0") <= amount <= MAX_AMOUNT:
        raise AttributionRefused("total is out of range", status=400)
    code = str(currency or "")
    if not _CURRENCY.match(code):
        raise AttributionRefused("currency must be a three-letter currency code", status=400)
    reference = in_currency(amount, from_currency=code, to_currency=REFERENCE_CURRENCY)
    if reference is not None and reference > MAX_ORDER_REFERENCE_TOTAL:
        raise AttributionRefused("total is out of range", status=400)
    if not isinstance(lines, int) or isinstance(lines, bool) or not 0 <= lines <= MAX_ORDER_LINES:
        raise AttributionRefused("lines must be a count", status=400)
    return ReportedOrder(match.group(1), amount, code, lines)


def convert(amount: Decimal, *, from_currency: str, to_currency: str) -> Decimal:
    """``amount`` at the reference rates; both currencies must have one (has_rate), unless
    they are the same."""
    if from_currency == to_currency:
        return amount.quantize(Decimal("0.01"), ROUND_HALF_UP)
    rate = REFERENCE_RATES[from_currency] / REFERENCE_RATES[to_currency]
    return (amount * rate).quantize(Decimal("0.01"), ROUND_HALF_UP)


def has_rate(currency: str) -> bool:
    return currency in REFERENCE_RATES


def in_currency(amount: Decimal, *, from_currency: str, to_currency: str) -> Decimal | None:
    """``amount`` in ``to_currency``, or None where a currency without a reference rate
    stands in the way (the amount is then counted, not priced)."""
    if from_currency != to_currency and not (has_rate(from_currency) and has_rate(to_currency)):
        return None
    return convert(amount, from_currency=from_currency, to_currency=to_currency)


def figures_currency(currency: str) -> str:
    """The currency a store's figures across stores (what it brought partners) are shown in:
    its own, or the reference currency where its own has no reference rate."""
    return currency if has_rate(currency) else REFERENCE_CURRENCY


# The references a pixel keeps and reports with an order (the last landings, newest first).
MAX_REFERENCES = 5


def record_order(
    *,
    store: Store,
    reference: str,
    order: ReportedOrder,
    now: datetime | None = None,
    earlier: list[str] | tuple[str, ...] = (),
) -> str:
    """checkout_completed with the browser's click references: attribute the order to the
    source store of the last click within the window; once per order. ``reference`` is the
    latest landing's, ``earlier`` the ones the browser landed with before it: the order is
    the latest click's among them that is still within its window, whichever link the
    shopper happened to open last (an old shared link does not take it)."""
    now = now or timezone.now()
    click = _last_click(store, [reference, *earlier][:MAX_REFERENCES], now)
    if now - click.created_at > ATTRIBUTION_WINDOW:
        return "click older than the attribution window"
    if click.source_store_id == store.pk:
        return rules.OWN_STORE
    waiting = _unconfirmed(store)
    if waiting.filter(click__ip_hash=click.ip_hash).count() >= MAX_UNCONFIRMED_PER_ADDRESS:
        return "too many unconfirmed orders from this address"
    if waiting.count() >= MAX_UNCONFIRMED_PER_STORE:
        return "too many unconfirmed orders"
    amounts = _amounts(store, order.total, order.currency)
    if not _storable(amounts):  # in the store's currency, past what its column holds
        raise AttributionRefused("total is out of range", status=400)
    try:
        with transaction.atomic():
            # One report of this click at a time, so the cap below holds under concurrency.
            Click.objects.select_for_update().filter(pk=click.pk).first()
            if AttributedOrder.objects.filter(click=click).count() >= MAX_ORDERS_PER_CLICK:
                return "too many orders for one click"
            recorded = AttributedOrder.objects.create(
                store=store, source_store_id=click.source_store_id, click=click,
                clicked_at=click.created_at, created_at=now,
                **amounts, line_count=order.line_count,
                order_id=order.order_id,
            )  # fmt: skip
            transaction.on_commit(lambda: _confirm_later(store.pk, [recorded.pk]))
    except IntegrityError:  # the pixel reported this order before
        return "already attributed"
    return "attributed"


def _last_click(store: Store, references: list[str], now: datetime) -> Click:
    """The latest click within the window among the references' (AttributionRefused as the
    first reference's when none is a click of this store); the latest of all when none is
    within it."""
    clicks, refused = [], None
    for n, reference in enumerate(dict.fromkeys(references)):
        try:
            # Only the latest landing's click may be a moment from its insert.
            clicks.append(_click_for(store, reference, wait=n == 0))
        except AttributionRefused as error:
            refused = refused or error
    if not clicks:
        raise refused or AttributionRefused("click reference is not valid", status=401)
    within = [click for click in clicks if now - click.created_at <= ATTRIBUTION_WINDOW]
    return max(within or clicks, key=lambda click: (click.created_at, click.pk))


def _amounts(store: Store, total: Decimal, currency: str) -> dict[str, object]:
    """Shopify's total (in the shop's currency) in the store's currency, and in the reference
    currency for figures across stores (None: no reference rate for it)."""
    store_currency = store.currency or currency
    in_store = in_currency(total, from_currency=currency, to_currency=store_currency)
    if in_store is None:  # the shop's own money, as Shopify gave it
        store_currency, in_store = currency, total
    return {
        "total": total,
        "currency": currency,
        "total_store_currency": in_store,
        "store_currency": store_currency,
        "total_reference": in_currency(
            total, from_currency=currency, to_currency=REFERENCE_CURRENCY
        ),
    }


def _storable(amounts: dict[str, object]) -> bool:
    """Whether an order's amounts (_amounts) are a shopper's order's, and each fits its
    column: worth at most MAX_ORDER_REFERENCE_TOTAL where a reference rate prices it."""
    reference = amounts["total_reference"]
    return amounts["total_store_currency"] <= MAX_AMOUNT and (
        reference is None or reference <= MAX_ORDER_REFERENCE_TOTAL
    )


def unpriced_orders() -> Count:
    """How many orders (of a grouped query) have no reference total: their currency has
    no reference rate; counted, not in the amounts."""
    return Count("id", filter=Q(total_reference__isnull=True))


# Reported, neither confirmed nor rejected yet.
_PENDING = Q(verified_at__isnull=True, rejected_at__isnull=True)


def _unconfirmed(store: Store):
    return AttributedOrder.objects.filter(_PENDING, store=store)


def _confirm_later(store_id: int, order_pks: list[int]) -> int:
    """Queue the questions to Shopify about a store's orders, as many as its hourly budget
    leaves (the rest wait for reconciliation); returns how many were queued."""
    now = timezone.now()
    asked = AttributedOrder.objects.filter(
        store_id=store_id, asked_at__gte=now - timedelta(hours=1)
    ).count()
    queued = order_pks[: max(CONFIRMATIONS_PER_STORE_PER_HOUR - asked, 0)]
    AttributedOrder.objects.filter(pk__in=queued).update(asked_at=now)
    for pk in queued:
        _ask(pk)
    return len(queued)


def _ask(order_pk: int) -> None:
    """Queue the question to Shopify about one reported order (verify_order, in the worker)."""
    enqueue("recommender.tasks.verify_order", order_pk, task_name=f"verify-order:{order_pk}")


ORDER_QUERY = """
query AttributedOrder($id: ID!) {
  order(id: $id) {
    createdAt
    cancelledAt
    test
    totalPriceSet { shopMoney { amount currencyCode } }
    subtotalLineItemsQuantity
    totalRefundedSet { shopMoney { amount } }
  }
}
"""
# Shopify's clock and ours: an order a few seconds "before" its click is still after it.
CLOCK_SKEW = timedelta(minutes=5)
# An order the Admin API does not show yet may be one a moment old: asked about again
# until it is this old, then taken for one the shop never had.
ORDER_VISIBLE_WITHIN = timedelta(hours=1)
# Reconciliation asks again about an order asked about this long ago without an answer
# (Shopify away, the store needing re-authorisation, a lost task), and rejects one asked
# about but still unconfirmed after CONFIRM_WITHIN. Rejected reports are kept (they count
# toward MAX_ORDERS_PER_CLICK) for REJECTED_KEPT, in no figure.
ASK_AGAIN_AFTER = timedelta(minutes=30)
CONFIRM_WITHIN = timedelta(days=14)
REJECTED_KEPT = timedelta(days=30)


def _reject(order: AttributedOrder, why: str, now: datetime) -> str:
    AttributedOrder.objects.filter(pk=order.pk).update(rejected_at=now)
    return f"{why}: rejected"


def verify_order(order: AttributedOrder, *, now: datetime | None = None) -> str:
    """Ask Shopify about a reported order: it counts (with Shopify's total, currency and
    number of items) only if the receiving shop has it, placed within the window after a
    shopper's click, neither cancelled nor a test order; otherwise it is rejected. It
    counts for its total less what was refunded of it by then; refunded in full, it is
    confirmed in no figure. The answer is not taken when the order was asked about again
    meanwhile (a refund came: recount_refunded). Shopify being unreachable raises;
    reconciliation asks again."""
    now = now or timezone.now()
    if order.verified_at is not None or order.rejected_at is not None:
        return "already answered"
    click = Click.objects.filter(pk=order.click_id).only("reason").first()
    if click is None or click.reason in _NOT_A_SHOPPER:
        return _reject(order, "not a shopper's click", now)
    if click.reason == CLICK_PENDING:
        return "its click is not settled yet: asked again later"
    response = store_services.admin_graphql(
        order.store, ORDER_QUERY, {"id": f"gid://shopify/Order/{order.order_id}"}
    )
    found = (response.data or {}).get("order")
    if not found:
        if now - order.created_at < ORDER_VISIBLE_WITHIN:
            return "not visible yet: asked again later"
        return _reject(order, "not an order of this shop", now)
    if found.get("cancelledAt") or found.get("test"):
        return _reject(order, "cancelled or a test order", now)
    try:
        placed, total, currency, lines, refunded = _order_answer(found)
    except _UNREADABLE:
        # Asked again it would answer the same: neither counted nor asked about for 14 days.
        log.warning("Shopify's answer about an order could not be read order=%s", order.pk)
        return _reject(order, "Shopify's answer could not be read", now)
    if not order.clicked_at - CLOCK_SKEW <= placed <= order.clicked_at + ATTRIBUTION_WINDOW:
        return _reject(order, "placed outside the click's window", now)
    if not _CURRENCY.match(currency) or not Decimal("0") <= total <= MAX_AMOUNT:
        return _reject(order, "a currency or total the figures cannot take", now)
    # Refunds made before the order was reported, or before it was confirmed (their
    # refunds/create found nothing to count again): Shopify's answer is what says so.
    kept = _kept(total, refunded)
    amounts = _amounts(order.store, kept, currency)
    if not _storable(amounts):
        return _reject(order, "a currency or total the figures cannot take", now)
    gone = {"refunded_at": now} if _gone(total, refunded) else {}
    # Not over another answer, nor with one a refund since asked for again (it moves
    # asked_at, recount_refunded): that newer question's answer counts.
    written = AttributedOrder.objects.filter(
        pk=order.pk, verified_at__isnull=True, rejected_at__isnull=True, asked_at=order.asked_at
    ).update(**amounts, line_count=lines, verified_at=now, **gone)
    if not written:
        return "asked again meanwhile: the newer answer counts"
    if gone:
        return "confirmed, refunded"
    return "confirmed, partly refunded" if refunded > 0 else "confirmed"


# What reading Shopify's answer about an order can raise when the answer is not one.
_UNREADABLE = (KeyError, TypeError, ValueError, ArithmeticError, AttributeError)


def _gone(total: Decimal, refunded: Decimal) -> bool:
    """Refunded in full: something was refunded, and nothing of the order is left (a free
    order, of nothing refunded, still counts as an order)."""
    return refunded > 0 and total - refunded <= 0


def _kept(total: Decimal, refunded: Decimal) -> Decimal:
    """What an order counts for: its total less what was refunded of it, never below 0."""
    return max(total - refunded, Decimal("0")).quantize(Decimal("0.01"), ROUND_HALF_UP)


def _order_answer(found: dict) -> tuple[datetime, Decimal, str, int, Decimal]:
    """When the order was placed, its total, currency, number of items and how much of it
    was refunded, as Shopify's answer gives them; ValueError (or another reading error)
    when they are not."""
    placed = parse_time(found["createdAt"])
    if placed is None:
        raise ValueError("no time the order was placed")
    money = found["totalPriceSet"]["shopMoney"]
    total = Decimal(str(money["amount"]))
    if not total.is_finite():
        raise ValueError("order total is not an amount")
    # Units, not lines: a wholesale order can hold many; bounded by the column.
    lines = found.get("subtotalLineItemsQuantity") or 0
    if not isinstance(lines, int) or isinstance(lines, bool) or not 0 <= lines < 2**31:
        raise ValueError("number of items out of range")
    refunded = Decimal(str(((found.get("totalRefundedSet") or {}).get("shopMoney") or {}).get(
        "amount") or "0"))  # fmt: skip
    if not refunded.is_finite() or refunded < 0:
        raise ValueError("refunded amount is not an amount")
    return placed, total, str(money["currencyCode"]), lines, refunded


def confirm_pending_orders(*, now: datetime | None = None) -> int:
    """Reconciliation: ask again about orders still unconfirmed whose last question is
    ASK_AGAIN_AFTER old (Shopify away, a lost task, an order not visible yet), reject those
    asked about and unconfirmed for CONFIRM_WITHIN, and delete rejected ones past
    REJECTED_KEPT. Returns how many questions were queued."""
    now = now or timezone.now()
    AttributedOrder.objects.filter(rejected_at__lt=now - REJECTED_KEPT).delete()
    pending = AttributedOrder.objects.filter(_PENDING)
    pending.filter(created_at__lt=now - CONFIRM_WITHIN, asked_at__isnull=False).update(
        rejected_at=now
    )
    due = pending.filter(Q(asked_at__isnull=True) | Q(asked_at__lt=now - ASK_AGAIN_AFTER))
    by_store: dict[int, list[int]] = {}
    for store_id, pk in due.order_by("created_at").values_list("store_id", "pk"):
        by_store.setdefault(store_id, []).append(pk)
    return sum(_confirm_later(store_id, pks) for store_id, pks in by_store.items())


def _orders_named(store: Store, order_id: object):
    """The store's attributed orders a webhook's order id names, or why there are none (the
    outcome to record)."""
    match = _ORDER_ID.match(str(order_id or ""))
    if match is None:
        return "payload without an order id"
    orders = AttributedOrder.objects.filter(store=store, order_id=match.group(1))
    return orders if orders.exists() else "order not attributed"


def remove_refunded(*, store: Store, order_id: object, now: datetime | None = None) -> str:
    """A cancellation (orders/cancelled), or a refund of all of it: the order leaves every
    figure. Safe to repeat."""
    found = _orders_named(store, order_id)
    if isinstance(found, str):
        return found
    found.filter(refunded_at__isnull=True).update(refunded_at=now or timezone.now())
    return "refunded order removed"


def recount_refunded(
    *, store: Store, order_id: object, now: datetime | None = None, last_try: bool = False
) -> str:
    """A refund (refunds/create): a confirmed order counts for what is left of it, as
    Shopify's answer gives it now (its total less every refund of it); refunded in full,
    it leaves every figure. Safe to repeat, and to run twice at once: refunds only ever
    lower what is left, so of two answers the lower one stays. An order not confirmed yet
    is asked about again, its refunds in the answer. Any other error of Shopify's raises
    (tried again), but on the ``last_try``; then, or with a store Shopify will not answer
    for (its token refused, the shop frozen) or an answer that cannot be read, the order
    leaves the figures: a refund that cannot be sized."""
    now = now or timezone.now()
    orders = _orders_named(store, order_id)
    if isinstance(orders, str):
        return orders
    counting = orders.filter(counted())
    counted_order = counting.first()
    if counted_order is None:
        pending = list(orders.filter(_PENDING).values_list("pk", flat=True))
        if not pending:
            return "order not counted"
        # An answer about it may be on its way from before this refund: asked again, and
        # that answer is no longer taken (verify_order writes only for the latest question).
        AttributedOrder.objects.filter(pk__in=pending).update(asked_at=now)
        for pk in pending:
            _ask(pk)
        return "order not confirmed yet: asked again, with its refund"
    answer = None  # Shopify's (total, currency, refunded), when it gave one
    try:
        response = store_services.admin_graphql(
            store, ORDER_QUERY, {"id": f"gid://shopify/Order/{counted_order.order_id}"}
        )
        _, total, currency, _, refunded = _order_answer((response.data or {}).get("order"))
        if not Decimal("0") <= total <= MAX_AMOUNT or refunded > MAX_AMOUNT:
            raise ValueError("an amount the figures cannot take")
        answer = (total, currency, refunded)
    except (shopify.ShopifyAuthError, shopify.ShopUnavailable, *_UNREADABLE):
        pass  # Shopify will not answer for the store, or not readably: cannot be sized
    except shopify.ShopifyError:
        if not last_try:  # away, throttled, or an error it may not make again
            raise
    return _recounted(store, counting, answer, now)


def _recounted(store: Store, counting, answer: tuple | None, now: datetime) -> str:
    """What a recount writes: the order's amounts for what is left of it, or the order out
    of the figures (refunded in full, or a refund that cannot be sized: no ``answer``)."""
    if answer is not None:
        total, currency, refunded = answer
        kept = _kept(total, refunded)
        amounts = _amounts(store, kept, currency)
        if not _gone(total, refunded) and _storable(amounts):
            # Not above what an answer written meanwhile left (refunds only lower it).
            counting.exclude(currency=currency, total__lt=kept).update(**amounts)
            return "partly refunded: counts for what is left" if refunded else "nothing refunded"
    counting.update(refunded_at=now)
    return "refunded order removed"


def handle_refund_webhook(delivery) -> str:
    """The handler registered for refunds/create (a stores.models.WebhookDelivery)."""
    last_try = delivery.attempts >= webhooks.MAX_ATTEMPTS
    return _on_webhook(delivery, "order_id", recount_refunded, last_try=last_try)


def handle_cancel_webhook(delivery) -> str:
    """The handler registered for orders/cancelled: a cancelled order leaves every figure as
    a refunded one does (an unpaid order cancelled brings no refund)."""
    return _on_webhook(delivery, "id", remove_refunded)


def _on_webhook(delivery, order_id_key: str, act, **options) -> str:
    store = Store.objects.filter(shop_domain=delivery.shop_domain).first()
    if store is None:
        return "unknown shop"
    return act(store=store, order_id=delivery.payload.get(order_id_key), **options)


# --- figures ------------------------------------------------------------------------------------
def counted() -> Q:
    """Orders that count: confirmed by Shopify, not refunded."""
    return Q(refunded_at__isnull=True, verified_at__isnull=False)


def _summed(orders, store_field: str, currency_of) -> dict[int, dict]:
    """Per store (``store_field``: the receiving or the sending one): how many ``orders``,
    their revenue in ``currency_of(store)`` (summed per currency, each sum converted once),
    and how many no rate could price."""
    summed: dict[int, dict] = {}
    for row in orders.values(store_field, "store_currency").annotate(
        n=Count("id"), revenue=Sum("total_store_currency")
    ):
        store_id = row[store_field]
        these = summed.setdefault(store_id, {"n": 0, "revenue": Decimal("0"), "unpriced": 0})
        amount = in_currency(
            row["revenue"], from_currency=row["store_currency"], to_currency=currency_of(store_id)
        )
        these["n"] += row["n"]
        if amount is None:
            these["unpriced"] += row["n"]
        else:
            these["revenue"] += amount
    return summed


class StoreSales(TypedDict):
    """What the network brought a store, and what the store brought its partners."""

    orders_received: int
    revenue_received: float  # in the store's currency
    # of orders_received, those in a currency the store no longer uses, without a rate
    orders_received_unpriced: int
    orders_sent: int
    revenue_sent: float  # partners' revenue, in sent_currency at reference rates
    orders_sent_unpriced: int  # of orders_sent, those in a currency without a reference rate
    currency: str
    sent_currency: str  # figures_currency(currency)
    impressions: int
    revenue_sent_per_1000_impressions: float | None


def per_1000(revenue: float, impressions: int) -> float | None:
    return round(revenue * 1000 / impressions, 2) if impressions else None


def store_sales(*, since: datetime, store_ids: list[int] | None = None) -> dict[int, StoreSales]:
    """Per store since ``since``: attributed orders and revenue received and sent, and
    revenue sent per 1,000 viewable impressions. Three grouped queries for any number of
    stores (``network_status`` and the settings page read the same figures from here)."""
    stores = Store.objects.all() if store_ids is None else Store.objects.filter(pk__in=store_ids)
    currencies = dict(stores.values_list("pk", "currency"))
    orders = AttributedOrder.objects.filter(counted(), created_at__gte=since)
    views = Impression.objects.filter(created_at__gte=since)
    if store_ids is not None:
        views = views.filter(store_id__in=store_ids)
    # Each order's total is in the receiving store's currency of the day it came (a store
    # can change its currency): summed per currency and converted once, so two stores of
    # one currency see the same amount on both sides.
    received = _summed(orders.filter(store_id__in=currencies), "store_id",
                       lambda pk: currencies[pk] or REFERENCE_CURRENCY)  # fmt: skip
    sent = _summed(orders.filter(source_store_id__in=currencies), "source_store_id",
                   lambda pk: figures_currency(currencies[pk] or REFERENCE_CURRENCY))  # fmt: skip
    impressions = dict(
        views.values("store_id").annotate(n=Count("id")).values_list("store_id", "n")
    )
    figures: dict[int, StoreSales] = {}
    for store_id, currency in currencies.items():
        currency = currency or REFERENCE_CURRENCY
        got, gave = received.get(store_id) or {}, sent.get(store_id) or {}
        sent_currency = figures_currency(currency)
        revenue_sent = float(gave.get("revenue") or 0)
        views_n = impressions.get(store_id, 0)
        figures[store_id] = {
            "orders_received": got.get("n", 0),
            "revenue_received": float(got.get("revenue") or 0),
            "orders_received_unpriced": got.get("unpriced", 0),
            "orders_sent": gave.get("n", 0),
            "revenue_sent": revenue_sent,
            "orders_sent_unpriced": gave.get("unpriced", 0),
            "currency": currency,
            "sent_currency": sent_currency,
            "impressions": views_n,
            "revenue_sent_per_1000_impressions": per_1000(revenue_sent, views_n),
        }
    return figures
