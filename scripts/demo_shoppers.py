"""Shoppers for the demo: visitors browse the demo storefronts, see the widget, click some
partner products and buy some of what they land on, so every store's settings page shows
impressions, clicks, credits and attributed orders moving.

    python scripts/demo_shoppers.py --simulator http://127.0.0.1:9000

Browsing goes over HTTP through the simulator's signed app proxy, exactly as the widget
calls it (recommendations, then the impression beacon once the row is seen, then the click
link); every visitor connects from a loopback address of its own (127.x.y.z) with a browser
agent of its own, so the exchange's per-visitor and per-address limits see ordinary traffic
rather than one machine. Purchases run in headless Chromium, because only a browser runs
the store's web pixel: the buyer opens the link the click redirected to, the pixel keeps
the click reference, the buyer checks out, and the pixel reports the order.
"""

from __future__ import annotations

import argparse
import itertools
import json
import queue
import random
import shutil
import sys
import threading
import time
import urllib.request
from pathlib import Path
from urllib.parse import urlsplit

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from tests.browser.chromium import CHROMIUM_FLAGS  # after the path is set

AGENT = (
    "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) "
    "Chrome/156.0.{n} Safari/537.36"
)
# Brisk at first, so every settings page moves within a minute; then a pace the network's
# credits sustain for hours (each billable click drains 0.20 from the network).
WARM_UP_VISITORS = 160
WARM_UP_PAUSE, STEADY_PAUSE = 0.3, 3.0
# Each store's first visitor clicks (and buys), so every store moves at once; after that
# about one view in twenty gets a click, an ordinary click-through rate that the exchange's
# review (a rate far above the network's is held) leaves alone, and a third of clicks buy.
CLICK_THROUGH_RATE, BUY_SHARE = 0.05, 0.35


def address(n: int) -> str:
    """The n-th visitor's own loopback address (127.1.0.1 onwards)."""
    n += 1 << 16
    return f"127.{(n >> 16) & 255}.{(n >> 8) & 255}.{max(1, n & 255)}"


def catalogs(simulator: str) -> dict[str, list[tuple[int, str]]]:
    with urllib.request.urlopen(f"{simulator}/_sim/state", timeout=5) as response:  # noqa: S310
        shops = [h for h, s in json.load(response)["shops"].items() if s["installed"]]
    found = {}
    for handle in shops:
        url = f"{simulator}/store/{handle}/products.json"
        with urllib.request.urlopen(url, timeout=5) as response:  # noqa: S310 - loopback only
            products = json.load(response)["products"]
        found[handle] = [
            (p["id"], p["handle"]) for p in products if p.get("status", "active") == "active"
        ]
    return {handle: ids for handle, ids in found.items() if ids}


class Tally:
    def __init__(self) -> None:
        self.counts: dict[str, int] = {}
        self.lock = threading.Lock()

    def add(self, key: str) -> None:
        with self.lock:
            self.counts[key] = self.counts.get(key, 0) + 1

    def line(self) -> str:
        with self.lock:
            return ", ".join(f"{k} {v}" for k, v in sorted(self.counts.items()))


def visit(
    simulator: str, port: str, handle: str, product: tuple[int, str], n: int, tally: Tally,
    *, click: bool,
) -> str | None:  # fmt: skip
    """One visitor on a product page: the widget's calls, in the widget's order. Returns
    where a click took them, if they clicked."""
    agent = AGENT.format(n=n)
    host = f"{handle}.localhost:{port}"
    with httpx.Client(
        base_url=simulator,
        headers={"Host": host, "User-Agent": agent},
        transport=httpx.HTTPTransport(local_address=address(n)),
        timeout=10,
    ) as http:
        http.get(f"/products/{product[1]}")  # the page, then what its widget asks for
        widget = http.get(
            "/apps/interlayer/recommendations",
            params={"product_id": product[0], "page_type": "product", "locale": "en"},
        )
        if widget.status_code != 200:
            tally.add(f"widget {widget.status_code}")
            return None
        body = widget.json()
        partners = [item for item in body.get("items", []) if item["slot"] == "partner"]
        if not partners:
            tally.add("no partners shown")
            return None
        # Half the row on screen for a second: the widget's beacon.
        seen = http.post(
            "/apps/interlayer/impression",
            content=body["impression"],
            headers={"Content-Type": "text/plain"},
        )
        tally.add(f"impression {seen.json().get('result')}")
        if not click:
            return None
        followed = http.get(
            "/apps/interlayer/click", params={"t": random.choice(partners)["token"]}
        )
        tally.add("click")
        return followed.headers.get("Location") if followed.status_code == 302 else None


def buyers(landings: queue.Queue, tally: Tally) -> None:
    """Headless Chromium buys from landing pages (one browser, a fresh profile per buyer)."""
    from playwright.sync_api import sync_playwright  # noqa: PLC0415 -- only when buying

    executable = shutil.which("chromium")
    if executable is None:
        print("    shoppers: no chromium; visitors browse and click but do not buy", flush=True)
        return
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=executable, args=CHROMIUM_FLAGS)
        while True:
            landing = landings.get()
            context = browser.new_context(user_agent=AGENT.format(n=random.randrange(10**6)))
            answers: list[str] = []
            context.on("response", lambda response, kept=answers: _pixel_answer(response, kept))
            try:
                page = context.new_page()
                page.goto(landing)
                deadline = time.monotonic() + 8
                while not answers and time.monotonic() < deadline:
                    page.wait_for_timeout(100)  # the pixel keeps the reference
                page.locator("button.buy-now").click()
                page.wait_for_url("**/thank-you", timeout=10000)
                while len(answers) < 2 and time.monotonic() < deadline + 8:
                    page.wait_for_timeout(100)
                tally.add(f"order {answers[-1] if len(answers) > 1 else 'not reported'}")
            except Exception as error:  # a demo buyer never stops the demo
                tally.add(f"buy failed ({type(error).__name__})")
            finally:
                context.close()


def _pixel_answer(response, answers: list[str]) -> None:
    """What the app answered the store's web pixel (the worker's requests are the page's)."""
    if response.url.endswith("/pixel/events") and response.request.method == "POST":
        try:
            body = response.json()
        except Exception:  # an unreadable answer (not JSON) is still an answer
            body = {}
        answers.append(body.get("result") or body.get("error") or str(response.status))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--simulator", default="http://127.0.0.1:9000")
    args = parser.parse_args()
    port = urlsplit(args.simulator).port or 80
    shops = catalogs(args.simulator)
    while len(shops) < 2:  # nothing to exchange yet: wait for installs
        time.sleep(10)
        shops = catalogs(args.simulator)
    tally = Tally()
    landings: queue.Queue = queue.Queue(maxsize=12)
    threading.Thread(target=buyers, args=(landings, tally), daemon=True).start()
    handles = sorted(shops)
    views = dict.fromkeys(handles, 0)
    clicks = dict.fromkeys(handles, 0)
    reported = time.monotonic()
    for n in itertools.count():
        handle = handles[n % len(handles)]  # every store hosts visitors from the start
        warm = n < WARM_UP_VISITORS
        first = clicks[handle] == 0
        click = clicks[handle] < 1 + int(CLICK_THROUGH_RATE * views[handle])
        try:
            landing = visit(
                args.simulator, str(port), handle, random.choice(shops[handle]), n, tally,
                click=click,
            )  # fmt: skip
        except httpx.HTTPError as error:
            tally.add(f"visit failed ({type(error).__name__})")
            landing = None
        views[handle] += 1
        clicks[handle] += int(landing is not None)
        buys = first or random.random() < BUY_SHARE
        if landing and buys and not landings.full():
            landings.put(landing)
        if time.monotonic() - reported > 30:
            print(f"    shoppers: {n + 1} visitors; {tally.line()}", flush=True)
            reported = time.monotonic()
        time.sleep(WARM_UP_PAUSE if warm else STEADY_PAUSE)
    return 0


if __name__ == "__main__":
    sys.exit(main())
