"""Sales attributed through the web pixel, as shoppers and merchants see it: real Chromium on
the simulator's storefronts, the pixel's own code in the simulator's sandbox (a web worker,
as Shopify runs it), the app live."""

from __future__ import annotations

import re
import time
from datetime import timedelta

import httpx
import pytest
from django.utils import timezone

from recommender import tasks
from recommender.exchange import attribution
from recommender.models import AttributedOrder, Click
from stores import webhooks
from tests.browser.test_storefront_widget import SHOPPER_UA, storefront, widget_links
from tests.conftest import wait_until_clicks_settled

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


@pytest.fixture
def shopper(browser):
    context = browser.new_context(viewport={"width": 1100, "height": 1000}, user_agent=SHOPPER_UA)
    page = context.new_page()
    pixel_posts: list[tuple[dict, int, dict]] = []  # what the pixel sent, and the answers

    def seen(response) -> None:
        if response.url.endswith("/pixel/events") and response.request.method == "POST":
            pixel_posts.append((response.request.post_data_json, response.status, response.json()))

    context.on("response", seen)
    page.pixel_posts = pixel_posts
    yield page
    context.close()


@pytest.fixture
def admin(browser):
    context = browser.new_context(viewport={"width": 1200, "height": 1800})
    page = context.new_page()
    yield page
    context.close()


def wait_until(page, condition, timeout: float = 10.0) -> None:
    """Poll ``condition`` while Playwright delivers the page's events (a plain sleep would
    hold them back: the sync API dispatches them only inside its own calls)."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError("timed out waiting")
        page.wait_for_timeout(100)


def click_to_partner(page, simulator) -> None:
    """On a Grinders product page, click the Brewers product in the widget and land there."""
    page.goto(storefront(simulator, "grinders", "/products/grinders-0"))
    partner = widget_links(page).and_(page.locator("[data-slot=partner]")).first
    with page.expect_response(lambda r: "/apps/interlayer/impression" in r.url):
        partner.scroll_into_view_if_needed()
    partner.click()
    page.wait_for_url(re.compile(r"brewers\.localhost.*il_ref="))


def posted(page, event: str) -> list[tuple[dict, int, dict]]:
    return [post for post in page.pixel_posts if post[0]["event"] == event]


def stats(client, simulator, handle: str) -> dict:
    token = simulator.id_token(handle)
    response = client.get("/api/stats?days=7", HTTP_AUTHORIZATION=f"Bearer {token}")
    assert response.status_code == 200
    return response.json()


def test_an_order_after_a_widget_click_is_attributed_once_and_a_refund_removes_it(
    shopper, admin, client, simulator, live_exchange, screenshot
):
    grinders, brewers = live_exchange["grinders"], live_exchange["brewers"]
    assert simulator.shop("brewers").web_pixel is not None  # connected on install

    click_to_partner(shopper, simulator)
    wait_until(shopper, lambda: posted(shopper, "landing"))
    shopper.locator("button.buy-now").click()
    shopper.wait_for_url(re.compile(r"/checkouts/[0-9a-f]+/thank-you"))
    wait_until(shopper, lambda: posted(shopper, "checkout_completed"))
    shopper.reload()  # Shopify's thank-you page emits checkout_completed again on a reload
    wait_until(shopper, lambda: len(posted(shopper, "checkout_completed")) == 2)

    order_id = shopper.locator(".order-id").inner_text()
    sent = [body for body, _, _ in posted(shopper, "checkout_completed")]
    answers = [answer for _, _, answer in posted(shopper, "checkout_completed")]
    assert answers == [{"result": "attributed"}, {"result": "already attributed"}]
    assert sent[0]["order"] == {"id": order_id, "total": 20, "currency": "USD", "lines": 1}
    # Nothing about the customer leaves the pixel, though the event carries it.
    assert set(sent[0]) == {"event", "ref", "earlier", "order", "key", "shop"}
    assert sent[0]["earlier"] == []  # one landing: no reference before it
    assert "shopper@example.com" not in str(sent)
    saved = AttributedOrder.objects.get()
    assert (saved.store, saved.source_store, saved.order_id) == (brewers, grinders, order_id)
    assert Click.objects.get(pk=saved.click_id).landed_at is not None
    assert stats(client, simulator, "brewers")["totals"]["orders_received"] == 0  # not yet
    wait_until_clicks_settled()  # the click is settled behind its redirect
    tasks.verify_order(saved.pk)  # as the worker does: Shopify confirms the order
    received, given = stats(client, simulator, "brewers"), stats(client, simulator, "grinders")
    assert (received["totals"]["orders_received"], received["totals"]["revenue_received"]) == (
        1, 20.0,
    )  # fmt: skip
    assert (given["totals"]["orders_sent"], given["totals"]["revenue_sent"]) == (1, 20.0)
    [row] = [p for p in given["partners"] if p["shop_domain"] == brewers.shop_domain]
    assert (row["orders_sent"], row["revenue_sent"]) == (1, 20.0)
    # ... and on the settings pages, in the partner table.
    admin.goto(f"{simulator.url}/store/brewers/admin/apps/interlayer")
    frame = admin.frame_locator("#app-frame")
    cell = frame.locator("#partner-table tr", has_text="Grinders").locator("[data-orders=received]")
    cell.wait_for(timeout=15000)
    assert cell.inner_text().startswith("1 (")
    assert "7 days" in frame.locator("#attribution-rules").inner_text()
    screenshot(admin, "settings-attributed-orders")

    # A forged report over real HTTP, with the shopper's real reference: another shop's
    # pixel cannot claim it, and a bad key is refused.
    reference = sent[0]["ref"]
    forged = {"event": "checkout_completed", "ref": reference,
              "order": {"id": "1", "total": 5, "currency": "USD", "lines": 1}}  # fmt: skip
    other = {
        **forged,
        "shop": grinders.shop_domain,
        "key": attribution.pixel_key(grinders.shop_domain),
    }
    bad = {**forged, "shop": brewers.shop_domain, "key": "brewers.myshopify.com:forged"}
    endpoint = f"{simulator.world.app.app_url}/pixel/events"
    assert httpx.post(endpoint, json=other).json() == {
        "error": "click reference is for another store"
    }
    assert httpx.post(endpoint, json=bad).status_code == 401
    assert AttributedOrder.objects.count() == 1

    simulator.control("brewers", "refund", order_id=int(order_id))  # refunds/create is sent
    wait_until(shopper, lambda: webhooks.process_pending() or AttributedOrder.objects.filter(
        refunded_at__isnull=False).exists())  # fmt: skip

    assert stats(client, simulator, "brewers")["totals"]["orders_received"] == 0
    assert stats(client, simulator, "grinders")["totals"]["orders_sent"] == 0


def test_an_old_link_opened_after_a_click_does_not_take_its_order(
    shopper, simulator, live_exchange
):
    """A product link carrying an old click's reference (shared, bookmarked, an earlier
    tab restored) opened after the click that brought the shopper: the order is the recent
    click's, not lost to the old one's expired window."""
    click_to_partner(shopper, simulator)
    wait_until(shopper, lambda: posted(shopper, "landing"))
    old_link = shopper.url
    click_to_partner(shopper, simulator)
    wait_until(shopper, lambda: len(posted(shopper, "landing")) == 2)
    old, recent = Click.objects.order_by("pk")
    Click.objects.filter(pk=old.pk).update(created_at=timezone.now() - timedelta(days=30))

    shopper.goto(old_link)
    wait_until(shopper, lambda: len(posted(shopper, "landing")) == 3)
    shopper.locator("button.buy-now").click()
    shopper.wait_for_url(re.compile(r"/thank-you"))
    wait_until(shopper, lambda: posted(shopper, "checkout_completed"))

    assert posted(shopper, "landing")[2][2] == {"result": "click older than the attribution window"}
    [(_, status, answer)] = posted(shopper, "checkout_completed")
    assert (status, answer) == (202, {"result": "attributed"})
    assert AttributedOrder.objects.get().click_id == recent.pk


def test_nothing_is_sent_without_the_shoppers_consent(shopper, simulator, live_exchange):
    # The visitor declined analytics and marketing: Shopify does not load the pixel.
    simulator.control("brewers", "consent", analytics=False, marketing=False)
    click_to_partner(shopper, simulator)
    shopper.wait_for_function("window.__webPixels !== undefined")
    assert shopper.evaluate("window.__webPixels.loaded") == 0
    # Loaded anyway (a shopper who changes their mind mid-visit, a manager that loads it
    # early): the pixel's own check still sends nothing and stores nothing.
    simulator.control("brewers", "consent", analytics=False, marketing=False, enforce=False)
    shopper.reload()
    shopper.wait_for_function("window.__webPixels && window.__webPixels.loaded === 1")
    shopper.locator("button.buy-now").click()
    shopper.wait_for_url(re.compile(r"/thank-you"))
    shopper.wait_for_timeout(1000)

    assert shopper.evaluate("window.__webPixels.loaded") == 1
    assert shopper.pixel_posts == []
    assert shopper.evaluate("localStorage.length") == 0
    assert not AttributedOrder.objects.exists()
    assert Click.objects.get().landed_at is None


def test_an_order_eight_days_after_the_click_is_not_attributed(shopper, simulator, live_exchange):
    click_to_partner(shopper, simulator)
    wait_until(shopper, lambda: posted(shopper, "landing"))
    Click.objects.update(created_at=timezone.now() - timedelta(days=8))  # the click, 8 days ago

    shopper.locator("button.buy-now").click()
    shopper.wait_for_url(re.compile(r"/thank-you"))
    wait_until(shopper, lambda: posted(shopper, "checkout_completed"))

    [(_, status, answer)] = posted(shopper, "checkout_completed")
    assert (status, answer) == (202, {"result": "click older than the attribution window"})
    assert not AttributedOrder.objects.exists()


def test_a_reference_kept_longer_than_the_attribution_window_is_forgotten_unsent(
    shopper, simulator, live_exchange
):
    """The pixel keeps a click's reference no longer than an order could be attributed to
    it (attribution.ATTRIBUTION_WINDOW, 7 days): a checkout in that browser a month later
    sends nothing, and the reference is gone from the store's browser storage."""
    click_to_partner(shopper, simulator)
    wait_until(shopper, lambda: posted(shopper, "landing"))
    key = "interlayer_click_reference"
    kept = shopper.evaluate(f"localStorage.getItem({key!r})")
    assert kept  # the reference, as the landing left it
    # The same browser, eight days on: the kept reference carries the time it was kept.
    days_ago = (attribution.ATTRIBUTION_WINDOW + timedelta(days=1)).total_seconds() * 1000
    shopper.evaluate(
        f"""(() => {{ const kept = JSON.parse(localStorage.getItem({key!r}));
            kept.refs[0].at -= {days_ago};
            localStorage.setItem({key!r}, JSON.stringify(kept)); }})()"""
    )
    shopper.goto(storefront(simulator, "brewers", "/products/brewers-0"))  # no il_ref here

    shopper.wait_for_function("window.__webPixels && window.__webPixels.loaded === 1")
    shopper.locator("button.buy-now").click()
    shopper.wait_for_url(re.compile(r"/thank-you"))
    shopper.wait_for_timeout(1000)

    assert posted(shopper, "checkout_completed") == []
    assert shopper.evaluate(f"localStorage.getItem({key!r})") is None
    assert not AttributedOrder.objects.exists()


def test_a_reference_an_earlier_pixel_kept_ages_from_now_on(shopper, simulator, live_exchange):
    """A reference the pixel's earlier release kept (a bare string, no time) is sent for the
    app to judge by its click's time, and from then on it is kept 7 days like the others."""
    click_to_partner(shopper, simulator)
    wait_until(shopper, lambda: posted(shopper, "landing"))
    key = "interlayer_click_reference"
    reference = shopper.evaluate(f"JSON.parse(localStorage.getItem({key!r})).refs[0].ref")
    shopper.evaluate(f"localStorage.setItem({key!r}, {reference!r})")  # as the release before
    shopper.goto(storefront(simulator, "brewers", "/products/brewers-0"))

    shopper.wait_for_function("window.__webPixels && window.__webPixels.loaded === 1")
    shopper.locator("button.buy-now").click()
    shopper.wait_for_url(re.compile(r"/thank-you"))
    wait_until(shopper, lambda: posted(shopper, "checkout_completed"))

    [(sent, status, _)] = posted(shopper, "checkout_completed")
    assert (sent["ref"], status) == (reference, 202)
    [kept] = shopper.evaluate(f"JSON.parse(localStorage.getItem({key!r})).refs")
    assert kept["ref"] == reference and isinstance(kept["at"], int | float)
