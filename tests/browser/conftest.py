"""Headless Chromium (Debian's package) against the simulator's storefront and admin,
with the app served by pytest-django's live server and real catalogs embedded by the
real model."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest
from playwright.sync_api import sync_playwright

from recommender import runtime
from recommender.catalog import sync as catalog_sync
from simulator.install import install as merchant_installs
from stores import tasks as store_tasks
from stores.models import Store
from tests.browser.chromium import CHROMIUM_FLAGS

# Playwright's sync API runs an event loop in this thread; the ORM calls the tests make
# between browser steps are still plain synchronous code.
os.environ.setdefault("DJANGO_ALLOW_ASYNC_UNSAFE", "true")
ARTIFACTS = Path(__file__).resolve().parent.parent.parent / "artifacts" / "screenshots"


@pytest.fixture(scope="session")
def browser():
    executable = shutil.which("chromium")
    if executable is None:
        pytest.fail("Debian's chromium is not installed (scripts/setup.sh --system installs it)")
    with sync_playwright() as playwright:
        # A non-persistent context gets a fresh, empty profile directory of its own.
        browser = playwright.chromium.launch(executable_path=executable, args=CHROMIUM_FLAGS)
        yield browser
        browser.close()


@pytest.fixture
def page(browser):
    context = browser.new_context(viewport={"width": 1100, "height": 1000})
    page = context.new_page()
    yield page
    context.close()


@pytest.fixture
def screenshot():
    """Save a page's screenshot under artifacts/screenshots/ (kept by CI runs)."""
    ARTIFACTS.mkdir(parents=True, exist_ok=True)

    def take(page, name: str) -> Path:
        path = ARTIFACTS / f"{name}.png"
        page.screenshot(path=str(path), full_page=True)
        assert path.stat().st_size > 0
        return path

    return take


@pytest.fixture
def live_exchange(simulator, live_server, settings, tmp_path, transactional_db):
    """The app live, three simulator shops installed through the real flow, synced,
    embedded with the real model and indexed."""
    settings.SHOPIFY_APP_URL = live_server.url
    settings.RECOMMENDER_EMBEDDER = "onnx"
    settings.RECOMMENDER_INDEX_DIR = tmp_path / "index"
    settings.RECOMMENDER_INDEX_POLL_SECONDS = 0.2
    settings.RECOMMENDER_STATE_TTL_SECONDS = 0
    settings.RECOMMENDER_RELEVANCE_FLOOR = 0.3
    settings.RECOMMENDER_SETTLE_CLICKS_BEHIND = True  # as in production: its own thread
    runtime.reset()
    world = simulator.world
    world.app.app_url = live_server.url
    world.add_shop("grinders", _catalog("Grinders", [
        ("Hand Burr Coffee Grinder", "Coffee Grinders", "Stainless conical burrs for pour-over coffee."),
        ("Electric Coffee Grinder", "Coffee Grinders", "Consistent grind for drip and espresso coffee."),
        ("Coffee Grinder Brush", "Coffee Accessories", "Keeps your burr grinder clean."),
    ]))  # fmt: skip
    world.add_shop("brewers", _catalog("Brewers", [
        ('<img src=x onerror="window.__xss=1">Pour-Over Coffee Kettle', "Coffee Makers",
         "Gooseneck kettle and dripper for bright pour-over coffee."),
        ("Porcelain Tea Cup", "Teaware", "A small cup for green tea."),
    ]))  # fmt: skip
    world.add_shop("dresses", _catalog("Dresses", [
        ("Linen Midi Dress", "Dresses", "A breathable summer dress in sage green."),
    ]))  # fmt: skip
    stores = {}
    for handle in ("grinders", "brewers", "dresses"):
        assert merchant_installs(handle, app_url=live_server.url, simulator_url=simulator.url).ok
        store = Store.objects.get(shop_domain=f"{handle}.myshopify.com")
        store_tasks.after_install(store.pk)  # details, starter grant, widget settings
        catalog_sync.sync_catalog(store)
        stores[handle] = store
    return stores


def _catalog(name: str, rows: list[tuple[str, str, str]]) -> dict:
    slug = name.lower()
    return {
        "shop": {"name": name, "currency": "USD"},
        "products": [
            {
                "title": title,
                "handle": f"{slug}-{index}",
                "body_html": f"<p>{body}</p>",
                "vendor": name,
                "product_type": kind,
                "tags": [kind.lower()],
                "variants": [{"price": f"{20 + index * 5}.00", "inventory_quantity": 9}],
                "images": [],
            }
            for index, (title, kind, body) in enumerate(rows)
        ],
    }
