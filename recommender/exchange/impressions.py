"""Viewable impressions: the widget reports a row once half of it was seen for a second."""

from __future__ import annotations

from django.core.cache import cache

from recommender.exchange import rules, tokens
from recommender.models import Impression
from stores.models import Store


def record_impression(*, host: Store, raw: str, ip: str, user_agent: str) -> str:
    """Count a viewable impression once; floods from one visitor are dropped."""
    data = tokens.read_impression(raw)
    if data is None:
        return "invalid"
    try:
        if int(data.get("s", 0)) != host.pk:
            return "invalid"
        items, partner_items = int(data.get("n", 0)), int(data.get("p", 0))
    except (TypeError, ValueError):
        return "invalid"
    if rules.is_bot(user_agent):
        return "bot"
    visitor, _ = rules.visitor_hashes(ip=ip, user_agent=user_agent)
    key = f"impressions:{visitor}"
    count = cache.get_or_set(key, 0, timeout=600)
    if count >= rules.IMPRESSIONS_PER_VISITOR_PER_10_MIN:
        return "rate limited"
    try:
        cache.incr(key)
    except ValueError:
        cache.set(key, 1, timeout=600)
    _, created = Impression.objects.get_or_create(
        impression_id=str(data["i"])[:64],
        defaults={
            "store": host,
            "visitor_hash": visitor,
            "items": items,
            "partner_items": partner_items,
        },
    )
    return "counted" if created else "duplicate"
