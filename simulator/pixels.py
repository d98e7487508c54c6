"""Web pixels as Shopify runs them, and the checkout that fires their events.

The app's web pixel extensions (``extensions/*/shopify.extension.toml`` with ``type =
"web_pixel_extension"``) are read from the repository, as ``shopify app deploy`` would
upload them. ``webPixelCreate`` validates a store's settings against the extension's
``[settings.fields]``. On every storefront page the pixel manager (static/web-pixels-manager.js)
loads each connected pixel in a web worker on the shop's origin, as Shopify's strict
sandbox does, but only when the visitor's consent covers the extension's
``[customer_privacy]``; the worker runs the pixel's own ``src/index.js`` behind a small
``register`` runtime (static/web-pixel-sandbox.js) whose ``browser`` storage calls are
answered by the top page. The checkout creates an order and its thank-you page emits
``checkout_completed``; a refund sends ``refunds/create``.
https://shopify.dev/docs/api/web-pixels-api
"""

from __future__ import annotations

import html
import json
import re
import secrets
import time
import tomllib
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import Any

from simulator.state import Shop, World

ROOT = Path(__file__).resolve().parent.parent
EXTENSIONS_DIR = ROOT / "extensions"
STATIC_DIR = Path(__file__).parent / "static"
# What Shopify's build does with the one import a pixel has: bind it to the sandbox's runtime.
_IMPORT = re.compile(
    r"""^\s*import\s*\{\s*register\s*\}\s*from\s*["']@shopify/web-pixels-extension["'];?\s*$""",
    re.MULTILINE,
)
DEFAULT_CONSENT = {
    "analytics": True, "marketing": True, "preferences": True, "sale_of_data": True,
    # False loads pixels whatever the consent (to check a pixel's own consent handling).
    "enforce": True,
}  # fmt: skip


@dataclass(frozen=True)
class PixelExtension:
    handle: str
    directory: Path
    privacy: dict[str, Any]
    fields: tuple[str, ...]


def pixel_extensions() -> dict[str, PixelExtension]:
    found = {}
    for toml in sorted(EXTENSIONS_DIR.glob("*/shopify.extension.toml")):
        data = tomllib.loads(toml.read_text())
        if data.get("type") != "web_pixel_extension":
            continue
        fields = tuple((data.get("settings") or {}).get("fields") or {})
        found[data["handle"]] = PixelExtension(
            data["handle"], toml.parent, dict(data.get("customer_privacy") or {}), fields
        )
    return found


def settings_problem(settings: Any) -> str | None:
    """Why ``settings`` (a JSON string, as WebPixelInput.settings is sent) does not match the
    app's pixel extension, or None. Shopify validates against the extension's fields."""
    extensions = pixel_extensions()
    if not extensions:
        return "The app has no web pixel extension"
    try:
        parsed = json.loads(settings) if isinstance(settings, str) else settings
    except ValueError:
        return "Settings must be a JSON object"
    if not isinstance(parsed, dict):
        return "Settings must be a JSON object"
    fields = set(next(iter(extensions.values())).fields)
    if set(parsed) != fields:
        return f"Settings must have exactly these fields: {', '.join(sorted(fields))}"
    if not all(isinstance(v, str) and v for v in parsed.values()):
        return "Every setting must be a non-empty text"
    return None


def worker_script(handle: str) -> bytes | None:
    """The sandbox runtime, then the pixel's own code with its import bound to it."""
    extension = pixel_extensions().get(handle)
    if extension is None:
        return None
    code = (extension.directory / "src" / "index.js").read_text()
    built, bound = _IMPORT.subn("const { register } = self.__webPixelRuntime;", code)
    if bound != 1:
        raise ValueError(
            f"{handle}: the pixel must import register from @shopify/web-pixels-extension"
        )
    runtime = (STATIC_DIR / "web-pixel-sandbox.js").read_text()
    return f"{runtime}\n{{\n{built}\n}}\n".encode()


def manager_tags(world: World, shop: Shop, events: list[dict[str, Any]]) -> str:
    """What Shopify puts on every storefront page for the shop's connected pixels."""
    if not shop.installed or shop.web_pixel is None:
        return ""
    extensions = pixel_extensions()
    settings = json.loads(shop.web_pixel["settings"])
    config = {
        "pixels": [
            {"worker": f"/cdn/wpm/{ext.handle}/worker.js", "settings": settings,
             "privacy": ext.privacy}
            for ext in extensions.values()
        ],
        "consent": {**DEFAULT_CONSENT, **world.visitor_consent.get(shop.handle, {})},
        "shop": {"name": shop.name, "myshopifyDomain": shop.domain,
                 "paymentSettings": {"currencyCode": shop.currency}},
        "events": events,
    }  # fmt: skip
    payload = html.escape(json.dumps(config), quote=False)
    return (
        f'<script type="application/json" id="web-pixels-manager-config">{payload}</script>\n'
        '<script src="/cdn/wpm/manager.js" defer></script>'
    )


def manager_script() -> bytes:
    return (STATIC_DIR / "web-pixels-manager.js").read_bytes()


# --- the checkout -------------------------------------------------------------------------
def place_order(world: World, shop: Shop, product_id: int, quantity: int = 1) -> dict[str, Any]:
    """Buy ``quantity`` of a product: the order, and the token of its thank-you page."""
    with world.lock:
        product = shop.products[int(product_id)]
        price = Decimal(str((product.get("variants") or [{}])[0].get("price") or "0"))
        order_id = world.new_id()
        order = {
            "id": order_id,
            "token": secrets.token_hex(16),
            "name": f"#{1000 + len(shop.orders) + 1}",
            "currency": shop.currency,
            "total": str(price * quantity),
            "line_items": [{"product_id": product["id"], "title": product.get("title", ""),
                            "quantity": quantity, "price": str(price)}],
            "created_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            "refunds": [],
        }  # fmt: skip
        shop.orders[order_id] = order
    return order


def checkout_completed(shop: Shop, order: dict[str, Any]) -> dict[str, Any]:
    """The ``checkout_completed`` event's data, shaped like Shopify's (the customer's
    details included: what a pixel forwards is up to the pixel)."""
    money = lambda amount: {"amount": float(amount), "currencyCode": order["currency"]}  # noqa: E731
    return {
        "checkout": {
            "token": order["token"],
            "currencyCode": order["currency"],
            "email": "shopper@example.com",
            "phone": "+15555550100",
            "shippingAddress": {"firstName": "Sam", "lastName": "Shopper", "city": "Ottawa"},
            "totalPrice": money(order["total"]),
            "subtotalPrice": money(order["total"]),
            "lineItems": [
                {"id": f"{order['id']}-{n}", "quantity": line["quantity"], "title": line["title"],
                 "variant": {"price": money(line["price"]),
                             "product": {"id": str(line["product_id"]), "title": line["title"]}}}
                for n, line in enumerate(order["line_items"])
            ],
            "order": {"id": str(order["id"])},
        }
    }  # fmt: skip


def refund_order(world: World, shop: Shop, order_id: int, amount: str | None = None) -> str | None:
    """The merchant refunds the order, in full or ``amount`` of it: refunds/create is sent."""
    with world.lock:
        order = shop.orders[int(order_id)]
        refund = {"id": world.new_id(), "amount": str(amount or order["total"])}
        order["refunds"].append(refund)
    payload = {
        "id": refund["id"],
        "order_id": order["id"],
        "created_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "note": None,
        "restock": False,
        "refund_line_items": [
            {"line_item_id": n, "quantity": line["quantity"],
             "subtotal": line["price"]} for n, line in enumerate(order["line_items"])
        ],
        "transactions": [{"kind": "refund", "status": "success", "amount": refund["amount"],
                          "currency": order["currency"]}],
    }  # fmt: skip
    return world.webhooks.deliver(shop, "refunds/create", payload)


def thank_you_page(shop: Shop, order: dict[str, Any]) -> str:
    lines = "".join(
        f"<li>{line['quantity']} x {html.escape(line['title'])}</li>"
        for line in order["line_items"]
    )
    return (
        f'<h1 class="thank-you">Thank you for your order</h1>'
        f'<p>Order <span class="order-name">{order["name"]}</span> '
        f'(<span class="order-id">{order["id"]}</span>) — {order["currency"]} '
        f'<span class="order-total">{order["total"]}</span></p><ul>{lines}</ul>'
    )
