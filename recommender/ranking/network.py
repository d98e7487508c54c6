"""The network's state as ranking sees it: who participates, who blocks whom, and each
store's fairness standing. Loaded in a few aggregate queries and reused by the process for
RECOMMENDER_STATE_TTL_SECONDS (runtime.network_state)."""

from __future__ import annotations

import math
from dataclasses import dataclass
from decimal import Decimal

from django.db.models import Count

from recommender import runtime
from recommender.exchange import ledger
from recommender.models import Product, WidgetSettings
from stores.models import Store


@dataclass(frozen=True)
class NetworkState:
    participating: set[int]  # active, widget enabled, credits left
    blocks: dict[int, set[int]]  # store -> stores it blocked
    fairness: dict[int, float]
    catalog_sizes: dict[int, int]

    def partners_of(self, host_id: int) -> set[int]:
        """Stores whose products may appear on ``host_id``: participating, not the host,
        and not blocked in either direction."""
        blocked_by_host = self.blocks.get(host_id, set())
        blocking_host = {store for store, blocked in self.blocks.items() if host_id in blocked}
        return self.participating - {host_id} - blocked_by_host - blocking_host


def network_state(*, fresh: bool = False) -> NetworkState:
    return runtime.network_state.get(load_network_state, fresh=fresh)


def load_network_state() -> NetworkState:
    active = set(Store.objects.filter(status=Store.Status.ACTIVE).values_list("pk", flat=True))
    disabled = set(WidgetSettings.objects.filter(enabled=False).values_list("store_id", flat=True))
    balances = ledger.running_balances()
    exhausted = ledger.exhausted_store_ids(sorted(active), known=balances)
    blocks: dict[int, set[int]] = {}
    for store_id, blocked_id in WidgetSettings.blocked_stores.through.objects.values_list(
        "widgetsettings__store_id", "store_id"
    ):
        blocks.setdefault(store_id, set()).add(blocked_id)
    sizes = dict(
        Product.objects.filter(eligible=True)
        .values("store_id")
        .annotate(n=Count("id"))
        .values_list("store_id", "n")
    )
    fairness = {
        store_id: fairness_of(balance=balances.get(store_id, Decimal("0")),
                              catalog_size=sizes.get(store_id, 0))
        for store_id in active
    }  # fmt: skip
    return NetworkState(
        participating=active - disabled - exhausted,
        blocks=blocks,
        fairness=fairness,
        catalog_sizes=sizes,
    )


def fairness_of(*, balance: Decimal, catalog_size: int) -> float:
    """In [-0.5, 1]: stores that have sent more than they received rank a little higher,
    and small catalogs get a lift so large stores cannot crowd them out."""
    standing = math.tanh(float(balance - ledger.STARTER_GRANT) / 20)
    smallness = 1 - min(1.0, math.log10(max(catalog_size, 1)) / 3)
    return 0.5 * standing + 0.5 * smallness
