"""Invalid-traffic review: a source store whose click-through rate is far above the
network's has its new earnings held until an operator releases or voids them.

The rate is a store's billable clicks sent over the viewable impressions its widget made
in the last 24 hours, smoothed towards the network's rate with ``PRIOR_VIEWS`` imaginary
views (a Beta prior), so a new store with three views and one click is not flagged, while a
script that clicks every view it makes is flagged after a handful. The network's rate is
the median over stores with enough views, or ``FALLBACK_NETWORK_CTR`` while too few have.
"""

from __future__ import annotations

import statistics
from datetime import timedelta

from django.db.models import Count
from django.utils import timezone

from recommender import runtime
from recommender.models import Click, Impression

WINDOW = timedelta(hours=24)
CTR_MULTIPLE = 5  # held when the smoothed rate is more than this times the network's
PRIOR_VIEWS = 50
FALLBACK_NETWORK_CTR = 0.02  # a typical widget's rate, used until the network has data
MIN_VIEWS_FOR_MEDIAN = 50
MIN_STORES_FOR_MEDIAN = 3


def smoothed_ctr(*, clicks: int, views: int, network_ctr: float) -> float:
    return (clicks + PRIOR_VIEWS * network_ctr) / (views + PRIOR_VIEWS)


def network_ctr() -> float:
    """The median store's click-through rate over the window (cached per process)."""
    return runtime.network_ctr.get(_load_network_ctr)


def _load_network_ctr() -> float:
    since = timezone.now() - WINDOW
    views = dict(
        Impression.objects.filter(created_at__gte=since)
        .values("store_id").annotate(n=Count("id")).values_list("store_id", "n")
    )  # fmt: skip
    clicks = dict(
        Click.objects.filter(created_at__gte=since, billable=True)
        .values("source_store_id").annotate(n=Count("id")).values_list("source_store_id", "n")
    )  # fmt: skip
    rates = [clicks.get(store, 0) / n for store, n in views.items() if n >= MIN_VIEWS_FOR_MEDIAN]
    if len(rates) < MIN_STORES_FOR_MEDIAN:
        return FALLBACK_NETWORK_CTR
    return max(statistics.median(rates), 0.001)


def under_review(store_id: int) -> bool:
    """Whether new earnings of ``store_id`` are held right now."""
    since = timezone.now() - WINDOW
    views = Impression.objects.filter(store_id=store_id, created_at__gte=since).count()
    clicks = Click.objects.filter(
        source_store_id=store_id, billable=True, created_at__gte=since
    ).count()
    network = network_ctr()
    return smoothed_ctr(clicks=clicks, views=views, network_ctr=network) > CTR_MULTIPLE * network


def _clicks_before_a_hold(network: float = FALLBACK_NETWORK_CTR) -> int:
    """How many clicks a store that clicks every view it makes earns before it is held."""
    clicks = 0
    while (
        smoothed_ctr(clicks=clicks, views=clicks + 1, network_ctr=network) <= CTR_MULTIPLE * network
    ):
        clicks += 1
    return clicks


# With the fallback rate: a script clicking every view it makes earns for this many clicks.
CLICKS_BEFORE_A_HOLD = _clicks_before_a_hold()
