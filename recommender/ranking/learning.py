"""Learning from what shoppers click: a Bayesian click-through rate per (kind of page,
partner item), from the viewable impressions and billable clicks the exchange records.

Implicit feedback: an item shown in a viewable widget and not clicked is evidence too. For
each (page cluster, item) the learner keeps impressions n and billable clicks c over the
last ``WINDOW``; the ranking reads a Beta posterior whose prior is the network's CTR worth
``PRIOR_IMPRESSIONS`` impressions, so an item without history ranks on content alone and
a few lucky clicks move little.

- **Exploitation**: every partner item's score gains ``WEIGHT`` * log(posterior mean CTR /
  network CTR): an item shoppers of this kind of page pick three times as often as the
  network's average climbs about as much as 0.1 of cosine.
- **Exploration** (Thompson sampling), bounded: in RECOMMENDER_EXPLORE_SHARE (20 %) of
  widgets one partner slot, the last, goes to the candidate with the best score under a
  *sampled* CTR instead of the mean. Only candidates that passed every exchange rule and
  floor are eligible, so exploring never breaks one; at most that share divided by the
  number of partner slots of all partner slots explore.

Page clusters are one store's pages of one taxonomy category (its pages without a category,
home page included, are one more): what is learned on a store's pages is used on that
store's pages only, so a store that pads impressions on its own pages (beacons cost
nothing) can only teach its own widget. Clicks that were not billable (bots, floods,
replays) teach nothing, and neither do clicks held for review. Trained by the worker on a schedule
(``learn-from-clicks``); served from a per-process copy reloaded within the state
freshness window (RECOMMENDER_STATE_TTL_SECONDS).
"""

from __future__ import annotations

import math
import random
from collections import Counter
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta

from django.conf import settings
from django.db import transaction
from django.db.models import Max, Q, Sum
from django.utils import timezone

from recommender import runtime
from recommender.exchange.rules import HELD_FOR_REVIEW
from recommender.models import Click, Impression, ItemFeedback, Product
from recommender.ranking.relevance import category_key
from stores.models import Store

WINDOW = timedelta(days=30)
PRIOR_IMPRESSIONS = 50
WEIGHT = 0.1
DEFAULT_CTR = 0.02  # before the network has a CTR of its own


def page_cluster(host: Store, viewed: Product | None) -> str:
    key = category_key(viewed.category_id) if viewed is not None else ""
    return f"{host.pk}:{key}" if key else f"{host.pk}:uncategorised"


@dataclass(frozen=True)
class Feedback:
    rows: dict[tuple[str, int], tuple[int, int]]  # (cluster, product pk) -> (n, clicks)
    base_ctr: float

    def prior(self) -> tuple[float, float]:
        return PRIOR_IMPRESSIONS * self.base_ctr, PRIOR_IMPRESSIONS * (1 - self.base_ctr)

    def history(self, cluster: str, product_pk: int) -> tuple[int, int]:
        return self.rows.get((cluster, product_pk), (0, 0))

    def lift(self, cluster: str, product_pk: int, *, rng: random.Random | None = None) -> float:
        """WEIGHT x log(CTR / base): the posterior mean's, or a posterior sample's."""
        alpha, beta = self.prior()
        shown, clicked = self.history(cluster, product_pk)
        a, b = alpha + clicked, beta + max(shown - clicked, 0)
        ctr = rng.betavariate(a, b) if rng is not None else a / (a + b)
        return WEIGHT * math.log(max(ctr, 1e-6) / self.base_ctr)


def feedback() -> Feedback:
    """The learned state this process ranks with."""
    return runtime.item_feedback.get(_load)


def _load() -> Feedback:
    first = timezone.now().date() - timedelta(days=WINDOW.days - 1)
    window = (
        ItemFeedback.objects.filter(day__gte=first)
        .values("page_cluster", "product_id")
        .annotate(shown=Sum("impressions"), clicked=Sum("clicks"))
    )
    rows = {
        (row["page_cluster"], row["product_id"]): (row["shown"], row["clicked"]) for row in window
    }
    shown = sum(n for n, _ in rows.values())
    clicked = sum(c for _, c in rows.values())
    base = (clicked + PRIOR_IMPRESSIONS * DEFAULT_CTR) / (shown + PRIOR_IMPRESSIONS)
    return Feedback(rows=rows, base_ctr=base)


def explores() -> bool:
    """Whether this widget explores (one slot by a sampled CTR)."""
    return random.random() < settings.RECOMMENDER_EXPLORE_SHARE


def learn_from_clicks(*, now=None) -> int:
    """Bring the per-day rows up to date; returns how many rows the window has.

    Days before yesterday are final (a click comes within the two hours its token lives
    and is settled within a minute), so each run recounts only yesterday and today, or the
    whole window when there is nothing yet: the cost follows two days of traffic, however
    long the window."""
    now = now or timezone.now()
    today = now.date()
    first = today - timedelta(days=WINDOW.days - 1)
    latest = ItemFeedback.objects.aggregate(last=Max("day"))["last"]
    since = max(first, latest - timedelta(days=1)) if latest else first
    rows = _count_days(since, now=now)
    with transaction.atomic():
        ItemFeedback.objects.filter(Q(day__gte=since) | Q(day__lt=first)).delete()
        ItemFeedback.objects.bulk_create(rows, batch_size=2000)
    runtime.item_feedback.clear()
    return ItemFeedback.objects.count()


def _count_days(since: date, *, now: datetime) -> list[ItemFeedback]:
    """Rows for every day from ``since``: what the impressions of those days showed, and
    the billable clicks on them."""
    start = datetime.combine(since, time.min, tzinfo=UTC)
    shown: Counter = Counter()
    page_of: dict[str, tuple[date, str]] = {}
    targets: set[tuple[int, int]] = set()
    impressions = Impression.objects.filter(created_at__gte=start).exclude(shown=[])
    for impression_id, created, cluster, items in impressions.values_list(
        "impression_id", "created_at", "page_cluster", "shown"
    ).iterator(chunk_size=5000):
        page = (created.astimezone(UTC).date(), cluster)
        page_of[impression_id] = page
        for store_id, shopify_id in items:
            shown[(*page, store_id, shopify_id)] += 1
            targets.add((store_id, shopify_id))
    clicked: Counter = Counter()
    # Held clicks are billable but suspect until an operator releases them: not evidence.
    clicks = Click.objects.filter(billable=True, created_at__gte=start).exclude(
        reason=HELD_FOR_REVIEW
    )
    for impression_id, store_id, shopify_id in clicks.values_list(
        "impression_id", "target_store_id", "target_product_id"
    ).iterator(chunk_size=5000):
        page = page_of.get(impression_id)
        if page is not None:
            clicked[(*page, store_id, shopify_id)] += 1
    pks = {
        (store, shopify): pk
        for pk, store, shopify in Product.objects.filter(
            shopify_id__in={shopify for _, shopify in targets}
        ).values_list("pk", "store_id", "shopify_id")
    }
    return [
        ItemFeedback(
            day=day,
            page_cluster=cluster,
            product_id=pks[(store, shopify)],
            impressions=count,
            clicks=min(clicked[(day, cluster, store, shopify)], count),
            updated_at=now,
        )
        for (day, cluster, store, shopify), count in shown.items()
        if (store, shopify) in pks
    ]
