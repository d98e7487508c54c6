"""The catalog: products read from Shopify, kept fresh by sync and webhooks."""

from __future__ import annotations

from datetime import datetime
from typing import Any


def apply_product_webhook(
    *, shop_domain: str, topic: str, payload: dict[str, Any], triggered_at: datetime | None
) -> str:
    return "recorded"
