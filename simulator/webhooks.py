"""Webhook delivery as Shopify does it: signed, retried, sometimes duplicated or late.

https://shopify.dev/docs/apps/build/webhooks — HMAC-SHA256 of the raw body, base64, in
``X-Shopify-Hmac-Sha256``; the event id is the same across duplicates and redeliveries;
failed deliveries are retried (8 times over 4 hours at Shopify; quickly here).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import secrets
import threading
import time
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

import httpx

if TYPE_CHECKING:
    from simulator.state import Shop, World


def sign_body(body: bytes, secret: str) -> str:
    return base64.b64encode(hmac.new(secret.encode(), body, hashlib.sha256).digest()).decode()


def product_payload(product: dict[str, Any]) -> dict[str, Any]:
    """The REST-shaped product body of products/create and products/update."""
    payload = dict(product)
    tags = payload.get("tags") or []
    payload["tags"] = ", ".join(tags) if isinstance(tags, list) else str(tags)
    payload["admin_graphql_api_id"] = f"gid://shopify/Product/{product['id']}"
    return payload


def shop_payload(shop: Shop) -> dict[str, Any]:
    return {
        "id": abs(hash(shop.handle)) % 10**9,
        "name": shop.name,
        "domain": f"{shop.handle}.example",
        "myshopify_domain": shop.domain,
        "currency": shop.currency,
    }


class WebhookSender:
    def __init__(self, world: World):
        self.world = world
        self.log: list[dict[str, Any]] = []  # every attempt, for tests and operators
        self.events: dict[str, dict[str, Any]] = {}  # event id -> what was sent
        self.retries = 8
        self.retry_delay = 0.5

    def subscribed_uri(self, topic: str) -> str | None:
        for subscribed, uri in self.world.app.webhook_subscriptions:
            if subscribed == topic:
                return uri
        return None

    def deliver(
        self,
        shop: Shop,
        topic: str,
        payload: dict[str, Any],
        *,
        event_id: str | None = None,
        triggered_at: str | None = None,
        copies: int = 1,
    ) -> str | None:
        """Send one event (``copies`` > 1 sends duplicates at the same moment)."""
        uri = self.subscribed_uri(topic)
        if uri is None:
            return None
        event_id = event_id or secrets.token_hex(12)
        event = {
            "shop": shop.handle,
            "topic": topic,
            "uri": uri,
            "body": json.dumps(payload).encode(),
            "webhook_id": secrets.token_hex(12),
            "triggered_at": triggered_at
            or datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z"),
        }
        self.events[event_id] = event
        if copies == 1:
            self._attempt_with_retries(event_id, retry_in_background=True)
        else:
            threads = [
                threading.Thread(target=self._attempt, args=(event_id, 1)) for _ in range(copies)
            ]
            for thread in threads:
                thread.start()
            for thread in threads:
                thread.join()
        return event_id

    def redeliver(self, event_id: str) -> bool:
        if event_id not in self.events:
            return False
        self._attempt(event_id, attempt=1)
        return True

    def _attempt_with_retries(self, event_id: str, *, retry_in_background: bool) -> None:
        if self._attempt(event_id, attempt=1):
            return

        def retry() -> None:
            for attempt in range(2, self.retries + 2):
                time.sleep(self.retry_delay * attempt)
                if self._attempt(event_id, attempt=attempt):
                    return

        threading.Thread(target=retry, name=f"webhook-retry-{event_id}", daemon=True).start()

    def _attempt(self, event_id: str, attempt: int) -> bool:
        event = self.events[event_id]
        shop = self.world.shop(event["shop"])
        app = self.world.app
        headers = {
            "Content-Type": "application/json",
            "X-Shopify-Topic": event["topic"],
            "X-Shopify-Hmac-Sha256": sign_body(event["body"], app.api_secret),
            "X-Shopify-Shop-Domain": shop.domain if shop else f"{event['shop']}.myshopify.com",
            "X-Shopify-API-Version": app.webhook_api_version,
            "X-Shopify-Webhook-Id": event["webhook_id"],
            "X-Shopify-Event-Id": event_id,
            "X-Shopify-Triggered-At": event["triggered_at"],
        }
        url = event["uri"] if event["uri"].startswith("http") else app.app_url + event["uri"]
        started = time.monotonic()
        try:
            response = httpx.post(url, content=event["body"], headers=headers, timeout=5)
            status = response.status_code
        except httpx.HTTPError as error:
            status = 0
            response = None
            self._record(event_id, event, attempt, status, started, str(error))
            return False
        self._record(event_id, event, attempt, status, started, response.text[:200])
        return 200 <= status < 300

    def _record(self, event_id, event, attempt, status, started, detail) -> None:
        with self.world.lock:
            self.log.append(
                {
                    "event_id": event_id,
                    "topic": event["topic"],
                    "shop": event["shop"],
                    "attempt": attempt,
                    "status": status,
                    "seconds": round(time.monotonic() - started, 3),
                    "detail": detail,
                }
            )
