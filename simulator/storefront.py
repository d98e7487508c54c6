"""The simulated Online Store: theme-like home, collection and product pages that render the
app's theme app extension with a real Liquid engine (the app embed block before </body>,
the app block inside the product section), its assets, and the app proxy.

The app proxy works as Shopify's does: ``/apps/interlayer/<path>`` is forwarded to the
app's proxy URL + ``/<path>`` with ``shop``, ``logged_in_customer_id``, ``path_prefix``,
``timestamp`` and a ``signature`` over them; the shopper's address goes in
X-Forwarded-For, and the app's answer is passed back. Cookies are not forwarded.
"""

from __future__ import annotations

import html
import json
import re
import time
from decimal import Decimal
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import httpx
from liquid import Environment

from simulator.state import Shop, World

EXTENSION_DIR = Path(__file__).resolve().parent.parent / "extensions" / "interlayer-widget"
_PASSED_BACK = ("content-type", "location", "cache-control")


def _block_source(name: str) -> tuple[str, dict[str, Any]]:
    """A block's Liquid without its schema, and the schema's setting defaults."""
    source = (EXTENSION_DIR / "blocks" / f"{name}.liquid").read_text()
    body, _, rest = source.partition("{% schema %}")
    schema = json.loads(rest.partition("{% endschema %}")[0])
    defaults = {s["id"]: s.get("default") for s in schema.get("settings", []) if "id" in s}
    return body, defaults


class Storefront:
    def __init__(self, world: World):
        self.world = world
        self.liquid = Environment()
        # Shopify's asset_url filter: the extension's assets on the (simulated) CDN.
        self.liquid.filters["asset_url"] = lambda name: (
            f"{world.public_url}/cdn/extensions/interlayer-widget/assets/{name}"
        )

    # --- pages ----------------------------------------------------------------------------
    def page(self, shop: Shop, path: str) -> tuple[int, str]:
        if path in {"", "/"}:
            return 200, self._layout(
                shop, "index", None, self._grid(shop, limit=8, heading="Featured")
            )
        if path in {"/collections/all", "/collections"}:
            return 200, self._layout(
                shop, "collection", None, self._grid(shop, limit=48, heading="All products")
            )
        if path.startswith("/products/"):
            handle = path.removeprefix("/products/").strip("/")
            product = next(
                (
                    p
                    for p in shop.products.values()
                    if p.get("handle") == handle and str(p.get("status", "active")) == "active"
                ),
                None,
            )
            if product is None:
                return 404, self._layout(shop, "404", None, "<h1>Page not found</h1>")
            return 200, self._layout(shop, "product", product, self._product_section(shop, product))
        return 404, self._layout(shop, "404", None, "<h1>Page not found</h1>")

    def _layout(self, shop: Shop, page_type: str, product: dict | None, main: str) -> str:
        name = html.escape(shop.name)
        embed = self.render_embed(shop, page_type, product)
        return f"""<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
<title>{name}</title>
<style>
body{{margin:0;font:16px/1.5 system-ui,sans-serif;color:#1a1a1a}}
header,footer{{padding:16px 24px;background:#f6f6f4}} header a{{color:inherit;text-decoration:none;font-weight:700}}
main{{max-width:1100px;margin:0 auto;padding:24px}}
.product{{display:grid;grid-template-columns:1fr 1fr;gap:32px}} .product img{{width:100%;border-radius:8px}}
.grid{{display:grid;grid-template-columns:repeat(auto-fill,minmax(200px,1fr));gap:16px}}
.card{{color:inherit;text-decoration:none}} .card img{{width:100%;aspect-ratio:1;border-radius:6px}}
@media(max-width:749px){{.product{{grid-template-columns:1fr}}}}
</style>
</head>
<body>
<header><a href="/">{name}</a> · <a href="/collections/all">Shop all</a></header>
<main id="MainContent">{main}</main>
<footer>© {name} · Powered by the simulated Online Store</footer>
{embed}
</body>
</html>"""

    def _product_section(self, shop: Shop, product: dict) -> str:
        price = Decimal(str((product.get("variants") or [{}])[0].get("price") or "0"))
        image = (product.get("images") or [{}])[0].get("src", "")
        block, defaults = _block_source("recommendations")
        app_block = self.liquid.from_string(block).render(block={"settings": defaults})
        return f"""<section class="product" data-product-id="{product["id"]}">
  <img src="{html.escape(image)}" alt="" width="540" height="540">
  <div>
    <h1 class="product-title">{html.escape(product.get("title") or "")}</h1>
    <p class="price">${price:,.2f}</p>
    <div class="description">{html.escape(_text(product.get("body_html") or ""))}</div>
    <button type="button">Add to cart</button>
  </div>
</section>
<section class="product-recommendations">{app_block}</section>"""

    def _grid(self, shop: Shop, *, limit: int, heading: str) -> str:
        cards = []
        for product in list(shop.products.values())[:limit]:
            if str(product.get("status", "active")) != "active":
                continue
            image = (product.get("images") or [{}])[0].get("src", "")
            cards.append(
                f'<a class="card" href="/products/{html.escape(product["handle"])}">'
                f'<img src="{html.escape(image)}" alt="" loading="lazy" width="200" height="200">'
                f"<div>{html.escape(product.get('title') or '')}</div></a>"
            )
        return f"<h1>{heading}</h1><div class='grid'>{''.join(cards)}</div>"

    def render_embed(
        self, shop: Shop, page_type: str, product: dict | None, root_url: str = "/"
    ) -> str:
        if not shop.installed or not self.world.theme_embed_enabled.get(shop.handle, True):
            return ""
        block, defaults = _block_source("app-embed")
        settings = {**defaults, **self.world.theme_embed_settings.get(shop.handle, {})}
        return self.liquid.from_string(block).render(
            block={"settings": settings},
            shop={"permanent_domain": shop.domain},
            request={"page_type": page_type, "locale": {"iso_code": root_url.strip("/") or "en"}},
            product={"id": product["id"]} if product else None,
            routes={"root_url": root_url},
        )

    # --- assets ---------------------------------------------------------------------------
    @staticmethod
    def asset(name: str) -> bytes | None:
        path = (EXTENSION_DIR / "assets" / name).resolve()
        if path.parent != (EXTENSION_DIR / "assets").resolve() or not path.is_file():
            return None
        return path.read_bytes()

    @staticmethod
    def placeholder_image(colour: str, label: str) -> str:
        colour = (
            colour
            if len(colour) == 6 and all(c in "0123456789abcdef" for c in colour)
            else "888888"
        )
        initials = html.escape("".join(w[0] for w in label.split("-")[:2]).upper())
        return (
            '<svg xmlns="http://www.w3.org/2000/svg" width="400" height="400" viewBox="0 0 400 400">'
            f'<rect width="400" height="400" fill="#{colour}"/>'
            f'<text x="200" y="225" font-size="96" text-anchor="middle" fill="#fff" '
            f'font-family="sans-serif">{initials}</text></svg>'
        )

    # --- the app proxy --------------------------------------------------------------------
    def proxy(
        self, shop: Shop, subpath: str, query_pairs: list[tuple[str, str]], *, method: str,
        body: bytes, client_ip: str, user_agent: str, content_type: str,
    ) -> tuple[int, bytes, dict[str, str]]:  # fmt: skip
        from simulator.server import sign_proxy_query  # noqa: PLC0415 -- server imports us

        app = self.world.app
        params = [(k, v) for k, v in query_pairs if k != "signature"]
        params += [
            ("shop", shop.domain),
            ("logged_in_customer_id", ""),
            ("path_prefix", f"/{app.proxy_prefix}/{app.proxy_subpath}"),
            ("timestamp", str(int(time.time()))),
        ]
        params.append(("signature", sign_proxy_query(params, app.api_secret)))
        url = f"{app.app_url}{app.proxy_path}{subpath}?{urlencode(params)}"
        headers = {"X-Forwarded-For": client_ip, "User-Agent": user_agent}
        if content_type:
            headers["Content-Type"] = content_type
        try:
            response = httpx.request(method, url, content=body or None, headers=headers, timeout=10)
        except httpx.HTTPError:
            return 502, b"The app did not answer.", {"Content-Type": "text/plain"}
        passed = {k: v for k, v in response.headers.items() if k.lower() in _PASSED_BACK}
        return response.status_code, response.content, passed


def _text(value: str) -> str:
    return re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", value)).strip()
