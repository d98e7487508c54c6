"""Per-process runtime state, all of it in one place with one ``reset()``.

A web process keeps three things between requests: the active stores and widget contents
it served lately (a short TTL cache), the network's state (who participates, blocks,
fairness), and the live vector index. Everything here is a cache of the database or of the
published index files; losing it only costs a reload.
"""

from __future__ import annotations

import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Hashable, Iterable
from typing import Any, Generic, TypeVar

from django.conf import settings

T = TypeVar("T")
K = TypeVar("K", bound=Hashable)
_ABSENT = object()  # get_many: a key its computation did not find, remembered as such


class TTLCache:
    """A small cache whose entries live RECOMMENDER_STATE_TTL_SECONDS: the same freshness
    promise the network state makes (merchant changes show within it)."""

    def __init__(self, size: int = 20_000):
        self._entries: OrderedDict[Hashable, tuple[float, Any]] = OrderedDict()
        self._size = size
        self._lock = threading.Lock()

    def get(self, key: Hashable) -> Any:
        """The value kept for ``key``, or None."""
        with self._lock:
            hit = self._entries.get(key)
            if hit is None or hit[0] <= time.monotonic():
                return None
            self._entries.move_to_end(key)
            return hit[1]

    def put(self, key: Hashable, value: Any, *, ttl_seconds: float) -> None:
        """Keep ``value`` for ``ttl_seconds`` (not the freshness window: what is kept so is
        not a copy of the database)."""
        self._put(time.monotonic() + ttl_seconds, [(key, value)])

    def get_or_compute(self, key: Hashable, compute: Callable[[], T]) -> T:
        ttl = settings.RECOMMENDER_STATE_TTL_SECONDS
        if ttl <= 0:
            return compute()
        now = time.monotonic()
        with self._lock:
            hit = self._entries.get(key)
            if hit is not None and hit[0] > now:
                self._entries.move_to_end(key)
                return hit[1]
        value = compute()
        self._put(now + ttl, [(key, value)])
        return value

    def get_many(self, keys: Iterable[K], compute: Callable[[list[K]], dict[K, T]]) -> dict[K, T]:
        """The values of ``keys``, the missing ones computed in one call. A key ``compute``
        leaves out is remembered as absent for as long as a value would be."""
        ttl = settings.RECOMMENDER_STATE_TTL_SECONDS
        if ttl <= 0:
            return compute(list(keys))
        now = time.monotonic()
        found: dict[K, T] = {}
        missing: list[K] = []
        with self._lock:
            for key in keys:
                hit = self._entries.get(key)
                if hit is None or hit[0] <= now:
                    missing.append(key)
                    continue
                self._entries.move_to_end(key)
                if hit[1] is not _ABSENT:
                    found[key] = hit[1]
        if not missing:
            return found
        computed = compute(missing)
        self._put(now + ttl, [(key, computed.get(key, _ABSENT)) for key in missing])
        return {**found, **computed}

    def _put(self, expires: float, items: list[tuple[Hashable, Any]]) -> None:
        """Entries that live until ``expires``; the least lately used go beyond the size."""
        with self._lock:
            for key, value in items:
                self._entries[key] = (expires, value)
                self._entries.move_to_end(key)
            while len(self._entries) > self._size:
                self._entries.popitem(last=False)

    def forget(self, keys: Iterable[Hashable]) -> None:
        with self._lock:
            for key in keys:
                self._entries.pop(key, None)

    def clear(self) -> None:
        with self._lock:
            self._entries.clear()


class CachedValue(Generic[T]):
    """One value, reloaded when older than RECOMMENDER_STATE_TTL_SECONDS (or on demand)."""

    def __init__(self) -> None:
        self._value: T | None = None
        self._loaded_at = 0.0
        self._lock = threading.Lock()

    def get(self, load: Callable[[], T], *, fresh: bool = False) -> T:
        with self._lock:
            age = time.monotonic() - self._loaded_at
            if fresh or self._value is None or age > settings.RECOMMENDER_STATE_TTL_SECONDS:
                self._value = load()
                self._loaded_at = time.monotonic()
            return self._value

    def clear(self) -> None:
        with self._lock:
            self._value = None


class BalanceBook:
    """Store balances summed up to a ledger id, so a refresh adds only newer entries
    (exchange.ledger.running_balances)."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.watermark: int | None = None
        self.base: dict[int, Any] = {}

    def clear(self) -> None:
        with self.lock:
            self.watermark, self.base = None, {}


active_stores = TTLCache()
review_states = TTLCache()
balance_book = BalanceBook()
widget_contents = TTLCache()
widget_settings = TTLCache()  # store pk -> its WidgetSettings (never changed in place)
# product pk -> what ranking reads of a partner candidate (ranking.recommendations.Candidate):
# about 0.5 KB each, so at most 10 MB a process
ranking_candidates = TTLCache(size=20_000)
# product pk -> the Product row a widget shows (never changed): about 2 KB each, so 10 MB
shown_products = TTLCache(size=5_000)
click_targets = TTLCache()  # (store pk, Shopify product id) -> the product's URL
# A click token this process followed -> where it last sent the shopper and how many of its
# follows were recorded (exchange.clicks): at most 50,000 of them (about 15 MB)
followed_tokens = TTLCache(size=50_000)
# (purpose, period) -> that period's visitor or address salt (exchange.rules), as a Mac
visitor_salts: dict[tuple[str, int], Any] = {}
visitor_salts_lock = threading.Lock()
# product pk -> what a book is about, by its nearest products (ranking.recommendations._Topic)
product_topics = TTLCache(size=20_000)
network_state: CachedValue[Any] = CachedValue()
network_ctr: CachedValue[float] = CachedValue()
item_feedback: CachedValue[Any] = CachedValue()  # ranking.learning's Feedback
network_categories: CachedValue[dict[str, str]] = CachedValue()  # web.stats.known_categories
# The thread settling this process's clicks (exchange.clicks.Settler), once it served one.
click_settler: Any = None
# This process's journal of clicks not yet inserted (exchange.click_journal), once it has one.
click_journal: Any = None
click_journal_unavailable_until = 0.0  # monotonic time; it could not be opened before
# Index directory -> its holder (ranking.live_index), which owns the polling thread.
index_holders: dict[str, Any] = {}
index_holders_lock = threading.Lock()


def reset() -> None:
    """Forget everything this process holds (tests; a forked worker's fresh start)."""
    global click_settler, click_journal, click_journal_unavailable_until
    if click_settler is not None:
        click_settler.stop()  # inserts what the journal holds, when it can
        click_settler = None
    if click_journal is not None:
        click_journal.close()
        click_journal = None
    click_journal_unavailable_until = 0.0
    active_stores.clear()
    review_states.clear()
    widget_contents.clear()
    widget_settings.clear()
    ranking_candidates.clear()
    shown_products.clear()
    click_targets.clear()
    followed_tokens.clear()
    product_topics.clear()
    with visitor_salts_lock:
        visitor_salts.clear()
    network_state.clear()
    network_ctr.clear()
    item_feedback.clear()
    network_categories.clear()
    balance_book.clear()
    with index_holders_lock:
        for holder in index_holders.values():
            holder.stop()
        index_holders.clear()
