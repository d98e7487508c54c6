"""The exchange: what merchants are promised, in one place.

- New stores get a starter grant so they are seen from day one.
- A billable click from store A's widget to store B's product earns A ``EARN_PER_CLICK``
  and costs B ``SPEND_PER_CLICK``; the ratio is below 1:1 so the network cannot inflate.
- A click is billable when its token is signed by us and unexpired, it is not from a known
  bot, the same visitor has not clicked the same product in the last 24 hours, the token
  has not been billed before, and A is not B. Raw and billable clicks are both recorded.
- A store whose balance is used up keeps showing partners (and earning), but its own
  products stop appearing on other stores until it earns again.
- Every movement is an append-only ledger entry; balances are sums of entries.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal

from django.conf import settings
from django.core import signing
from django.db import IntegrityError, connection, transaction
from django.db.models import Count, Q, Sum
from django.utils import timezone

from recommender.models import Click, LedgerEntry
from stores.models import Store

STARTER_GRANT = Decimal("25.00")
EARN_PER_CLICK = Decimal("0.80")
SPEND_PER_CLICK = Decimal("1.00")
CLICK_TOKEN_MAX_AGE = timedelta(hours=2)
DEDUPE_WINDOW = timedelta(hours=24)
# Visitor hashes rotate with their salt; two periods are checked so the 24 h window holds.
VISITOR_SALT_PERIOD = timedelta(hours=24)

BOT_USER_AGENT = re.compile(
    r"bot|crawl|spider|slurp|headless|phantom|lighthouse|preview|facebookexternalhit|"
    r"python-requests|python-httpx|curl/|wget|go-http-client|java/|httpclient|scrapy|"
    r"pingdom|uptime|monitor",
    re.IGNORECASE,
)
_TOKEN_SALT = "interlayer.click"  # noqa: S105 - a signing namespace, not a secret

RULES_IN_WORDS = [
    f"New stores start with {STARTER_GRANT.normalize()} credits.",
    f"Each billable click your widget sends to a partner earns you {EARN_PER_CLICK} credits.",
    f"Each billable click a partner's widget sends to you costs {SPEND_PER_CLICK} credit.",
    "A click is billable when it comes through a fresh, signed Interlayer link, is not from a "
    "known bot, is not a repeat by the same visitor on the same product within 24 hours, and "
    "goes to another store.",
    "When your balance runs out, your widget keeps working and earning, but your products stop "
    "appearing on other stores until you earn credits again.",
    "Clicks on your own products in your own widget are free.",
]


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


def partner_ledger(store: Store) -> list[dict]:
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


# --- click tokens -----------------------------------------------------------------------


@dataclass(frozen=True)
class ClickToken:
    token_id: str
    impression_id: str
    source_store_id: int
    target_store_id: int
    target_product_id: int  # Shopify product id


def issue_click_token(
    *, impression_id: str, source_store_id: int, target_store_id: int, target_product_id: int
) -> str:
    payload = {
        "t": secrets.token_hex(8),
        "i": impression_id,
        "s": source_store_id,
        "d": target_store_id,
        "p": target_product_id,
    }
    return signing.dumps(payload, salt=_TOKEN_SALT, compress=False)


class InvalidClickToken(Exception):
    def __init__(self, reason: str):
        super().__init__(reason)
        self.reason = reason


def read_click_token(token: str) -> ClickToken:
    try:
        data = signing.loads(token, salt=_TOKEN_SALT, max_age=CLICK_TOKEN_MAX_AGE.total_seconds())
    except signing.SignatureExpired:
        raise InvalidClickToken("expired") from None
    except signing.BadSignature:
        raise InvalidClickToken("tampered") from None
    return _token_from(data)


def _token_from(data: dict) -> ClickToken:
    try:
        return ClickToken(
            token_id=str(data["t"]),
            impression_id=str(data["i"]),
            source_store_id=int(data["s"]),
            target_store_id=int(data["d"]),
            target_product_id=int(data["p"]),
        )
    except (KeyError, TypeError, ValueError):
        raise InvalidClickToken("tampered") from None


def read_click_token_unchecked_age(token: str) -> ClickToken:
    """A token whose signature is good but which is too old to bill: where it points is
    still trustworthy (an old link should still reach the product)."""
    return _token_from(signing.loads(token, salt=_TOKEN_SALT))


def visitor_hashes(*, ip: str, user_agent: str, now: datetime | None = None) -> tuple[str, str]:
    """(current, previous) salted hashes of a visitor. The salt rotates every period and is
    derived from the secret key, so hashes cannot be reversed or linked across periods."""
    now = now or timezone.now()
    period = int(now.timestamp() // VISITOR_SALT_PERIOD.total_seconds())

    def digest(p: int) -> str:
        salt = hmac.new(settings.SECRET_KEY.encode(), f"visitor-salt:{p}".encode(), hashlib.sha256)
        return hmac.new(salt.digest(), f"{ip}|{user_agent}".encode(), hashlib.sha256).hexdigest()

    return digest(period), digest(period - 1)


def is_bot(user_agent: str) -> bool:
    return not user_agent.strip() or bool(BOT_USER_AGENT.search(user_agent))


# --- recording clicks -------------------------------------------------------------------


def record_click(*, token: ClickToken, ip: str, user_agent: str) -> Click:
    """Record a click and, if billable, move the credits, in one transaction.

    The visitor+product window is serialised with a transaction-scoped advisory lock (on
    PostgreSQL; SQLite serialises writers anyway), and a token can be billed only once
    (unique ``billed_token``), so concurrent clicks never double-count or lose a credit.
    """
    current, previous = visitor_hashes(ip=ip, user_agent=user_agent)
    now = timezone.now()
    with transaction.atomic():
        _lock(f"{current}:{token.target_product_id}")
        reason = _not_billable_because(token, current, previous, user_agent, now)
        click = Click(
            source_store_id=token.source_store_id,
            target_store_id=token.target_store_id,
            target_product_id=token.target_product_id,
            impression_id=token.impression_id[:64],
            token_id=token.token_id[:64],
            visitor_hash=current,
            billable=not reason,
            billed_token=None if reason else token.token_id,
            reason=reason or "billable",
            user_agent=user_agent[:300],
            created_at=now,
        )
        try:
            with transaction.atomic():
                click.save()
        except IntegrityError:  # this token was billed by a concurrent request
            click.pk = None
            click.billable, click.billed_token, click.reason = False, None, "token already billed"
            click.save()
        if click.billable:
            LedgerEntry.objects.bulk_create(
                [
                    LedgerEntry(store_id=token.source_store_id, kind=LedgerEntry.Kind.EARN,
                                amount=EARN_PER_CLICK, counterparty_id=token.target_store_id,
                                click=click, created_at=now),
                    LedgerEntry(store_id=token.target_store_id, kind=LedgerEntry.Kind.SPEND,
                                amount=-SPEND_PER_CLICK, counterparty_id=token.source_store_id,
                                click=click, created_at=now),
                ]
            )  # fmt: skip
    return click


def _not_billable_because(
    token: ClickToken, current: str, previous: str, user_agent: str, now: datetime
) -> str:
    if token.source_store_id == token.target_store_id:
        return "own store"
    if is_bot(user_agent):
        return "bot"
    recent = Click.objects.filter(
        Q(visitor_hash=current) | Q(visitor_hash=previous),
        target_product_id=token.target_product_id,
        billable=True,
        created_at__gte=now - DEDUPE_WINDOW,
    )
    if recent.exists():
        return "repeat within 24h"
    if Click.objects.filter(billed_token=token.token_id).exists():
        return "token already billed"
    return ""


def _lock(key: str) -> None:
    if connection.vendor == "postgresql":
        number = int.from_bytes(hashlib.sha256(key.encode()).digest()[:8], "big", signed=True)
        with connection.cursor() as cursor:
            cursor.execute("SELECT pg_advisory_xact_lock(%s)", [number])
