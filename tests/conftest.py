"""Shared fixtures: a real simulator on a real port, and stores installed through it."""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlencode

import httpx
import pytest
from django.core.cache import cache
from django.db.models import Max
from django_q.models import OrmQ

from recommender import runtime
from recommender.exchange import click_journal
from recommender.models import CLICK_PENDING, Click
from simulator.server import mint_id_token, serve_in_thread, sign_query
from simulator.state import AppConfig, Shop, World
from stores.models import Store

ROOT = Path(__file__).resolve().parent.parent
APP_URL = "http://testserver"


def wait_until_clicks_settled(timeout: float = 10) -> None:
    """The app settles each click right after its redirect has gone out (exchange.clicks):
    a test reading billing over HTTP waits for that, as a merchant's page would a moment
    later."""
    deadline = time.monotonic() + timeout
    # Clicks journaled and not inserted yet count as pending (the app's processes', or
    # the live server's in this one).
    while click_journal.holds_clicks() or Click.objects.filter(reason=CLICK_PENDING).exists():
        if time.monotonic() > deadline:
            raise AssertionError(f"clicks still pending after {timeout} s")
        time.sleep(0.02)


def small_catalog(prefix: str, titles: list[str]) -> dict:
    return {
        "shop": {"name": prefix.replace("-", " ").title(), "currency": "USD"},
        "products": [
            {
                "id": 1000 + index,
                "title": title,
                "handle": title.lower().replace(" ", "-"),
                "body_html": f"<p>{title}, a fine product.</p>",
                "vendor": prefix,
                "product_type": "Things",
                "tags": ["demo"],
                "variants": [{"price": "20.00", "inventory_quantity": 5}],
            }
            for index, title in enumerate(titles)
        ],
    }


@dataclass
class Simulator:
    world: World
    url: str

    def shop(self, handle: str) -> Shop:
        shop = self.world.shop(handle)
        assert shop is not None
        return shop

    def control(self, handle: str, action: str, **payload) -> dict:
        response = httpx.post(f"{self.url}/_sim/shops/{handle}/{action}", json=payload, timeout=5)
        response.raise_for_status()
        return response.json()

    def fault(self, handle: str, channel: str, mode: str, count: int = 1, after: int = 0) -> None:
        """Queue ``count`` failures after ``after`` good requests (see simulator Faults)."""
        self.control(handle, "faults", channel=channel, mode=mode, count=count, after=after)

    def id_token(self, handle: str, **overrides) -> str:
        return mint_id_token(self.world, self.shop(handle), **overrides)

    def embedded_query(self, handle: str, **token_overrides) -> dict[str, str]:
        """The query the admin appends when it loads the app in its frame."""
        shop = self.shop(handle)
        params = {
            "embedded": "1",
            "host": "YWRtaW4uc2hvcGlmeS5jb20vc3RvcmUvZGVtbw",
            "id_token": self.id_token(handle, **token_overrides),
            "shop": shop.domain,
            "timestamp": str(int(time.time())),
        }
        params["hmac"] = sign_query(params, self.world.app.api_secret)
        return params

    def install_link(self, handle: str, *, secret: str | None = None, age: int = 0) -> str:
        params = {"shop": self.shop(handle).domain, "timestamp": str(int(time.time()) - age)}
        params["hmac"] = sign_query(params, secret or self.world.app.api_secret)
        return "/?" + urlencode(params)


@pytest.fixture(autouse=True)
def fresh_index_state():
    """Each test starts without a loaded index, network cache, polling thread or cached
    theme state (Django's cache)."""
    yield
    runtime.reset()
    cache.clear()


class TaskQueue:
    """What the app put on the background queue (the ORM broker the tests run with)."""

    def __init__(self) -> None:
        self._seen = 0

    def mark(self) -> None:
        """Forget what is queued so far: ``new()`` lists only what comes after."""
        self._seen = OrmQ.objects.aggregate(last=Max("id"))["last"] or 0

    def new(self) -> list[tuple[str, tuple]]:
        queued = OrmQ.objects.filter(id__gt=self._seen).order_by("id")
        return [(task["func"], tuple(task["args"])) for task in (q.task for q in queued)]


@pytest.fixture
def task_queue() -> TaskQueue:
    queue = TaskQueue()
    queue.mark()
    return queue


@pytest.fixture
def simulator(settings) -> Simulator:
    app = AppConfig.from_toml(
        ROOT / "shopify.app.toml",
        api_key=settings.SHOPIFY_API_KEY,
        api_secret=settings.SHOPIFY_API_SECRET,
        app_url=APP_URL,
    )
    world = World(app, public_url="http://127.0.0.1:1")
    world.timeout_delay = 1.5
    world.add_shop("alpha", small_catalog("alpha", ["Burr Grinder", "Pour Over Kettle"]))
    world.add_shop("beta", small_catalog("beta", ["Green Tea", "Teapot"]))
    server, url = serve_in_thread(world)
    world.public_url = url
    settings.SHOPIFY_SIMULATOR_URL = url
    settings.SHOPIFY_APP_URL = APP_URL
    settings.SHOPIFY_HTTP_TIMEOUT = 1.0
    settings.SHOPIFY_ADMIN_ORIGINS = ["https://admin.shopify.com", url]
    settings.SHOPIFY_APP_BRIDGE_URL = f"{url}/cdn/app-bridge.js"
    settings.SHOPIFY_POLARIS_URL = f"{url}/cdn/polaris.js"
    yield Simulator(world=world, url=url)
    server.shutdown()
    server.server_close()


@pytest.fixture
def install(client, simulator):
    """Install the app into a simulator shop through the managed flow (token exchange)."""

    def do_install(handle: str = "alpha") -> Store:
        simulator.world.install(simulator.shop(handle))
        response = client.get("/", simulator.embedded_query(handle))
        assert response.status_code == 200, response.content[:300]
        return Store.objects.get(shop_domain=f"{handle}.myshopify.com")

    return do_install
