"""The simulator's world: shops, their catalogs, app installs, tokens and injected faults.

All state lives in one ``World`` guarded by one lock; the HTTP layer and the tests read and
change it through methods here, so what the simulator did can always be inspected.
"""

from __future__ import annotations

import json
import secrets
import threading
import time
import tomllib
from collections import deque
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

from simulator.webhooks import WebhookSender, product_payload, shop_payload

ACCESS_TOKEN_TTL = 3600  # Shopify: expiring offline access tokens live one hour
REFRESH_TOKEN_TTL = 90 * 24 * 3600  # and their refresh tokens 90 days
ID_TOKEN_TTL = 60
BUCKET_SIZE = 2000.0
RESTORE_RATE = 100.0


@dataclass
class AppConfig:
    """What Shopify knows about the app (from shopify.app.toml and the partner dashboard)."""

    api_key: str
    api_secret: str
    app_url: str
    handle: str = "interlayer"
    scopes: list[str] = field(default_factory=lambda: ["read_products", "read_themes"])
    redirect_paths: list[str] = field(default_factory=lambda: ["/auth/callback"])
    webhook_api_version: str = "2026-10"
    webhook_subscriptions: list[tuple[str, str]] = field(default_factory=list)
    proxy_prefix: str = "apps"
    proxy_subpath: str = "interlayer"
    proxy_path: str = "/proxy"

    @classmethod
    def from_toml(cls, path: Path, *, api_key: str, api_secret: str, app_url: str) -> AppConfig:
        data = tomllib.loads(path.read_text())
        subscriptions = []
        for sub in data.get("webhooks", {}).get("subscriptions", []):
            topics = list(sub.get("topics", [])) + list(sub.get("compliance_topics", []))
            subscriptions.extend((topic, sub["uri"]) for topic in topics)
        proxy = data.get("app_proxy", {})
        redirects = data.get("auth", {}).get("redirect_urls", [])
        return cls(
            api_key=api_key,
            api_secret=api_secret,
            app_url=app_url.rstrip("/"),
            handle=data.get("handle", "interlayer"),
            scopes=[s.strip() for s in data["access_scopes"]["scopes"].split(",") if s.strip()],
            redirect_paths=[urlparse(url).path for url in redirects] or ["/auth/callback"],
            webhook_api_version=data.get("webhooks", {}).get("api_version", "2026-10"),
            webhook_subscriptions=subscriptions,
            proxy_prefix=proxy.get("prefix", "apps"),
            proxy_subpath=proxy.get("subpath", "interlayer"),
            proxy_path=urlparse(proxy.get("url", "/proxy")).path or "/proxy",
        )


@dataclass
class Faults:
    """Queued failures per channel ("graphql", "token", "bulk": a bulk operation's result
    download): each entry fails one request.

    ``after`` lets that many requests through first ("pass" entries), so a fault can land
    mid-way through a sync. Most modes answer the request with a failure; the shop events
    ("expire-tokens", "uninstall") happen to the shop just before the request is served.
    "hold" keeps a request waiting until a test releases it (``release``), then serves it:
    an interleaving with other requests made exactly, not by timing."""

    queues: dict[str, deque] = field(default_factory=dict)
    held: deque = field(default_factory=deque)  # one threading.Event per request held

    SHOP_EVENTS = frozenset({"expire-tokens", "uninstall"})

    def push(self, channel: str, mode: str, count: int = 1, *, after: int = 0) -> None:
        self.queues.setdefault(channel, deque()).extend(["pass"] * after + [mode] * count)

    def pop(self, channel: str) -> str | None:
        queue = self.queues.get(channel)
        return queue.popleft() if queue else None

    def hold(self, timeout: float = 60) -> None:
        """Keep the calling request waiting until ``release`` (or ``timeout`` seconds)."""
        released = threading.Event()
        self.held.append(released)
        released.wait(timeout)

    def release(self) -> bool:
        """Let the longest-held request go on."""
        if not self.held:
            return False
        self.held.popleft().set()
        return True

    def pop_shop_event(self, channel: str) -> str | None:
        queue = self.queues.get(channel)
        if queue and queue[0] in self.SHOP_EVENTS:
            return queue.popleft()
        return None


def _open_gate() -> threading.Event:
    gate = threading.Event()
    gate.set()
    return gate


@dataclass
class Shop:
    handle: str
    name: str
    currency: str = "USD"
    plan: str = "Basic"
    time_zone: str = "Etc/UTC"  # Shop.ianaTimezone
    products: dict[int, dict[str, Any]] = field(default_factory=dict)
    installed: bool = False
    granted_scopes: list[str] = field(default_factory=list)
    access_tokens: dict[str, float] = field(default_factory=dict)  # token -> expiry
    refresh_tokens: dict[str, float] = field(default_factory=dict)
    codes: dict[str, float] = field(default_factory=dict)  # authorization code -> expiry
    faults: Faults = field(default_factory=Faults)
    # Shopify closes the Admin API to a shop it froze (402: unpaid bills) or locked (423: an
    # account issue); 0 while open.
    closed_status: int = 0
    bucket_available: float = BUCKET_SIZE
    bucket_updated: float = field(default_factory=time.monotonic)
    bulk_operations: list[dict[str, Any]] = field(default_factory=list)
    # Cleared, the shop's bulk operations stay RUNNING (a large catalog's export takes
    # minutes to hours on Shopify) until it is set again.
    bulk_gate: threading.Event = field(default_factory=_open_gate)
    bulk_results: dict[str, bytes] = field(default_factory=dict)
    graphql_requests: int = 0
    token_requests: list[str] = field(default_factory=list)  # grant types, in order
    # The app's web pixel on this shop (webPixelCreate): {"id", "settings" (a JSON string)}.
    web_pixel: dict[str, str] | None = None
    # The app's own metafields on its installation (metafieldsSet on currentAppInstallation):
    # {namespace: {key: {"type", "value"}}}, read by the theme app extension as
    # app.metafields. They go with the app when it is uninstalled.
    app_metafields: dict[str, dict[str, dict[str, str]]] = field(default_factory=dict)
    orders: dict[int, dict[str, Any]] = field(default_factory=dict)  # the checkout's orders

    @property
    def domain(self) -> str:
        return f"{self.handle}.myshopify.com"


def _new_token(prefix: str) -> str:
    return f"{prefix}_{secrets.token_hex(16)}"


class World:
    def __init__(self, app: AppConfig, *, public_url: str):
        self.app = app
        self.public_url = public_url.rstrip("/")
        self.shops: dict[str, Shop] = {}
        self.lock = threading.RLock()
        self.access_token_ttl = ACCESS_TOKEN_TTL
        self.bucket_size = BUCKET_SIZE
        self.restore_rate = RESTORE_RATE
        self.timeout_delay = 3.0  # how long a "timeout" fault stalls a response
        self._next_id = 7_000_000_000_000
        self.webhooks = WebhookSender(self)
        # The merchant's theme editor: is the app embed switched on, with which settings.
        self.theme_embed_enabled: dict[str, bool] = {}
        self.theme_embed_settings: dict[str, dict[str, Any]] = {}
        # The app block's settings a merchant set in the theme editor (else its defaults).
        self.theme_block_settings: dict[str, dict[str, Any]] = {}
        # And does the live theme's product template (templates/product.json) hold the app
        # block, in its main section.
        self.theme_app_block_added: dict[str, bool] = {}
        # The storefront visitor's privacy choices per shop (simulator.pixels.DEFAULT_CONSENT).
        self.visitor_consent: dict[str, dict[str, bool]] = {}

    # --- shops and catalogs -------------------------------------------------------------
    def add_shop(self, handle: str, payload: dict[str, Any]) -> Shop:
        meta = payload.get("shop") or {}
        shop = Shop(
            handle=handle,
            name=meta.get("name") or handle.replace("-", " ").title(),
            currency=meta.get("currency", "USD"),
            plan=payload.get("plan") or meta.get("plan", "Basic"),
        )
        for product in payload.get("products", []):
            self._store_product(shop, product)
        with self.lock:
            self.shops[handle] = shop
        return shop

    def load_dir(self, directory: Path) -> None:
        for path in sorted(directory.glob("*.json")):
            self.add_shop(path.stem, json.loads(path.read_text()))

    def shop(self, handle_or_domain: str) -> Shop | None:
        return self.shops.get(handle_or_domain.removesuffix(".myshopify.com"))

    def storefront_url(self, shop: Shop) -> str:
        scheme, _, host = self.public_url.partition("://")
        port = host.rpartition(":")[2] if ":" in host else ""
        return f"{scheme}://{shop.handle}.localhost" + (f":{port}" if port else "")

    def new_id(self) -> int:
        with self.lock:
            self._next_id += 1
            return self._next_id

    def _store_product(self, shop: Shop, product: dict[str, Any]) -> dict[str, Any]:
        product = dict(product)
        product.setdefault("id", self.new_id())
        product["id"] = int(product["id"])
        now = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
        product.setdefault("updated_at", now)
        product.setdefault("created_at", now)
        product.setdefault("published_at", now)
        product.setdefault("status", "active")
        shop.products[product["id"]] = product
        return product

    def upsert_product(self, handle: str, product: dict[str, Any]) -> dict[str, Any]:
        with self.lock:
            shop = self.shops[handle]
            existing = shop.products.get(int(product.get("id", 0) or 0), {})
            merged = {**existing, **product}
            merged["updated_at"] = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
            return self._store_product(shop, merged)

    def delete_product(self, handle: str, product_id: int) -> dict[str, Any] | None:
        with self.lock:
            return self.shops[handle].products.pop(int(product_id), None)

    # --- install and tokens ---------------------------------------------------------------
    def install(self, shop: Shop) -> None:
        with self.lock:
            shop.installed = True
            shop.granted_scopes = list(self.app.scopes)

    def uninstall(self, shop: Shop) -> str | None:
        """The merchant removes the app: tokens are revoked, app/uninstalled is sent."""
        with self.lock:
            shop.installed = False
            shop.access_tokens.clear()
            shop.refresh_tokens.clear()
            shop.app_metafields.clear()
        return self.webhooks.deliver(shop, "app/uninstalled", shop_payload(shop))

    def redact(self, shop: Shop) -> str | None:
        """48 hours after an uninstall Shopify asks for the shop's data to be erased."""
        payload = {"shop_id": shop_payload(shop)["id"], "shop_domain": shop.domain}
        return self.webhooks.deliver(shop, "shop/redact", payload)

    def update_scopes(self, shop: Shop, scopes: list[str]) -> str | None:
        """The merchant grants or revokes access scopes: app/scopes_update is sent."""
        with self.lock:
            previous, shop.granted_scopes = list(shop.granted_scopes), list(scopes)
        payload = {
            "id": self.new_id(),
            "previous": previous,
            "current": list(scopes),
            "updated_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            "shop_id": shop_payload(shop)["id"],
        }
        return self.webhooks.deliver(shop, "app/scopes_update", payload)

    def save_product(self, handle: str, product: dict[str, Any]) -> dict[str, Any]:
        """Create or update a product as the merchant would; the webhook follows."""
        is_new = int(product.get("id", 0) or 0) not in self.shops[handle].products
        saved = self.upsert_product(handle, product)
        topic = "products/create" if is_new else "products/update"
        self.webhooks.deliver(self.shops[handle], topic, product_payload(saved))
        return saved

    def remove_product(self, handle: str, product_id: int) -> bool:
        removed = self.delete_product(handle, product_id)
        if removed is not None:
            self.webhooks.deliver(self.shops[handle], "products/delete", {"id": int(product_id)})
        return removed is not None

    def issue_code(self, shop: Shop) -> str:
        code = secrets.token_hex(16)
        with self.lock:
            shop.codes[code] = time.time() + 60
        return code

    def redeem_code(self, shop: Shop, code: str) -> bool:
        with self.lock:
            expiry = shop.codes.pop(code, None)
        return expiry is not None and expiry > time.time()

    def issue_tokens(self, shop: Shop, *, expiring: bool) -> dict[str, Any]:
        access = _new_token("shpat")
        now = time.time()
        payload: dict[str, Any] = {"access_token": access, "scope": ",".join(shop.granted_scopes)}
        with self.lock:
            if expiring:
                refresh = _new_token("shprt")
                shop.access_tokens[access] = now + self.access_token_ttl
                shop.refresh_tokens[refresh] = now + REFRESH_TOKEN_TTL
                payload.update(
                    expires_in=self.access_token_ttl,
                    refresh_token=refresh,
                    refresh_token_expires_in=REFRESH_TOKEN_TTL,
                )
            else:
                shop.access_tokens[access] = float("inf")
        return payload

    def rotate_refresh_token(self, shop: Shop, refresh_token: str) -> dict[str, Any] | None:
        with self.lock:
            expiry = shop.refresh_tokens.pop(refresh_token, None)
            if expiry is None or expiry <= time.time():
                return None
            return self.issue_tokens(shop, expiring=True)

    def token_valid(self, shop: Shop, token: str) -> bool:
        with self.lock:
            expiry = shop.access_tokens.get(token)
        return shop.installed and expiry is not None and expiry > time.time()

    def expire_access_tokens(self, shop: Shop) -> None:
        """Make every access token of ``shop`` expire now (tests of the refresh path)."""
        with self.lock:
            for token in shop.access_tokens:
                shop.access_tokens[token] = time.time() - 1

    # --- persistence (so a restarted demo finds its installs and tokens again) -------------
    _PERSISTED = ("installed", "granted_scopes", "access_tokens", "refresh_tokens", "products",
                  "web_pixel", "app_metafields")  # fmt: skip

    def snapshot(self) -> dict[str, Any]:
        with self.lock:
            return {
                "next_id": self._next_id,
                "app_url": self.app.app_url,
                "shops": {
                    handle: {
                        "name": shop.name,
                        "currency": shop.currency,
                        **{key: getattr(shop, key) for key in self._PERSISTED},
                        "products": list(shop.products.values()),
                    }
                    for handle, shop in self.shops.items()
                },
            }

    def restore(self, data: dict[str, Any]) -> None:
        with self.lock:
            self._next_id = max(self._next_id, int(data.get("next_id", 0)))
            self.app.app_url = data.get("app_url") or self.app.app_url
            for handle, saved in data.get("shops", {}).items():
                shop = self.shops.get(handle) or self.add_shop(handle, {"shop": saved})
                shop.installed = saved["installed"]
                shop.granted_scopes = saved["granted_scopes"]
                shop.access_tokens = {k: float(v) for k, v in saved["access_tokens"].items()}
                shop.refresh_tokens = {k: float(v) for k, v in saved["refresh_tokens"].items()}
                shop.products = {int(p["id"]): p for p in saved["products"]}
                shop.web_pixel = saved.get("web_pixel")
                shop.app_metafields = saved.get("app_metafields") or {}

    def save(self, path: Path) -> None:
        temporary = path.with_suffix(".tmp")
        temporary.write_text(json.dumps(self.snapshot()))
        temporary.replace(path)

    # --- cost-based rate limiting -----------------------------------------------------
    def take_points(self, shop: Shop, cost: float) -> tuple[bool, dict[str, float]]:
        """Leaky bucket: spend ``cost`` points if available; report the throttle status."""
        with self.lock:
            now = time.monotonic()
            restored = (now - shop.bucket_updated) * self.restore_rate
            shop.bucket_available = min(self.bucket_size, shop.bucket_available + restored)
            shop.bucket_updated = now
            allowed = cost <= shop.bucket_available
            if allowed:
                shop.bucket_available -= cost
            status = {
                "maximumAvailable": self.bucket_size,
                "currentlyAvailable": round(shop.bucket_available, 1),
                "restoreRate": self.restore_rate,
            }
        return allowed, status
