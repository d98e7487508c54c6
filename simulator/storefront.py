"""The simulated Online Store: theme-like home, collection and product pages that render the
app's theme app extension with a real Liquid engine (the app embed block before </body>,
the app block inside the product section), its assets, and the app proxy.

Every shop publishes its storefront in English and in the languages of ``LOCALE_ROOTS``
(Arabic right to left, as a theme sets ``<html dir="rtl">``)
under their own root (``/fr/products/…``, ``routes.root_url`` = ``/fr``), and Liquid's ``t``
filter reads the extension's locale file for the page's language, as Shopify's does.

Each section is in Shopify's wrapper (``<div id="shopify-section-<id>" class="shopify-section">``)
and answers the Section Rendering API (``?section_id=<id>``: that section's HTML alone).
``?_sim_design_mode=1`` renders a page as the theme editor's preview frame does:
``request.design_mode`` is true, ``Shopify.designMode`` is set before any theme or app script
runs, and a stand-in for the editor (``/cdn/theme-editor.js``) re-renders a section the way
the editor does when the merchant changes it (``ShopifySimThemeEditor.renderSection(id)``).

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
from liquid import Environment, FileSystemLoader
from liquid.filter import with_context

from simulator import pixels
from simulator.state import Shop, World

EXTENSION_DIR = Path(__file__).resolve().parent.parent / "extensions" / "interlayer-widget"
_PASSED_BACK = ("content-type", "location", "cache-control")
# One client forwards every proxied request, as Shopify's proxy keeps its connections: a
# client per request builds a TLS context each time (about 50 ms here), which would be the
# stand-in's cost, not the app's, in every storefront timing.
_TO_APP = httpx.Client(timeout=10)
# The storefront's alternate languages, each under its root: /fr, /de, /es, and Arabic (/ar),
# written right to left, for which the extension has no locale file (English strings).
LOCALE_ROOTS = ("fr", "de", "es", "ar")
RIGHT_TO_LEFT = {"ar"}
_LOCALE_ROOT_RE = re.compile(rf"^/({'|'.join(LOCALE_ROOTS)})(/.*)?$")
# The product template's sections, as a JSON template names them (section ids).
MAIN_PRODUCT_SECTION = "template--product__main"
RECOMMENDATIONS_SECTION = "template--product__recommendations"
# What the query asks for the theme editor's preview (a simulator switch, not Shopify's).
DESIGN_MODE_PARAM = "_sim_design_mode"


def _locale_strings(iso_code: str) -> dict[str, Any]:
    """The extension's storefront strings for a language (Shopify's fallback: the default
    locale file for a language the extension has no file for, or a key it lacks)."""
    locales = EXTENSION_DIR / "locales"
    strings = json.loads(next(locales.glob("*.default.json")).read_text())
    own = locales / f"{iso_code}.json"
    if own.is_file() and iso_code:
        strings = _merged(strings, json.loads(own.read_text()))
    return strings


def _merged(base: dict[str, Any], over: dict[str, Any]) -> dict[str, Any]:
    merged = dict(base)
    for key, value in over.items():
        both = isinstance(value, dict) and isinstance(base.get(key), dict)
        merged[key] = _merged(base[key], value) if both else value
    return merged


@with_context
def _translate(key: str, *, context: Any) -> str:
    """Liquid's ``t`` filter: a dotted key looked up in the page language's locale file."""
    request = context.resolve("request", default=None) or {}
    value: Any = _locale_strings((request.get("locale") or {}).get("iso_code", ""))
    for part in str(key).split("."):
        value = value.get(part) if isinstance(value, dict) else None
    return value if isinstance(value, str) else f"translation missing: {key}"


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
        # Blocks render the extension's snippets ({% render 'interlayer-script' %}).
        self.liquid = Environment(
            loader=FileSystemLoader(EXTENSION_DIR / "snippets", ext=".liquid")
        )
        self.liquid.filters["t"] = _translate
        # Shopify's asset_url filter: the extension's assets on the (simulated) CDN.
        self.liquid.filters["asset_url"] = lambda name: (
            f"{world.public_url}/cdn/extensions/interlayer-widget/assets/{name}"
        )

    @staticmethod
    def split_locale_root(path: str) -> tuple[str, str]:
        """A storefront path as (``routes.root_url``, the path under it): "/fr/products/x"
        is ("/fr", "/products/x"), "/products/x" is ("/", "/products/x")."""
        match = _LOCALE_ROOT_RE.match(path)
        if match is None:
            return "/", path
        return f"/{match.group(1)}", match.group(2) or "/"

    # --- pages ----------------------------------------------------------------------------
    def page(self, shop: Shop, path: str, query: dict[str, str] | None = None) -> tuple[int, str]:
        query = query or {}
        design_mode = query.get(DESIGN_MODE_PARAM) == "1"
        root_url, path = self.split_locale_root(path)
        if path in {"", "/"}:
            return 200, self._layout(
                shop, "index", None, self._grid(shop, 8, "Featured", root_url), root_url
            )
        if path in {"/collections/all", "/collections"}:
            grid = self._grid(shop, 48, "All products", root_url)
            return 200, self._layout(shop, "collection", None, grid, root_url)
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
                return 404, self._layout(shop, "404", None, "<h1>Page not found</h1>", root_url)
            sections = self._product_sections(shop, product, root_url, design_mode)
            if "section_id" in query:  # the Section Rendering API: that section alone
                section = sections.get(query["section_id"])
                return (200, section) if section is not None else (404, "")
            main = "".join(sections.values())
            return 200, self._layout(
                shop, "product", product, main, root_url, design_mode=design_mode
            )
        thank_you = re.match(r"^/checkouts/([0-9a-f]{32})/thank-you$", path)
        order = next(
            (o for o in shop.orders.values() if thank_you and o["token"] == thank_you.group(1)),
            None,
        )
        if order is not None:
            # Shopify's thank-you page: every load emits checkout_completed to the pixels.
            event = {"name": "checkout_completed", "data": pixels.checkout_completed(shop, order)}
            page = pixels.thank_you_page(shop, order)
            return 200, self._layout(shop, "checkout", None, page, root_url, events=[event])
        return 404, self._layout(shop, "404", None, "<h1>Page not found</h1>", root_url)

    def checkout(self, shop: Shop, product_id: int, quantity: int = 1) -> str:
        """The shopper buys (one-page checkout, paid at once): where the thank-you page is."""
        order = pixels.place_order(self.world, shop, product_id, quantity)
        return f"/checkouts/{order['token']}/thank-you"

    def _layout(
        self, shop: Shop, page_type: str, product: dict | None, main: str, root_url: str = "/",
        events: list[dict[str, Any]] | None = None, design_mode: bool = False,
    ) -> str:  # fmt: skip
        name = html.escape(shop.name)
        # Theme app embeds are not rendered in checkout; the pixels run on every page.
        embed = (
            ""
            if page_type == "checkout"
            else self.render_embed(
                shop, page_type, product, root_url=root_url, design_mode=design_mode
            )
        )
        # In the theme editor, content_for_header sets Shopify.designMode before any script.
        editor = (
            "<script>window.Shopify = window.Shopify || {}; Shopify.designMode = true;</script>"
            f'<script src="{self.world.public_url}/cdn/theme-editor.js" defer></script>'
            if design_mode
            else ""
        )
        web_pixels = pixels.manager_tags(self.world, shop, events or [])
        lang = root_url.strip("/") or "en"
        direction = ' dir="rtl"' if lang in RIGHT_TO_LEFT else ""
        home = root_url.rstrip("/")
        return f"""<!doctype html>
<html lang="{lang}"{direction}>
<head>
<meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
<title>{name}</title>
{editor}
<style>
body{{margin:0;font:16px/1.5 system-ui,sans-serif;color:#1a1a1a}}
header,footer{{padding:16px 24px;background:#f6f6f4}} header a{{color:inherit;text-decoration:none;font-weight:700}}
main{{max-width:1100px;margin:0 auto;padding:24px}}
.product{{display:grid;grid-template-columns:1fr 1fr;gap:32px}} .product img{{width:100%;border-radius:8px}}
.grid{{display:grid;grid-template-columns:repeat(auto-fill,minmax(200px,1fr));gap:16px}}
.card{{color:inherit;text-decoration:none}} .card img{{width:100%;aspect-ratio:1;border-radius:6px}}
@media(max-width:749px){{.product{{grid-template-columns:1fr}}}}
/* Dawn's base.css, and so every free theme built on it, hides empty elements. */
a:empty,ul:empty,div:empty,section:empty,p:empty,h1:empty,h2:empty{{display:none}}
</style>
</head>
<body>
<header><a href="{home}/">{name}</a> · <a href="{home}/collections/all">Shop all</a></header>
<main id="MainContent">{main}</main>
<footer>© {name} · Powered by the simulated Online Store</footer>
{embed}
{web_pixels}
</body>
</html>"""

    def _product_sections(
        self, shop: Shop, product: dict, root_url: str, design_mode: bool
    ) -> dict[str, str]:
        """The product template's sections by id, each in Shopify's section wrapper."""
        price = Decimal(str((product.get("variants") or [{}])[0].get("price") or "0"))
        image = (product.get("images") or [{}])[0].get("src", "")
        block, defaults = _block_source("recommendations")
        settings = {**defaults, **self.world.theme_block_settings.get(shop.handle, {})}
        app_block = self.liquid.from_string(block).render(
            block={"settings": settings},
            **_liquid_globals(shop, "product", product, root_url, design_mode),
        )
        # The block is in the product template only while the theme has it (what the set-up
        # guide reads through the Admin API, and what the theme editor's switch changes).
        if not self.world.theme_app_block_added.get(shop.handle, True):
            app_block = ""
        main = f"""<section class="product" data-product-id="{product["id"]}">
  <img src="{html.escape(image)}" alt="" width="540" height="540">
  <div>
    <h1 class="product-title">{html.escape(product.get("title") or "")}</h1>
    <p class="price">${price:,.2f}</p>
    <div class="description">{html.escape(_text(product.get("body_html") or ""))}</div>
    <button type="button">Add to cart</button>
    <form method="post" action="{root_url.rstrip("/")}/checkout" class="buy">
      <input type="hidden" name="product_id" value="{product["id"]}">
      <button type="submit" class="buy-now">Buy it now</button>
    </form>
  </div>
</section>"""
        recommendations = f'<section class="product-recommendations">{app_block}</section>'
        return {
            section_id: f'<div id="shopify-section-{section_id}" class="shopify-section">'
            f"{content}</div>"
            for section_id, content in (
                (MAIN_PRODUCT_SECTION, main),
                (RECOMMENDATIONS_SECTION, recommendations),
            )
        }

    def _grid(self, shop: Shop, limit: int, heading: str, root_url: str = "/") -> str:
        cards = []
        for product in list(shop.products.values())[:limit]:
            if str(product.get("status", "active")) != "active":
                continue
            image = (product.get("images") or [{}])[0].get("src", "")
            cards.append(
                f'<a class="card" href="{root_url.rstrip("/")}/products/'
                f'{html.escape(product["handle"])}">'
                f'<img src="{html.escape(image)}" alt="" loading="lazy" width="200" height="200">'
                f"<div>{html.escape(product.get('title') or '')}</div></a>"
            )
        return f"<h1>{heading}</h1><div class='grid'>{''.join(cards)}</div>"

    def render_embed(
        self, shop: Shop, page_type: str, product: dict | None, root_url: str = "/",
        design_mode: bool = False,
    ) -> str:  # fmt: skip
        if not shop.installed or not self.world.theme_embed_enabled.get(shop.handle, True):
            return ""
        block, defaults = _block_source("app-embed")
        settings = {**defaults, **self.world.theme_embed_settings.get(shop.handle, {})}
        return self.liquid.from_string(block).render(
            block={"settings": settings},
            **_liquid_globals(shop, page_type, product, root_url, design_mode),
        )

    # --- assets ---------------------------------------------------------------------------
    @staticmethod
    def asset(name: str) -> bytes | None:
        path = (EXTENSION_DIR / "assets" / name).resolve()
        if path.parent != (EXTENSION_DIR / "assets").resolve() or not path.is_file():
            return None
        return path.read_bytes()

    @staticmethod
    def placeholder_image(colour: str, label: str, *, width: str = "", height: str = "") -> str:
        """A product image: 400 x 400 px as uploaded, or at the ``width``/``height`` asked
        for (the CDN's resizing; one given keeps the image square)."""
        colour = (
            colour
            if len(colour) == 6 and all(c in "0123456789abcdef" for c in colour)
            else "888888"
        )
        initials = html.escape("".join(w[0] for w in label.split("-")[:2]).upper())
        w = int(width) if width.isdigit() and 0 < int(width) <= 5760 else 0
        h = int(height) if height.isdigit() and 0 < int(height) <= 5760 else 0
        w, h = (w or h or 400), (h or w or 400)
        return (
            f'<svg xmlns="http://www.w3.org/2000/svg" width="{w}" height="{h}" '
            'viewBox="0 0 400 400" preserveAspectRatio="xMidYMid slice">'
            f'<rect width="400" height="400" fill="#{colour}"/>'
            f'<text x="200" y="225" font-size="96" text-anchor="middle" fill="#fff" '
            f'font-family="sans-serif">{initials}</text></svg>'
        )

    # --- the app proxy --------------------------------------------------------------------
    def proxy(
        self, shop: Shop, subpath: str, query_pairs: list[tuple[str, str]], *, method: str,
        body: bytes, client_ip: str, user_agent: str, content_type: str,
        fetch_metadata: dict[str, str] | None = None,
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
        headers = {"X-Forwarded-For": client_ip, "User-Agent": user_agent, **(fetch_metadata or {})}
        if content_type:
            headers["Content-Type"] = content_type
        try:
            response = _TO_APP.request(method, url, content=body or None, headers=headers)
        except httpx.HTTPError:
            return 502, b"The app did not answer.", {"Content-Type": "text/plain"}
        passed = {k: v for k, v in response.headers.items() if k.lower() in _PASSED_BACK}
        return response.status_code, response.content, passed


def _liquid_globals(
    shop: Shop, page_type: str, product: dict | None, root_url: str, design_mode: bool = False
) -> dict[str, Any]:
    """The Liquid objects Shopify gives every block and the snippets it renders."""
    return {
        # The app's own metafields (app-data, on its installation), values as Liquid has them.
        "app": {
            "metafields": {
                namespace: {
                    key: {"type": field["type"], "value": _metafield_value(field)}
                    for key, field in fields.items()
                }
                for namespace, fields in shop.app_metafields.items()
            }
        },
        "shop": {"permanent_domain": shop.domain},
        "request": {
            "page_type": page_type,
            "locale": {"iso_code": root_url.strip("/") or "en"},
            "design_mode": design_mode,  # true in the theme editor's preview
        },
        "product": {"id": product["id"]} if product else None,
        "routes": {"root_url": root_url},
        # The shopper's currency: the shop's own here (no Markets in the stand-in).
        "cart": {"currency": {"iso_code": shop.currency}},
    }


def _metafield_value(field: dict[str, str]) -> Any:
    return field["value"] == "true" if field["type"] == "boolean" else field["value"]


def _text(value: str) -> str:
    return re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", value)).strip()
