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
from datetime import timedelta

from django.conf import settings
from django.db import transaction
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
    rows = {
        (cluster, product): (shown, clicked)
        for cluster, product, shown, clicked in ItemFeedback.objects.values_list(
            "page_cluster", "product_id", "impressions", "clicks"
        )
    }
    shown = sum(n for n, _ in rows.values())
    clicked = sum(c for _, c in rows.values())
    base = (clicked + PRIOR_IMPRESSIONS * DEFAULT_CTR) / (shown + PRIOR_IMPRESSIONS)
    return Feedback(rows=rows, base_ctr=base)


def explores() -> bool:
    """Whether this widget explores (one slot by a sampled CTR)."""
    return random.random() < settings.RECOMMENDER_EXPLORE_SHARE


def learn_from_clicks(*, now=None) -> int:
    """Rebuild every (page cluster, item) row from the window's viewable impressions and
    billable clicks; returns how many rows there are."""
    now = now or timezone.now()
    since = now - WINDOW
    shown: Counter = Counter()
    cluster_of: dict[str, str] = {}
    targets: set[tuple[int, int]] = set()
    impressions = Impression.objects.filter(created_at__gte=since).exclude(shown=[])
    for impression_id, cluster, items in impressions.values_list(
        "impression_id", "page_cluster", "shown"
    ).iterator(chunk_size=5000):
        cluster_of[impression_id] = cluster
        for store_id, shopify_id in items:
            shown[(cluster, store_id, shopify_id)] += 1
            targets.add((store_id, shopify_id))
    clicked: Counter = Counter()
    # Held clicks are billable but suspect until an operator releases them: not evidence.
    clicks = Click.objects.filter(billable=True, created_at__gte=since).exclude(
        reason=HELD_FOR_REVIEW
    )
    for impression_id, store_id, shopify_id in clicks.values_list(
        "impression_id", "target_store_id", "target_product_id"
    ).iterator(chunk_size=5000):
        cluster = cluster_of.get(impression_id)
        if cluster is not None:
            clicked[(cluster, store_id, shopify_id)] += 1
    pks = {
        (store, shopify): pk
        for pk, store, shopify in Product.objects.filter(
            shopify_id__in={shopify for _, shopify in targets}
        ).values_list("pk", "store_id", "shopify_id")
    }
    rows = [
        ItemFeedback(
            page_cluster=cluster,
            product_id=pks[(store, shopify)],
            impressions=count,
            clicks=min(clicked[(cluster, store, shopify)], count),
            updated_at=now,
        )
        for (cluster, store, shopify), count in shown.items()
        if (store, shopify) in pks
    ]
    with transaction.atomic():
        ItemFeedback.objects.all().delete()
        ItemFeedback.objects.bulk_create(rows, batch_size=2000)
    runtime.item_feedback.clear()
    return len(rows)
