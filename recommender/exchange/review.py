"""Invalid-traffic review: a source store whose traffic looks scripted has its new clicks
held (nobody charged, nothing paid) until an operator releases or voids them.

Two signals, over the last 24 hours:
- **Rate**: billable clicks sent over viewable impressions that showed partner items,
  smoothed towards the network's rate with ``PRIOR_VIEWS`` imaginary views (a Beta prior),
  so a new store with three views and one click is not flagged, while a script that clicks
  every view it makes is flagged after a handful. Held above ``CTR_MULTIPLE`` times the
  network's rate: the median over paying stores with enough views of their clicks that
  were paid (held ones are suspect, and cost their store nothing), never below
  ``FALLBACK_NETWORK_CTR`` (throwaway stores cannot drag it down) nor above
  ``MAX_NETWORK_CTR`` (stores clicking their own widgets cannot lift it until nothing is
  held).
- **Pattern**: once a store has ``PATTERN_MIN_CLICKS`` billable clicks, more than half of
  them coming from addresses that each made ``HEAVY_ADDRESS_CLICKS`` or more. Padding the
  views (reporting many, clicking a few) hides a rate, not this. It holds the clicks of
  those heavy addresses only (from each one's fifth on): anyone can click a small store's
  widget from one address, and that must not hold the clicks of the store's shoppers.
"""

from __future__ import annotations

import statistics
from collections import Counter
from datetime import datetime, timedelta

from django.db.models import Case, Count, F, When
from django.utils import timezone

from recommender import runtime
from recommender.exchange.rules import (
    HELD_FOR_REVIEW,
    JUDGED_BILLABLE,
    PAYING_PLANS,
    salt_period_start,
)
from recommender.models import Click, Impression

WINDOW = timedelta(hours=24)
CTR_MULTIPLE = 5  # held when the smoothed rate is more than this times the network's
PRIOR_VIEWS = 50
FALLBACK_NETWORK_CTR = 0.02  # a typical widget's rate, used until the network has data
# Above any real widget's rate (1-3 % is typical): held at more than a quarter of views.
MAX_NETWORK_CTR = 0.05
MIN_VIEWS_FOR_MEDIAN = 50
MIN_STORES_FOR_MEDIAN = 3
PATTERN_MIN_CLICKS = 5
HEAVY_ADDRESS_CLICKS = 4  # more than one shopper's hourly limit allows


def _views():
    """Viewable impressions that showed at least one partner item."""
    return Impression.objects.filter(partner_items__gt=0)


def smoothed_ctr(*, clicks: int, views: int, network_ctr: float) -> float:
    return (clicks + PRIOR_VIEWS * network_ctr) / (views + PRIOR_VIEWS)


def network_ctr() -> float:
    """The median store's click-through rate over the window (cached per process)."""
    return runtime.network_ctr.get(_load_network_ctr)


def _load_network_ctr() -> float:
    since = timezone.now() - WINDOW
    paying = _views().filter(
        created_at__gte=since, store__plan_partner_development=False,
        store__plan_name__in=PAYING_PLANS,
    )  # fmt: skip
    views = dict(paying.values("store_id").annotate(n=Count("id")).values_list("store_id", "n"))
    clicks = dict(
        Click.objects.filter(created_at__gte=since, billable=True)
        .exclude(reason=HELD_FOR_REVIEW)
        .values("source_store_id").annotate(n=Count("id")).values_list("source_store_id", "n")
    )  # fmt: skip
    rates = [clicks.get(store, 0) / n for store, n in views.items() if n >= MIN_VIEWS_FOR_MEDIAN]
    if len(rates) < MIN_STORES_FOR_MEDIAN:
        return FALLBACK_NETWORK_CTR
    return min(max(statistics.median(rates), FALLBACK_NETWORK_CTR), MAX_NETWORK_CTR)


def under_review(store_id: int) -> bool:
    """Whether new earnings of ``store_id`` are held right now, as its settings page and
    the operators' command show it: the answer (two counts over the store's day) is
    reused for RECOMMENDER_STATE_TTL_SECONDS, the freshness the network state promises."""
    return runtime.review_states.get_or_compute(store_id, lambda: held_at(store_id, timezone.now()))


def held_at(store_id: int, at: datetime, *, address: str | None = None) -> bool:
    """Whether a click of ``store_id`` made at ``at`` from ``address`` (its address hash) is
    held: judged by the views and billable clicks of the day up to that moment, never by
    views made after it (settling comes a moment after the click, and a script goes on
    viewing meanwhile). Without an address: whether the store is under review at all (its
    rate, or a pattern holding some addresses' clicks)."""
    since = at - WINDOW
    views = _views().filter(store_id=store_id, created_at__gte=since, created_at__lte=at).count()
    day = Click.objects.filter(source_store_id=store_id, created_at__gte=since, created_at__lte=at)
    # An address, as one across the window: the salt changes within any day's window, so
    # a click made under the new salt is grouped by its hash under the one before, which
    # is the hash the clicks before the change have (address_of).
    change = salt_period_start(at)
    grouped = Case(
        When(created_at__gte=change, previous_ip_hash__gt="", then=F("previous_ip_hash")),
        default=F("ip_hash"),
    )
    # The clicks the rules judged billable, voided ones among them: voiding a script's
    # clicks must not clear its rate.
    per_address: Counter[str] = Counter()
    for judged in JUDGED_BILLABLE:
        counts = day.filter(judged).annotate(address=grouped).values("address")
        per_address.update(dict(counts.annotate(n=Count("id")).values_list("address", "n")))
    clicks = sum(per_address.values())
    # Clicks whose address was erased (a customer's redaction) are no one address.
    heavy = sum(n for a, n in per_address.items() if a and n >= HEAVY_ADDRESS_CLICKS)
    pattern = clicks >= PATTERN_MIN_CLICKS and heavy * 2 > clicks
    # While the pattern holds, the clicks it holds (a heavy address's after its first
    # HEAVY_ADDRESS_CLICKS) are left out of the rate: one address clicking a small store's
    # widget must not hold its shoppers' clicks too. The ones before stay in it, paid as
    # they were: a script that stops each address there is still judged by its rate.
    held_by_pattern = sum(
        n - HEAVY_ADDRESS_CLICKS for a, n in per_address.items() if a and n > HEAVY_ADDRESS_CLICKS
    )
    rated = clicks - held_by_pattern if pattern else clicks
    network = network_ctr()
    if smoothed_ctr(clicks=rated, views=views, network_ctr=network) > CTR_MULTIPLE * network:
        return True
    if address is None:
        return pattern
    return pattern and per_address.get(address, 0) >= HEAVY_ADDRESS_CLICKS


def address_of(click: Click) -> str:
    """The address of a click as held_at groups it, judged at the click's own time: its hash
    under the salt before its own (the clicks before the salt's change in the window have
    that hash as theirs); its own hash for a click that kept no earlier one."""
    return click.previous_ip_hash or click.ip_hash


def _clicks_before_a_hold(network: float = FALLBACK_NETWORK_CTR) -> int:
    """How many clicks a store that clicks every view it makes earns before it is held."""
    if CTR_MULTIPLE * network >= 1:
        raise ValueError("at that network rate a store clicking every view is never held")
    clicks = 0
    while (
        smoothed_ctr(clicks=clicks, views=clicks + 1, network_ctr=network) <= CTR_MULTIPLE * network
    ):
        clicks += 1
    return clicks


# With the fallback rate: a script clicking every view it makes earns for this many clicks.
CLICKS_BEFORE_A_HOLD = _clicks_before_a_hold()
