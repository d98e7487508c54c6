"""Shoppers and attackers on a simulated storefront, over real HTTP through the simulator's
signed app proxy: the exchange attack tests and bench/exchange_attacks.py play the same
scenarios with them."""

from __future__ import annotations

import threading

import httpx

BROWSER = (
    "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) "
    "Chrome/156.0 Safari/537.36"
)


def browser_ua(n: int) -> str:
    """A distinct, ordinary browser agent (what a script rotating agents sends)."""
    return BROWSER.replace("Chrome/156.0", f"Chrome/156.0.{n}")


class Shopper:
    """One browser on a storefront: its own address (a loopback IP of its own) and agent,
    reaching the app only through the simulator's storefront proxy, as a shopper does."""

    def __init__(self, simulator_url: str, handle: str, *, ip: str = "127.0.0.1", ua=BROWSER):
        self.ua = ua
        self.http = httpx.Client(
            base_url=simulator_url,
            headers={"Host": f"{handle}.localhost"},
            transport=httpx.HTTPTransport(local_address=ip),
            timeout=10,
        )

    def widget(self, product_id: int, **headers: str) -> dict:
        response = self.http.get(
            "/apps/interlayer/recommendations",
            params={"product_id": product_id, "page_type": "product"},
            headers={"User-Agent": self.ua, **headers},
        )
        response.raise_for_status()
        return response.json()

    def see(self, payload: dict, **headers: str) -> str:
        response = self.http.post(
            "/apps/interlayer/impression",
            content=payload["impression"],
            headers={"User-Agent": self.ua, "Content-Type": "text/plain", **headers},
        )
        return response.json()["result"]

    def click(self, token: str, **headers: str) -> httpx.Response:
        return self.http.get(
            "/apps/interlayer/click",
            params={"t": token},
            headers={"User-Agent": self.ua, **headers},
        )


def partner_tokens(payload: dict) -> list[str]:
    return [item["token"] for item in payload["items"] if item["slot"] == "partner"]


# --- the scenarios: each returns the HTTP statuses of its clicks ---------------------------


def honest_view_and_click(url: str, handle: str, product: int) -> list[int]:
    shopper = Shopper(url, handle)
    payload = shopper.widget(product)
    shopper.see(payload)
    return [shopper.click(partner_tokens(payload)[0]).status_code]


def harvest_without_viewing(url: str, handle: str, product: int, *, fetches: int = 5) -> list[int]:
    harvester = Shopper(url, handle)
    harvested = [t for _ in range(fetches) for t in partner_tokens(harvester.widget(product))]
    return [harvester.click(token).status_code for token in harvested]


def rotate_agents_after_one_view(url: str, handle: str, product: int) -> list[int]:
    """One real view clicked, then links of unseen fetches clicked under new agents (each
    a new visitor to the per-shopper limits)."""
    shopper = Shopper(url, handle)
    seen = shopper.widget(product)
    shopper.see(seen)
    harvested = [t for _ in range(5) for t in partner_tokens(shopper.widget(product))]
    statuses = [shopper.click(partner_tokens(seen)[0]).status_code]
    for n, token in enumerate(partner_tokens(seen)[1:] + harvested):
        shopper.ua = browser_ua(n)
        statuses.append(shopper.click(token).status_code)
    return statuses


def spoof_forwarded_addresses(url: str, handle: str, product: int, *, rounds: int) -> list[int]:
    """A new agent and a forged X-Forwarded-For every round, viewing and clicking."""
    shopper = Shopper(url, handle)
    statuses = []
    for n in range(rounds):
        spoof = {"X-Forwarded-For": f"198.51.100.{n}"}
        shopper.ua = browser_ua(n)
        payload = shopper.widget(product, **spoof)
        shopper.see(payload, **spoof)
        statuses.append(shopper.click(partner_tokens(payload)[0], **spoof).status_code)
    return statuses


def bot_rotating_real_addresses(url: str, handle: str, product: int, *, rounds: int) -> list[int]:
    """Every round from another real (loopback) address and agent: view, see, click."""
    statuses = []
    for n in range(rounds):
        bot = Shopper(url, handle, ip=f"127.0.3.{n + 1}", ua=browser_ua(n))
        payload = bot.widget(product)
        bot.see(payload)
        statuses.append(bot.click(partner_tokens(payload)[0]).status_code)
    return statuses


def few_clicks_from_each_of_many_addresses(
    url: str, handle: str, products: list[int], *, addresses: int, per_address: int
) -> list[int]:
    """From each of many real (loopback) addresses in turn, a few rounds of view, see and
    click, a new agent each round (each a new visitor to the per-shopper limits): as many
    clicks from each address as it takes to be a heavy one, and no more."""
    statuses = []
    for a in range(addresses):
        for n in range(per_address):
            bot = Shopper(url, handle, ip=f"127.0.8.{a + 1}", ua=browser_ua(a * per_address + n))
            payload = bot.widget(products[(a * per_address + n) % len(products)])
            bot.see(payload)
            statuses.append(bot.click(partner_tokens(payload)[0]).status_code)
    return statuses


def pad_views_from_one_address(
    url: str, handle: str, products: list[int], *, views: int, clicks: int
) -> list[int]:
    """Report many views (each under a new agent, so each a new visitor) across the host's
    products, then click a few distinct partner products: the rate looks ordinary, the
    addresses do not."""
    shopper = Shopper(url, handle)
    by_target: dict[tuple[str, str], tuple[str, str]] = {}
    for n in range(views):
        shopper.ua = browser_ua(n)
        payload = shopper.widget(products[n % len(products)])
        shopper.see(payload)
        for item in payload["items"]:
            if item["slot"] == "partner":
                by_target.setdefault(
                    (item["store_name"], item["title"]), (item["token"], shopper.ua)
                )
    statuses = []
    for token, agent in list(by_target.values())[:clicks]:
        shopper.ua = agent  # each link clicked by the "visitor" that saw it
        statuses.append(shopper.click(token).status_code)
    return statuses


def view_here_click_elsewhere(url: str, handle: str, product: int, *, views: int) -> list[int]:
    """Views reported from one address (a new agent for each, so each a new visitor), and
    each view's partner link clicked later from an address of its own that never viewed
    anything: every click looks like a new shopper's first, and the view it names was
    really seen."""
    viewer = Shopper(url, handle, ip="127.0.6.1")
    tokens = []
    for n in range(views):
        viewer.ua = browser_ua(n)
        payload = viewer.widget(product)
        viewer.see(payload)
        tokens.append(partner_tokens(payload)[0])
    return [
        Shopper(url, handle, ip=f"127.0.7.{n + 1}", ua=browser_ua(1000 + n))
        .click(token)
        .status_code
        for n, token in enumerate(tokens)
    ]


def replay_a_billed_token(url: str, handle: str, product: int) -> list[int]:
    shopper = Shopper(url, handle)
    payload = shopper.widget(product)
    shopper.see(payload)
    token = partner_tokens(payload)[0]
    first = shopper.click(token).status_code
    return [first] + [
        Shopper(url, handle, ip=f"127.0.4.{n}").click(token).status_code for n in range(1, 6)
    ]


def concurrent_clicks_on_one_view(url: str, handle: str, product: int, *, clicks=16) -> list[int]:
    shopper = Shopper(url, handle)
    payload = shopper.widget(product)
    shopper.see(payload)
    in_view = partner_tokens(payload)
    barrier = threading.Barrier(clicks)
    statuses: list[int] = []

    def hammer(n: int) -> None:
        clicker = Shopper(url, handle)  # the shopper's own browser, its links clicked at once
        barrier.wait()
        statuses.append(clicker.click(in_view[n % len(in_view)]).status_code)

    threads = [threading.Thread(target=hammer, args=(n,)) for n in range(clicks)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return statuses


def view_then(url: str, handle: str, product: int, meanwhile) -> list[int]:
    """A real view, then ``meanwhile()`` (an uninstall, a block, an empty balance), then
    a click on every partner link of that view."""
    shopper = Shopper(url, handle)
    payload = shopper.widget(product)
    shopper.see(payload)
    meanwhile()
    return [shopper.click(token).status_code for token in partner_tokens(payload)]
