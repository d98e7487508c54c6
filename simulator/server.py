"""The simulator's HTTP server: Shopify's side of every exchange the app makes.

Requests are routed to a shop by Host (``{shop}.myshopify.com`` as the app's client sends
them, ``{shop}.localhost`` for storefronts opened in a browser) or by a ``/store/{shop}``
path prefix (the admin as a browser opens it). ``/_sim/...`` is the control API tests and
the demo use to inspect state and inject faults.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import html
import json
import logging
import re
import secrets
import socket
import threading
import time
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlparse

import jwt

from simulator import admin_graphql, pixels
from simulator.state import ID_TOKEN_TTL, Shop, World

log = logging.getLogger("simulator")
STATIC_DIR = Path(__file__).parent / "static"
MAX_BODY = 5 * 1024 * 1024
FETCH_METADATA = ("Sec-Fetch-Mode", "Sec-Fetch-Dest", "Sec-Fetch-Site", "Sec-Fetch-User",
                  "Sec-Purpose", "Purpose")  # fmt: skip
_SHOP_PATH_RE = re.compile(r"^/store/([a-z0-9][a-z0-9-]*[a-z0-9])(/.*)?$")


def sign_query(params: dict[str, str], secret: str) -> str:
    """Shopify's query HMAC: sorted ``k=v`` joined by ``&``, hex HMAC-SHA256."""
    message = "&".join(f"{k}={v}" for k, v in sorted(params.items()) if k != "hmac")
    return hmac.new(secret.encode(), message.encode(), hashlib.sha256).hexdigest()


def sign_proxy_query(params: list[tuple[str, str]], secret: str) -> str:
    """Shopify's app-proxy signature: values of repeated keys joined with ``,``; pairs sorted
    and concatenated with no separator; hex HMAC-SHA256."""
    grouped: dict[str, list[str]] = {}
    for key, value in params:
        if key != "signature":
            grouped.setdefault(key, []).append(value)
    message = "".join(f"{k}={','.join(v)}" for k, v in sorted(grouped.items()))
    return hmac.new(secret.encode(), message.encode(), hashlib.sha256).hexdigest()


def mint_id_token(world: World, shop: Shop, *, ttl: int = ID_TOKEN_TTL, **overrides) -> str:
    """An App Bridge ID token for ``shop`` (HS256, signed with the app's secret)."""
    now = int(time.time())
    claims = {
        "iss": f"https://{shop.domain}/admin",
        "dest": f"https://{shop.domain}",
        "aud": world.app.api_key,
        "sub": "1",
        "exp": now + ttl,
        "nbf": now - 1,
        "iat": now,
        "jti": secrets.token_hex(8),
        "sid": secrets.token_hex(8),
    }
    claims.update(overrides)
    return jwt.encode(claims, world.app.api_secret, algorithm="HS256")


class Handler(BaseHTTPRequestHandler):
    server_version = "ShopifySimulator/1.0"
    world: World  # set on the subclass made by make_server
    storefront: Any  # simulator.storefront.Storefront, likewise

    # --- plumbing ---------------------------------------------------------------------
    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - stdlib signature
        log.debug("%s %s", self.address_string(), format % args)

    def _send(self, status: int, body: bytes | str = b"", headers: dict[str, str] | None = None):
        if isinstance(body, str):
            body = body.encode()
        self.send_response(status)
        headers = {"Content-Type": "application/json", **(headers or {})}
        for name, value in headers.items():
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def _cut_short(self, body: bytes) -> None:
        """A 200 that promises ``body`` and sends half of it before the connection drops
        (a reset mid-response)."""
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body[: len(body) // 2])
        self.wfile.flush()
        self.close_connection = True
        self.connection.shutdown(socket.SHUT_RDWR)

    def _json(self, status: int, payload: Any, headers: dict[str, str] | None = None):
        self._send(status, json.dumps(payload), headers)

    def _html(self, status: int, body: str):
        self._send(status, body, {"Content-Type": "text/html; charset=utf-8"})

    def _redirect(self, location: str):
        self._send(HTTPStatus.FOUND, b"", {"Location": location, "Content-Type": "text/plain"})

    def _body(self) -> bytes:
        length = int(self.headers.get("Content-Length") or 0)
        if length > MAX_BODY:
            raise ValueError("body too large")
        return self.rfile.read(length) if length else b""

    def _json_body(self) -> dict[str, Any]:
        raw = self._body()
        if not raw:
            return {}
        content_type = self.headers.get("Content-Type", "")
        if "application/x-www-form-urlencoded" in content_type:
            return dict(parse_qsl(raw.decode()))
        return json.loads(raw)

    def do_GET(self):
        self._dispatch()

    def do_POST(self):
        self._dispatch()

    def do_DELETE(self):
        self._dispatch()

    def _dispatch(self):
        url = urlparse(self.path)
        self.query = dict(parse_qsl(url.query, keep_blank_values=True))
        self.query_pairs = parse_qsl(url.query, keep_blank_values=True)
        shop, path = self._resolve_shop(url.path)
        try:
            if shop is not None:
                return self._shop_route(shop, path)
            return self._global_route(url.path)
        except (ValueError, KeyError) as error:
            return self._json(400, {"errors": f"bad request: {error}"})
        except (BrokenPipeError, ConnectionResetError):
            return None
        except Exception:  # answer like Shopify would, and keep the trace for the developer
            log.exception("simulator error on %s %s", self.command, self.path)
            return self._json(500, {"errors": "Internal error"})

    def _resolve_shop(self, path: str) -> tuple[Shop | None, str]:
        match = _SHOP_PATH_RE.match(path)
        if match:
            return self.world.shop(match.group(1)), match.group(2) or "/"
        host = (self.headers.get("Host") or "").split(":")[0].lower()
        for suffix in (".myshopify.com", ".localhost"):
            if host.endswith(suffix):
                return self.world.shop(host.removesuffix(suffix)), path
        return None, path

    # --- global (control API, CDN) ------------------------------------------------------
    def _global_route(self, path: str):
        asset = re.match(r"^/cdn/extensions/interlayer-widget/assets/([\w.-]+)$", path)
        if asset:
            content = self.storefront.asset(asset.group(1))
            if content is None:
                return self._json(404, {"errors": "Not Found"})
            kind = "application/javascript" if asset.group(1).endswith(".js") else "text/plain"
            return self._send(
                200, content, {"Content-Type": kind, "Cache-Control": "public, max-age=300"}
            )
        image = re.match(r"^/cdn/img/([0-9a-f]{6})/([\w-]+)\.svg$", path)
        if image:
            # Like Shopify's CDN, the image is served at the width/height asked for.
            svg = self.storefront.placeholder_image(
                image.group(1),
                image.group(2),
                width=self.query.get("width", ""),
                height=self.query.get("height", ""),
            )
            return self._send(
                200,
                svg,
                {"Content-Type": "image/svg+xml", "Cache-Control": "public, max-age=86400"},
            )
        if path in {"/cdn/app-bridge.js", "/cdn/polaris.js", "/cdn/theme-editor.js"}:  # stand-ins
            body = (STATIC_DIR / path.removeprefix("/cdn/")).read_bytes()
            return self._send(200, body, {"Content-Type": "application/javascript"})
        if path == "/_sim/state":
            return self._json(200, self.world_summary())
        if path == "/_sim/config" and self.command == "POST":
            data = self._json_body()
            with self.world.lock:
                for key in ("access_token_ttl", "bucket_size", "restore_rate", "timeout_delay"):
                    if key in data:
                        setattr(self.world, key, type(getattr(self.world, key))(data[key]))
            return self._json(200, {"ok": True})
        match = re.match(r"^/_sim/shops/([a-z0-9-]+)/([a-z-]+)$", path)
        if match and self.command == "POST":
            shop = self.world.shop(match.group(1))
            if shop is None:
                return self._json(404, {"errors": "unknown shop"})
            return self._control(shop, match.group(2))
        if path in {"/", "/_sim"}:
            return self._html(200, self._index_page())
        return self._json(404, {"errors": "Not Found"})

    def _control(self, shop: Shop, action: str):
        data = self._json_body()
        if action == "faults":
            shop.faults.push(
                data["channel"],
                str(data["mode"]),
                int(data.get("count", 1)),
                after=int(data.get("after", 0)),
            )
            return self._json(200, {"ok": True})
        if action == "release":  # a request held by a "hold" fault goes on
            return self._json(200, {"released": shop.faults.release()})
        if action == "bulk":  # {"running": true}: bulk operations run until set false
            (shop.bulk_gate.clear if data.get("running") else shop.bulk_gate.set)()
            return self._json(200, {"ok": True})
        if action == "close":  # the shop frozen (402) or locked (423) by Shopify
            shop.closed_status = int(data.get("status", 402))
            return self._json(200, {"ok": True})
        if action == "reopen":
            shop.closed_status = 0
            return self._json(200, {"ok": True})
        if action == "expire-tokens":
            self.world.expire_access_tokens(shop)
            return self._json(200, {"ok": True})
        if action == "uninstall":
            event_id = self.world.uninstall(shop)
            redact_id = self.world.redact(shop) if data.get("redact") else None
            return self._json(200, {"event_id": event_id, "redact_event_id": redact_id})
        if action == "redact":
            return self._json(200, {"event_id": self.world.redact(shop)})
        if action == "webhook":
            event_id = self.world.webhooks.deliver(
                shop,
                data["topic"],
                data.get("payload") or {},
                event_id=data.get("event_id"),
                triggered_at=data.get("triggered_at"),
                copies=int(data.get("copies", 1)),
            )
            return self._json(200, {"event_id": event_id})
        if action == "redeliver":
            return self._json(200, {"ok": self.world.webhooks.redeliver(data["event_id"])})
        if action == "products":
            return self._json(200, self.world.save_product(shop.handle, data))
        if action == "delete-product":
            return self._json(200, {"ok": self.world.remove_product(shop.handle, data["id"])})
        if action == "theme-embed":
            if "enabled" in data:
                self.world.theme_embed_enabled[shop.handle] = bool(data["enabled"])
            if "settings" in data:
                self.world.theme_embed_settings[shop.handle] = dict(data["settings"])
            return self._json(
                200, {"enabled": self.world.theme_embed_enabled.get(shop.handle, True)}
            )
        if action == "theme-block":  # the merchant adds, removes or sets up the app block
            if "added" in data:
                self.world.theme_app_block_added[shop.handle] = bool(data["added"])
            if "settings" in data:
                self.world.theme_block_settings[shop.handle] = dict(data["settings"])
            return self._json(
                200, {"added": self.world.theme_app_block_added.get(shop.handle, True)}
            )
        if action == "consent":  # the storefront visitor's privacy choices (and enforcement)
            self.world.visitor_consent[shop.handle] = {
                key: bool(data[key]) for key in pixels.DEFAULT_CONSENT if key in data
            }
            return self._json(
                200, {**pixels.DEFAULT_CONSENT, **self.world.visitor_consent[shop.handle]}
            )
        if action == "refund":  # the merchant refunds an order (in full, or "amount" of it)
            refunded = pixels.refund_order(
                self.world, shop, int(data["order_id"]), amount=data.get("amount")
            )
            return self._json(200, {"event_id": refunded})
        if action == "scopes":
            return self._json(200, {"event_id": self.world.update_scopes(shop, data["scopes"])})
        if action == "id-token":
            ttl = int(data.pop("ttl", ID_TOKEN_TTL))
            return self._json(200, {"id_token": mint_id_token(self.world, shop, ttl=ttl, **data)})
        return self._json(404, {"errors": "unknown action"})

    def world_summary(self) -> dict[str, Any]:
        with self.world.lock:
            return {
                "app_url": self.world.app.app_url,
                "webhooks": list(self.world.webhooks.log[-200:]),
                "shops": {
                    shop.handle: {
                        "domain": shop.domain,
                        "name": shop.name,
                        "installed": shop.installed,
                        "products": len(shop.products),
                        "live_access_tokens": sum(
                            1 for exp in shop.access_tokens.values() if exp > time.time()
                        ),
                        "refresh_tokens": len(shop.refresh_tokens),
                        "graphql_requests": shop.graphql_requests,
                        "token_requests": list(shop.token_requests),
                        "storefront": self.world.storefront_url(shop),
                    }
                    for shop in self.world.shops.values()
                },
            }

    def _index_page(self) -> str:
        rows = "".join(
            f'<li><a href="/store/{s.handle}/admin/apps/{self.world.app.handle}">'
            f"{html.escape(s.name)}</a> — {len(s.products)} products — "
            f'<a href="{self.world.storefront_url(s)}/">storefront</a></li>'
            for s in self.world.shops.values()
        )
        return f"<!doctype html><title>Shopify simulator</title><h1>Shops</h1><ul>{rows}</ul>"

    # --- per shop -----------------------------------------------------------------------
    def _shop_route(self, shop: Shop, path: str):
        if path == "/admin/oauth/authorize":
            return self._authorize(shop)
        if path == "/admin/oauth/access_token" and self.command == "POST":
            return self._access_token(shop)
        if re.match(r"^/admin/api/[^/]+/graphql\.json$", path) and self.command == "POST":
            return self._graphql(shop)
        app_path = f"/admin/apps/{self.world.app.handle}"
        if path == app_path + "/install":
            return self._install(shop)
        if path.startswith(app_path):
            return self._admin_app_page(shop, path.removeprefix(app_path))
        bulk = re.match(r"^/_sim/bulk/([0-9a-z-]+)\.jsonl$", path)
        if bulk:
            data = shop.bulk_results.get(bulk.group(1))
            if data is None:
                return self._json(404, {"errors": "Not Found"})
            if self._fault_response(shop, "bulk", body=data):
                return None
            return self._send(200, data, {"Content-Type": "application/jsonl"})
        if path == "/_sim/id-token":
            if not shop.installed:
                return self._json(403, {"errors": "app not installed"})
            return self._json(200, {"id_token": mint_id_token(self.world, shop)})
        return self._storefront(shop, path)

    def _storefront(self, shop: Shop, path: str):
        if path.startswith("/cdn/wpm/"):
            return self._web_pixel_asset(path)
        if self.storefront.split_locale_root(path)[1] == "/checkout" and self.command == "POST":
            form = self._json_body()
            location = self.storefront.checkout(
                shop, int(form["product_id"]), max(1, int(form.get("quantity") or 1))
            )
            return self._send(303, b"", {"Location": location, "Content-Type": "text/plain"})
        if path == "/products.json":
            with self.world.lock:
                products = list(shop.products.values())
            return self._json(200, {"products": products})
        prefix = f"/{self.world.app.proxy_prefix}/{self.world.app.proxy_subpath}"
        # The proxy answers under every storefront root too: /fr/apps/interlayer/…
        proxied = self.storefront.split_locale_root(path)[1]
        if proxied == prefix or proxied.startswith(prefix + "/"):
            body = self._body() if self.command == "POST" else b""
            status, content, headers = self.storefront.proxy(
                shop,
                proxied.removeprefix(prefix),
                self.query_pairs,
                method=self.command,
                body=body,
                # A proxy appends the address that connected to it to what it was sent.
                client_ip=", ".join(
                    part
                    for part in (self.headers.get("X-Forwarded-For", ""), self.client_address[0])
                    if part
                ),
                user_agent=self.headers.get("User-Agent", ""),
                content_type=self.headers.get("Content-Type", ""),
                # What the browser says of the request (Fetch Metadata), passed on as sent:
                # Shopify documents stripping the Cookie header and some others; the app
                # judges a click by these only where they arrive.
                fetch_metadata={
                    name: self.headers[name] for name in FETCH_METADATA if name in self.headers
                },
            )
            return self._send(status, content, {"Content-Type": "text/plain", **headers})
        status, page = self.storefront.page(shop, path, self.query)
        return self._html(status, page)

    def _web_pixel_asset(self, path: str):
        """The pixel manager and each pixel's sandboxed worker, served from the shop's own
        origin as Shopify serves them (/cdn/wpm/...): a worker must be same-origin."""
        if path == "/cdn/wpm/manager.js":
            body = pixels.manager_script()
        else:
            match = re.match(r"^/cdn/wpm/([a-z0-9-]+)/worker\.js$", path)
            body = pixels.worker_script(match.group(1)) if match else None
        if body is None:
            return self._json(404, {"errors": "Not Found"})
        return self._send(200, body, {"Content-Type": "application/javascript",
                                      "Cache-Control": "no-cache"})  # fmt: skip

    def _install(self, shop: Shop):
        """What the app store's Install button does, in either install flow."""
        if self.query.get("app_url"):
            self.world.app.app_url = self.query["app_url"].rstrip("/")
        if self.query.get("flow", "managed") == "managed":
            # Shopify-managed installation: scopes from the app's TOML are granted up front,
            # then the app opens embedded and exchanges its ID token.
            self.world.install(shop)
            return self._redirect(f"/store/{shop.handle}/admin/apps/{self.world.app.handle}")
        params = {"shop": shop.domain, "timestamp": str(int(time.time()))}
        params["hmac"] = sign_query(params, self.world.app.api_secret)
        return self._redirect(f"{self.world.app.app_url}/?{urlencode(params)}")

    def _authorize(self, shop: Shop):
        app = self.world.app
        redirect_uri = self.query.get("redirect_uri", "")
        allowed = {app.app_url + path for path in app.redirect_paths}
        if self.query.get("client_id") != app.api_key:
            return self._html(400, "<h1>Oauth error invalid_request: unknown client_id</h1>")
        if redirect_uri not in allowed:
            return self._html(400, "<h1>Oauth error invalid_request: redirect_uri not allowed</h1>")
        # The merchant clicks "Install": the requested scopes are granted.
        with self.world.lock:
            shop.installed = True
            shop.granted_scopes = [s for s in self.query.get("scope", "").split(",") if s]
        params = {
            "code": self.world.issue_code(shop),
            "host": base64.b64encode(f"admin.shopify.com/store/{shop.handle}".encode()).decode(),
            "shop": shop.domain,
            "state": self.query.get("state", ""),
            "timestamp": str(int(time.time())),
        }
        params["hmac"] = sign_query(params, app.api_secret)
        return self._redirect(f"{redirect_uri}?{urlencode(params)}")

    def _fault_response(self, shop: Shop, channel: str, *, body: bytes | None = None) -> bool:
        """Answer with the next fault queued on ``channel``, if any; a "reset" cuts ``body``
        (what the request would have had) short."""
        mode = shop.faults.pop(channel)
        if mode is None or mode == "pass":
            return False
        if mode == "hold":
            shop.faults.hold()
            return False
        if mode == "timeout":
            time.sleep(self.world.timeout_delay)
            self._json(504, {"errors": "timeout"})
        elif mode == "429":
            self._json(
                429, {"errors": "Exceeded 2 calls per second for api client."}, {"Retry-After": "1"}
            )
        elif mode == "throttled":
            self._json(
                200,
                admin_graphql.throttled_response(
                    50,
                    {
                        "maximumAvailable": self.world.bucket_size,
                        "currentlyAvailable": 0,
                        "restoreRate": self.world.restore_rate,
                    },
                ),
            )
        elif mode == "reset":
            self._cut_short(body or b'{"data": {"products": {"nodes": []}}}' + b" " * 1000)
        elif mode == "malformed":
            self._send(200, b'{"data": {"products": ', {"Content-Type": "application/json"})
        elif mode == "error-text":  # a query error whose message no text column holds
            self._json(200, {"errors": [{"message": "Internal error\u0000 in \ud800 field"}]})
        elif mode == "stuck-page":  # a products page that says more follow, with no cursor
            page = {"nodes": [], "pageInfo": {"hasNextPage": True, "endCursor": None}}
            self._json(200, {"data": {"products": page}})
        elif mode.isdigit():
            self._json(int(mode), {"errors": "Internal Server Error", "error": "server_error"})
        else:
            return False
        return True

    def _access_token(self, shop: Shop):
        data = self._json_body()
        grant = data.get("grant_type") or "authorization_code"
        with self.world.lock:
            shop.token_requests.append(grant)
        if self._fault_response(shop, "token"):
            return None
        app = self.world.app
        if data.get("client_id") != app.api_key or data.get("client_secret") != app.api_secret:
            return self._json(
                401,
                {"error": "invalid_client", "error_description": "Client credentials are invalid"},
            )
        expiring = str(data.get("expiring", "0")) == "1"
        if grant == "authorization_code":
            if not self.world.redeem_code(shop, str(data.get("code", ""))):
                return self._json(
                    400,
                    {
                        "error": "invalid_request",
                        "error_description": "authorization code was not found or was already used",
                    },
                )
            return self._json(200, self.world.issue_tokens(shop, expiring=expiring))
        if grant == "urn:ietf:params:oauth:grant-type:token-exchange":
            return self._token_exchange(shop, data, expiring)
        if grant == "refresh_token":
            payload = self.world.rotate_refresh_token(shop, str(data.get("refresh_token", "")))
            if payload is None or not shop.installed:
                return self._json(
                    400,
                    {
                        "error": "invalid_grant",
                        "error_description": "refresh token is invalid, expired or revoked",
                    },
                )
            return self._json(200, payload)
        return self._json(400, {"error": "unsupported_grant_type"})

    def _token_exchange(self, shop: Shop, data: dict[str, Any], expiring: bool):
        app = self.world.app
        try:
            claims = jwt.decode(
                str(data.get("subject_token", "")),
                app.api_secret,
                algorithms=["HS256"],
                audience=app.api_key,
                leeway=10,
            )
        except jwt.PyJWTError:
            return self._json(
                400, {"error": "invalid_subject_token", "error_description": "ID token is invalid"}
            )
        if claims.get("dest") != f"https://{shop.domain}" or not shop.installed:
            return self._json(
                400,
                {
                    "error": "invalid_subject_token",
                    "error_description": "ID token does not match an installed shop",
                },
            )
        return self._json(200, self.world.issue_tokens(shop, expiring=expiring))

    def _graphql(self, shop: Shop):
        token = self.headers.get("X-Shopify-Access-Token", "")
        with self.world.lock:
            shop.graphql_requests += 1
        event = shop.faults.pop_shop_event("graphql")
        if event == "expire-tokens":
            self.world.expire_access_tokens(shop)
        elif event == "uninstall":
            self.world.uninstall(shop)
        if not self.world.token_valid(shop, token):
            return self._json(
                401,
                {
                    "errors": "[API] Invalid API key or access token (unrecognized login or wrong password)"
                },
            )
        if shop.closed_status:
            return self._json(shop.closed_status, {"errors": "Unavailable Shop"})
        if self._fault_response(shop, "graphql"):
            return None
        try:
            body = self._json_body()
        except ValueError:
            return self._json(400, {"errors": "Bad Request"})
        return self._json(200, admin_graphql.execute(self.world, shop, body))

    def _admin_app_page(self, shop: Shop, subpath: str):
        """The admin page that frames the embedded app and hands it ID tokens."""
        if not shop.installed:
            return self._html(404, "<h1>This app is not installed on this store.</h1>")
        app = self.world.app
        params = {
            "embedded": "1",
            "host": base64.b64encode(f"admin.shopify.com/store/{shop.handle}".encode()).decode(),
            "id_token": mint_id_token(self.world, shop),
            "locale": "en",
            "shop": shop.domain,
            "timestamp": str(int(time.time())),
        }
        params["hmac"] = sign_query(params, app.api_secret)
        src = f"{app.app_url}{subpath or '/'}?{urlencode(params)}"
        app_path = f"/admin/apps/{app.handle}"
        page = (STATIC_DIR / "admin.html").read_text()
        page = page.replace("{{SHOP_NAME}}", html.escape(shop.name))
        page = page.replace("{{APP_SRC}}", html.escape(src))
        page = page.replace("{{APP_ORIGIN}}", html.escape(_origin(app.app_url)))
        page = page.replace("{{TOKEN_URL}}", f"/store/{shop.handle}/_sim/id-token")
        page = page.replace("{{ADMIN_APP_URL}}", f"/store/{shop.handle}{app_path}")
        page = page.replace("{{PRODUCTS_URL}}", f"/store/{shop.handle}/products.json")
        return self._html(200, page)


def _origin(url: str) -> str:
    parsed = urlparse(url)
    return f"{parsed.scheme}://{parsed.netloc}"


def make_server(world: World, host: str, port: int) -> ThreadingHTTPServer:
    from simulator.storefront import Storefront  # noqa: PLC0415 -- it imports this module

    handler = type("BoundHandler", (Handler,), {"world": world, "storefront": Storefront(world)})
    server = ThreadingHTTPServer((host, port), handler)
    server.daemon_threads = True
    return server


def serve_in_thread(world: World, host: str = "127.0.0.1", port: int = 0):
    """Start a server on a background thread (tests); returns (server, base URL)."""
    server = make_server(world, host, port)
    thread = threading.Thread(target=server.serve_forever, name="simulator", daemon=True)
    thread.start()
    return server, f"http://{host}:{server.server_address[1]}"
