"""The widget as shoppers see it: real Chromium on the simulator's storefront."""

from __future__ import annotations

import re
import time

import pytest

from recommender.exchange import ledger, rules
from recommender.models import Click, Impression, WidgetSettings

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

# Layout shifts that were not caused by input, summed (the CLS metric's raw material).
MEASURE_CLS = """
window.__cls = 0;
new PerformanceObserver(list => {
  for (const entry of list.getEntries()) if (!entry.hadRecentInput) window.__cls += entry.value;
}).observe({type: 'layout-shift', buffered: true});
"""
# A shopper's browser: headless Chromium's own user agent is (rightly) treated as a bot.
SHOPPER_UA = "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/156.0 Safari/537.36"


@pytest.fixture
def shopper(browser):
    context = browser.new_context(viewport={"width": 1100, "height": 1000}, user_agent=SHOPPER_UA)
    page = context.new_page()
    page.add_init_script(MEASURE_CLS)
    yield page
    context.close()


def storefront(simulator, handle: str, path: str) -> str:
    return simulator.world.storefront_url(simulator.shop(handle)) + path


def widget_links(page):
    page.wait_for_selector("[data-interlayer-slot] a", timeout=15000)  # pierces the shadow root
    return page.locator("[data-interlayer-slot] a")


def wait_for_widget_to_settle(page) -> None:
    page.wait_for_load_state("networkidle")
    page.wait_for_timeout(300)


def test_widget_shows_partner_products_on_a_product_page_without_layout_shift(
    shopper, simulator, live_exchange, screenshot
):
    shopper.goto(storefront(simulator, "grinders", "/products/grinders-0"))

    links = widget_links(shopper)
    partner_titles = [
        links.nth(i).inner_text() for i in range(links.count())
        if links.nth(i).get_attribute("data-slot") == "partner"
    ]  # fmt: skip
    assert partner_titles and all("Brewers" in title for title in partner_titles)
    assert not any("Dress" in title for title in partner_titles)
    rels = {
        links.nth(i).get_attribute("data-slot"): links.nth(i).get_attribute("rel")
        for i in range(links.count())
    }
    assert rels["partner"] == "sponsored noopener"  # paid links, as search engines require
    assert rels.get("own") is None
    assert shopper.locator("[data-interlayer-slot] h2").inner_text() == "You may also like"
    shopper.wait_for_timeout(1500)  # half visible for a second: one viewable impression
    assert shopper.evaluate("window.__cls") == 0
    screenshot(shopper, "storefront-widget")
    deadline = time.monotonic() + 5
    while not Impression.objects.exists() and time.monotonic() < deadline:
        time.sleep(0.1)
    assert Impression.objects.get().store == live_exchange["grinders"]


def test_click_lands_on_the_partner_product_with_utm_and_moves_credits_once(
    shopper, simulator, live_exchange
):
    grinders, brewers = live_exchange["grinders"], live_exchange["brewers"]
    product_page = storefront(simulator, "grinders", "/products/grinders-0")
    for _ in range(2):  # the same shopper clicks the same product twice
        shopper.goto(product_page)
        partner_link = widget_links(shopper).and_(shopper.locator("[data-slot=partner]")).first
        # A shopper sees the row before choosing from it: the impression beacon goes first.
        with shopper.expect_response(lambda r: "/apps/interlayer/impression" in r.url):
            partner_link.scroll_into_view_if_needed()
        partner_link.click()
        shopper.wait_for_url(re.compile(r"brewers\.localhost"))

    assert "utm_source=interlayer" in shopper.url and "utm_campaign=grinders" in shopper.url
    assert shopper.locator("h1.product-title").count() == 1
    assert Click.objects.count() == 2
    assert Click.objects.filter(billable=True).count() == 1
    assert ledger.balance(grinders) == rules.STARTER_GRANT + rules.EARN_PER_CLICK
    assert ledger.balance(brewers) == rules.STARTER_GRANT - rules.SPEND_PER_CLICK


def test_script_in_a_product_title_shows_as_text(shopper, simulator, live_exchange, screenshot):
    shopper.goto(storefront(simulator, "grinders", "/products/grinders-1"))

    links = widget_links(shopper)
    texts = [links.nth(i).inner_text() for i in range(links.count())]
    wait_for_widget_to_settle(shopper)

    assert any(
        '<img src=x onerror="window.__xss=1">Pour-Over Coffee Kettle' in text for text in texts
    )
    assert shopper.evaluate("window.__xss") is None
    assert shopper.locator("[data-interlayer-slot] img[src='x']").count() == 0
    screenshot(shopper, "storefront-widget-title-as-text")


def test_nothing_appears_and_no_gap_is_left_when_the_widget_is_disabled(
    shopper, simulator, live_exchange
):
    WidgetSettings.objects.filter(store=live_exchange["grinders"]).update(enabled=False)

    shopper.goto(storefront(simulator, "grinders", "/products/grinders-0"))
    wait_for_widget_to_settle(shopper)

    assert shopper.locator("[data-interlayer-slot]").count() == 0
    assert shopper.locator("h1.product-title").count() == 1


def test_nothing_appears_for_a_store_without_relevant_partners(shopper, simulator, live_exchange):
    with shopper.expect_response(lambda r: "/apps/interlayer/recommendations" in r.url) as answer:
        shopper.goto(storefront(simulator, "dresses", "/products/dresses-0"))
    wait_for_widget_to_settle(shopper)

    # The endpoint answered, and answered "nothing relevant": not an error hidden as empty.
    assert answer.value.status == 200
    assert answer.value.json() == {"items": []}
    assert shopper.locator("[data-interlayer-slot]").count() == 0
