"""Calling the Admin API politely: inside the shop's leaky bucket, with backoff.
https://shopify.dev/docs/api/usage/limits#graphql-admin-api-rate-limits"""

from __future__ import annotations

import time
from typing import Any

from stores import services as store_services
from stores import shopify
from stores.models import Store

MAX_SHOPIFY_RETRIES = 6


class Pacer:
    """Keeps a sync inside the shop's leaky bucket using the cost data of each response,
    and retries throttling and outages with backoff (never hammering a shop)."""

    def __init__(self, store: Store):
        self.store = store
        self.available: float | None = None
        self.maximum = 1000.0  # the bucket's size; the first response says the real one
        self.restore_rate = 50.0
        self.waited = 0.0

    def call(
        self, query: str, variables: dict[str, Any] | None = None, *, cost: int = 10
    ) -> shopify.GraphQLResponse:
        for attempt in range(MAX_SHOPIFY_RETRIES + 1):
            self._wait_for(cost)
            try:
                response = store_services.admin_graphql(self.store, query, variables)
            except shopify.ShopifyThrottled as error:
                self._sleep(max(error.retry_after, 0.5))
                self.available = None
                if attempt == MAX_SHOPIFY_RETRIES:
                    raise
                continue
            except shopify.ShopifyUnavailable:
                if attempt == MAX_SHOPIFY_RETRIES:
                    raise
                self._sleep(min(0.5 * 2**attempt, 30))
                continue
            status = response.throttle_status
            if status:
                self.available = float(status.get("currentlyAvailable", 0))
                self.maximum = float(status.get("maximumAvailable") or self.maximum)
                self.restore_rate = float(status.get("restoreRate") or self.restore_rate)
            return response
        raise AssertionError("unreachable")

    def _wait_for(self, cost: int) -> None:
        if self.available is not None and self.available < cost:
            self._sleep((cost - self.available) / self.restore_rate)

    def _sleep(self, seconds: float) -> None:
        self.waited += seconds
        time.sleep(seconds)
