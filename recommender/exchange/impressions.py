"""Viewable impressions: the widget reports a row once half of it was seen for a second.

An impression is what makes a click billable, so it is counted once per page view (the
signed impression id), for the visitor it was served to, and within limits per visitor and
per address that every process sees (they are counted in the database)."""

from __future__ import annotations

from datetime import timedelta

from django.db import IntegrityError, transaction
from django.utils import timezone

from recommender.exchange import locks, rules, tokens
from recommender.models import Impression
from stores.models import Store

_LIMIT_WINDOW = timedelta(minutes=10)


def record_impression(*, host: Store, raw: str, ip: str, user_agent: str) -> str:
    """Count a viewable impression once; bots and floods are not counted."""
    data = tokens.read_impression(raw)
    if data is None:
        return "invalid"
    try:
        if int(data.get("s", 0)) != host.pk:
            return "invalid"
        impression_id = str(data["i"])[:64]
        visitor = str(data["v"])[:64]
        items, partner_items = int(data.get("n", 0)), int(data.get("p", 0))
        cluster = str(data.get("c", ""))[:100]
        shown = [[int(store), int(product)] for store, product in data.get("t", [])][:12]
    except (KeyError, TypeError, ValueError):
        return "invalid"
    if rules.is_bot(user_agent):
        return rules.BOT
    # Reported by the shopper the row was served to (this salt period or the last), or not
    # counted: a view reported from elsewhere would make any click on it look seen.
    if visitor not in rules.visitor_hashes(ip=ip, user_agent=user_agent):
        return rules.ANOTHER_SHOPPER
    addresses = rules.ip_hashes(ip)
    since = timezone.now() - _LIMIT_WINDOW
    recent = Impression.objects.filter(created_at__gte=since)
    try:
        with transaction.atomic():
            # Concurrent beacons from one address or visitor are counted one at a time.
            locks.lock_for_transaction(f"view-address:{addresses[0]}", f"view-visitor:{visitor}")
            if (
                recent.filter(visitor_hash=visitor).count()
                >= rules.IMPRESSIONS_PER_VISITOR_PER_10_MIN
            ):
                return "rate limited"
            if recent.filter(ip_hash__in=addresses).count() >= rules.IMPRESSIONS_PER_IP_PER_10_MIN:
                return "rate limited"
            Impression.objects.create(
                store=host,
                impression_id=impression_id,
                visitor_hash=visitor,
                ip_hash=addresses[0],
                items=items,
                partner_items=partner_items,
                page_cluster=cluster,
                shown=shown,
            )
    except IntegrityError:  # this page view was already counted
        return "duplicate"
    return "counted"
