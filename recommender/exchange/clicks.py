"""A shopper's click on a partner link: where it goes, and whether it bills."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import datetime
from urllib.parse import urlencode, urlsplit, urlunsplit

from django.db import IntegrityError, connection, transaction
from django.db.models import Q
from django.utils import timezone

from recommender.exchange import ledger, rules, tokens
from recommender.exchange.tokens import ClickToken
from recommender.models import Click, Product
from stores.models import Store


@dataclass(frozen=True)
class ClickOutcome:
    location: str | None  # where to send the shopper; None when we cannot tell
    billable: bool
    reason: str


def follow_click(*, host: Store, raw_token: str, ip: str, user_agent: str) -> ClickOutcome:
    """Record a click and say where it goes: only ever the product the token names, and
    only from the storefront whose widget issued the token."""
    try:
        token = tokens.read_click_token(raw_token)
    except tokens.InvalidClickToken as error:
        if error.reason != "expired":
            return ClickOutcome(None, False, error.reason)
        token = tokens.read_click_token_unchecked_age(raw_token)
        if token.source_store_id != host.pk:
            return ClickOutcome(None, False, "issued for another store")
        product = _target(token)
        # An old link still takes the shopper to the product; it just earns nothing.
        return ClickOutcome(_with_utm(product, host) if product else None, False, "expired")
    if token.source_store_id != host.pk:
        return ClickOutcome(None, False, "issued for another store")
    product = _target(token)
    if product is None:
        return ClickOutcome(None, False, "product gone")
    click = record_click(token=token, ip=ip, user_agent=user_agent)
    return ClickOutcome(_with_utm(product, host), click.billable, click.reason)


def _target(token: ClickToken) -> Product | None:
    return (
        Product.objects.filter(store_id=token.target_store_id, shopify_id=token.target_product_id)
        .exclude(url="")
        .first()
    )


def _with_utm(product: Product, source: Store) -> str | None:
    parts = urlsplit(product.url)
    if parts.scheme not in {"http", "https"} or not parts.netloc:
        return None
    utm = urlencode(
        {
            "utm_source": "interlayer",
            "utm_medium": "referral",
            "utm_campaign": source.shop_name,
        }
    )
    query = f"{parts.query}&{utm}" if parts.query else utm
    return urlunsplit((parts.scheme, parts.netloc, parts.path, query, ""))


def record_click(*, token: ClickToken, ip: str, user_agent: str) -> Click:
    """Record a click and, if billable, move the credits, in one transaction.

    The visitor+product window is serialised with a transaction-scoped advisory lock (on
    PostgreSQL; SQLite serialises writers anyway), and a token can be billed only once
    (unique ``billed_token``), so concurrent clicks never double-count or lose a credit.
    """
    current, previous = rules.visitor_hashes(ip=ip, user_agent=user_agent)
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
                click.save(force_insert=True)
        except IntegrityError:  # this token was billed by a concurrent request
            click.pk = None
            click.billable, click.billed_token, click.reason = False, None, "token already billed"
            click.save(force_insert=True)
        if click.billable:
            ledger.credit_click(click)
    return click


def _not_billable_because(
    token: ClickToken, current: str, previous: str, user_agent: str, now: datetime
) -> str:
    if token.source_store_id == token.target_store_id:
        return "own store"
    if rules.is_bot(user_agent):
        return "bot"
    recent = Click.objects.filter(
        Q(visitor_hash=current) | Q(visitor_hash=previous),
        target_product_id=token.target_product_id,
        billable=True,
        created_at__gte=now - rules.DEDUPE_WINDOW,
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
