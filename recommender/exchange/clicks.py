"""A shopper's click on a partner link: where it goes, and whether it bills."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from urllib.parse import urlencode, urlsplit, urlunsplit

from django.db import IntegrityError, transaction
from django.db.models import Q
from django.utils import timezone

from recommender.exchange import attribution, ledger, locks, review, rules, tokens
from recommender.exchange.tokens import ClickToken
from recommender.models import Click, Impression, Product, WidgetSettings
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
        try:
            token = tokens.read_click_token_unchecked_age(raw_token)
        except tokens.InvalidClickToken as unreadable:
            return ClickOutcome(None, False, unreadable.reason)
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
    # The partner's web pixel reads the reference where the shopper lands (order attribution).
    location = _with_utm(product, host, reference=attribution.click_reference(click))
    return ClickOutcome(location, click.billable, click.reason)


def _target(token: ClickToken) -> Product | None:
    return (
        Product.objects.filter(store_id=token.target_store_id, shopify_id=token.target_product_id)
        .exclude(url="")
        .first()
    )


def _with_utm(product: Product, source: Store, *, reference: str = "") -> str | None:
    parts = urlsplit(product.url)
    if parts.scheme not in {"http", "https"} or not parts.netloc:
        return None
    utm = urlencode(
        {
            "utm_source": "interlayer",
            "utm_medium": "referral",
            "utm_campaign": source.shop_name,
            **({attribution.REFERENCE_PARAMETER: reference} if reference else {}),
        }
    )
    query = f"{parts.query}&{utm}" if parts.query else utm
    return urlunsplit((parts.scheme, parts.netloc, parts.path, query, ""))


def record_click(*, token: ClickToken, ip: str, user_agent: str) -> Click:
    """Record a click and, if billable, move the credits, in one transaction.

    Billing is serialised (locks.lock_for_transaction) per store of the pair, per visitor
    and per address, so the rate limits, the partner's balance and the one billable click
    per impression hold under concurrency and across processes; a unique
    ``billed_impression`` backs the last one.
    """
    now = timezone.now()
    addresses = rules.ip_hashes(ip, now=now)
    visitor = token.visitor
    with transaction.atomic():
        locks.lock_for_transaction(
            f"exchange-store:{token.source_store_id}",
            f"exchange-store:{token.target_store_id}",
            f"exchange-address:{addresses[0]}",
            *([f"exchange-visitor:{visitor.current}"] if visitor else []),
        )
        reason = _not_billable_because(token, addresses=addresses, user_agent=user_agent, now=now)
        held = not reason and review.under_review(token.source_store_id)
        click = Click(
            source_store_id=token.source_store_id,
            target_store_id=token.target_store_id,
            target_product_id=token.target_product_id,
            impression_id=token.impression_id[:64],
            token_id=token.token_id[:64],
            visitor_hash=visitor.current[:64] if visitor else "",
            ip_hash=addresses[0],
            billable=not reason,
            billed_impression=None if reason else token.impression_id[:64],
            reason=reason or (rules.HELD_FOR_REVIEW if held else "billable"),
            user_agent=user_agent[:300],
            created_at=now,
        )
        try:
            with transaction.atomic():
                click.save(force_insert=True)
        except IntegrityError:  # this impression was billed by a concurrent request
            click.pk = None
            click.billable, click.billed_impression = False, None
            click.reason = "impression already clicked"
            click.save(force_insert=True)
        if click.billable:
            ledger.credit_click(click, held=held)
    return click


def _not_billable_because(
    token: ClickToken, *, addresses: tuple[str, str], user_agent: str, now: datetime
) -> str:
    """The first rule the click breaks, or "" when it is billable. Cheap checks first."""
    source, target, visitor = token.source_store_id, token.target_store_id, token.visitor
    if source == target:
        return "own store"
    if rules.is_bot(user_agent):
        return "bot"
    if visitor is None:
        return "no viewable impression"
    seen = Impression.objects.filter(
        impression_id=token.impression_id[:64], store_id=source, visitor_hash=visitor.current
    )
    if not seen.exists():
        return "no viewable impression"
    if Click.objects.filter(billed_impression=token.impression_id[:64]).exists():
        return "impression already clicked"
    billed = Click.objects.filter(billable=True)
    same_visitor = Q(visitor_hash=visitor.current) | Q(visitor_hash=visitor.previous)
    same_address = Q(ip_hash__in=addresses)
    day = billed.filter(created_at__gte=now - rules.DEDUPE_WINDOW)
    if day.filter(same_visitor | same_address, target_product_id=token.target_product_id).exists():
        return "repeat within 24h"
    hour = billed.filter(created_at__gte=now - timedelta(hours=1))
    if hour.filter(same_visitor).count() >= rules.BILLABLE_CLICKS_PER_VISITOR_PER_HOUR:
        return "visitor limit"
    if hour.filter(same_address).count() >= rules.BILLABLE_CLICKS_PER_IP_PER_HOUR:
        return "address limit"
    if day.filter(same_address).count() >= rules.BILLABLE_CLICKS_PER_IP_PER_DAY:
        return "address limit"
    if (
        hour.filter(source_store_id=source).count()
        >= rules.BILLABLE_CLICKS_PER_SOURCE_STORE_PER_HOUR
    ):
        return "store limit"
    return _billing_state_forbids(source=source, target=target)


def _billing_state_forbids(*, source: int, target: int) -> str:
    """Re-read at click time (inside the lock): both stores installed, the partner still
    taking part and able to pay, and no block either way."""
    active = set(
        Store.objects.filter(pk__in=[source, target], status=Store.Status.ACTIVE).values_list(
            "pk", flat=True
        )
    )
    if source not in active:
        return "store not active"
    if target not in active:
        return "partner not active"
    if WidgetSettings.objects.filter(store_id=target, enabled=False).exists():
        return "partner not participating"
    blocks = WidgetSettings.blocked_stores.through.objects.filter(
        Q(widgetsettings__store_id=source, store_id=target)
        | Q(widgetsettings__store_id=target, store_id=source)
    )
    if blocks.exists():
        return "blocked"
    if not ledger.can_pay_a_click(target):
        return "partner cannot pay"
    return ""
