"""The widget as shoppers see it: real Chromium on the simulator's storefront."""

from __future__ import annotations

import re
import time

import pytest

from recommender import controls
from recommender.catalog import sync as catalog_sync
from recommender.exchange import ledger, rules
from recommender.models import Click, Impression, WidgetSettings
from simulator.storefront import DESIGN_MODE_PARAM, RECOMMENDATIONS_SECTION
from tests.conftest import wait_until_clicks_settled

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


def _shopper_on(browser, width: int, height: int):
    """A shopper's page on a screen of that size, measuring layout shifts."""
    context = browser.new_context(
        viewport={"width": width, "height": height}, user_agent=SHOPPER_UA
    )
    page = context.new_page()
    page.add_init_script(MEASURE_CLS)
    yield page
    context.close()


@pytest.fixture
def shopper(browser):
    yield from _shopper_on(browser, 1100, 1000)


@pytest.fixture
def phone_shopper(browser):
    """A phone's screen: the widget's place is below the first screen of a product page."""
    yield from _shopper_on(browser, 390, 640)


def storefront(simulator, handle: str, path: str) -> str:
    return simulator.world.storefront_url(simulator.shop(handle)) + path


def editor_preview(simulator, handle: str, path: str) -> str:
    """The page as the theme editor shows it to the merchant (request.design_mode)."""
    return storefront(simulator, handle, f"{path}?{DESIGN_MODE_PARAM}=1")


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


def test_the_product_page_asks_for_its_widget_once_and_before_the_script_runs(
    shopper, simulator, live_exchange
):
    asked = []
    shopper.on("request", lambda r: asked.append(r.url) if "/recommendations?" in r.url else None)

    shopper.goto(storefront(simulator, "grinders", "/products/grinders-0"))
    widget_links(shopper)
    wait_for_widget_to_settle(shopper)

    # The page's preload started the request; the script's fetch was answered from it.
    assert len(asked) == 1, asked
    started = shopper.evaluate(
        "performance.getEntriesByType('resource')"
        ".find(e => e.name.includes('/recommendations?')).initiatorType"
    )
    assert started == "link"


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
    wait_until_clicks_settled()
    assert Click.objects.count() == 2
    assert Click.objects.filter(billable=True).count() == 1
    assert ledger.balance(grinders) == rules.STARTER_GRANT + rules.EARN_PER_CLICK
    assert ledger.balance(brewers) == rules.STARTER_GRANT - rules.SPEND_PER_CLICK


def test_a_click_before_the_rows_second_on_screen_is_up_still_bills(
    shopper, simulator, live_exchange
):
    # The widget then reports the view first and follows the link itself (location.assign,
    # within the click's user activation): the browser must still say the shopper's own
    # gesture started it, or the click would be sent on unrecorded.
    grinders, brewers = live_exchange["grinders"], live_exchange["brewers"]
    shopper.goto(storefront(simulator, "grinders", "/products/grinders-0"))
    partner_link = widget_links(shopper).and_(shopper.locator("[data-slot=partner]")).first
    partner_link.scroll_into_view_if_needed()

    with shopper.expect_request(lambda r: "/apps/interlayer/impression" in r.url):
        partner_link.click()  # at once: no view reported yet
    shopper.wait_for_url(re.compile(r"brewers\.localhost"))

    wait_until_clicks_settled()
    assert Click.objects.filter(billable=True).count() == 1
    assert ledger.balance(grinders) == rules.STARTER_GRANT + rules.EARN_PER_CLICK
    assert ledger.balance(brewers) == rules.STARTER_GRANT - rules.SPEND_PER_CLICK


# A merchant's theme script, run in each real shopper's browser once the row was seen:
# the partner links requested in the background and in a hidden frame, no shopper clicking.
SCRIPTED_CLICKS = """
async () => {
  const host = document.querySelector("[data-interlayer-slot]");
  const links = [...(host.shadowRoot || host).querySelectorAll("a[data-slot=partner]")];
  const answers = [];
  for (const link of links) {
    answers.push((await fetch(link.href, {redirect: "manual", cache: "no-store"})).status);
    const frame = document.createElement("iframe");
    frame.style.display = "none";
    frame.src = link.href;
    await new Promise(done => { frame.onload = done; document.body.append(frame); });
  }
  return answers;
}
"""


def test_partner_links_requested_by_a_page_script_record_no_click(
    shopper, simulator, live_exchange
):
    grinders, brewers = live_exchange["grinders"], live_exchange["brewers"]
    shopper.goto(storefront(simulator, "grinders", "/products/grinders-0"))
    partner_link = widget_links(shopper).and_(shopper.locator("[data-slot=partner]")).first
    with shopper.expect_response(lambda r: "/apps/interlayer/impression" in r.url):
        partner_link.scroll_into_view_if_needed()

    answers = shopper.evaluate(SCRIPTED_CLICKS)
    wait_until_clicks_settled()
    recorded = Click.objects.count()
    partner_link.click()  # and then the shopper's own click
    shopper.wait_for_url(re.compile(r"brewers\.localhost"))

    # fetch() with redirect "manual" sees an opaque answer (status 0) either way; what
    # counts is that nothing was recorded until the shopper clicked, and that click bills.
    assert answers and recorded == 0
    wait_until_clicks_settled()
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
    phone_shopper, simulator, live_exchange
):
    WidgetSettings.objects.filter(store=live_exchange["grinders"]).update(enabled=False)

    phone_shopper.goto(storefront(simulator, "grinders", "/products/grinders-0"))
    wait_for_widget_to_settle(phone_shopper)

    # Not reached yet (below the first screen): the slot goes, leaving no gap.
    assert phone_shopper.locator("[data-interlayer-slot]").count() == 0
    assert phone_shopper.locator("h1.product-title").count() == 1
    assert phone_shopper.evaluate("window.__cls") == 0


def test_a_widget_switched_off_in_the_app_leaves_no_space_even_on_the_first_screen(
    shopper, simulator, live_exchange
):
    # On a desktop screen the block's place is on the first screen: an empty answer keeps
    # its reserved space there (taking it away would move the page under the shopper), so
    # a merchant who switched the widget off had a blank band on every product page.
    grinders = live_exchange["grinders"]
    WidgetSettings.objects.filter(store=grinders).update(enabled=False)
    controls.publish_widget_switch(grinders)  # what saving the setting queues
    asked = []
    shopper.on("request", lambda r: asked.append(r.url) if "/interlayer" in r.url else None)

    shopper.goto(storefront(simulator, "grinders", "/products/grinders-0"))
    wait_for_widget_to_settle(shopper)

    assert shopper.locator("[data-interlayer-slot], [data-interlayer-embed]").count() == 0
    # Neither the script nor a request for recommendations (the web pixel still loads).
    assert [url for url in asked if "/cdn/wpm/" not in url] == []
    assert shopper.locator("h1.product-title").count() == 1
    assert shopper.evaluate("window.__cls") == 0


def test_nothing_appears_for_a_store_without_relevant_partners(shopper, simulator, live_exchange):
    with shopper.expect_response(lambda r: "/apps/interlayer/recommendations" in r.url) as answer:
        shopper.goto(storefront(simulator, "dresses", "/products/dresses-0"))
    wait_for_widget_to_settle(shopper)

    # The endpoint answered, and answered "nothing relevant": not an error hidden as empty.
    assert answer.value.status == 200
    assert answer.value.json() == {"items": []}
    # The slot is on this screen: it stays as empty space rather than move the page.
    slot = shopper.locator("[data-interlayer-slot]")
    assert slot.evaluate("node => getComputedStyle(node).visibility") == "hidden"
    assert shopper.locator("[data-interlayer-slot] a").count() == 0
    assert shopper.evaluate("window.__cls") == 0


@pytest.mark.parametrize(("root", "said"), [
    ("", "No partner product fits this page yet"),
    ("/fr", "Aucun produit partenaire ne correspond encore à cette page"),
])  # fmt: skip
def test_in_the_theme_editor_an_empty_row_tells_the_merchant_why_it_is_empty(
    shopper, simulator, live_exchange, root, said
):
    """A shopper sees nothing where nothing fits; a merchant who just added the block in the
    theme editor saw blank space, and could not tell a working block from a broken one.
    There the slot says why it is empty, in the editor's language, and links nowhere."""
    shopper.goto(editor_preview(simulator, "dresses", f"{root}/products/dresses-0"))
    wait_for_widget_to_settle(shopper)

    slot = shopper.locator("[data-interlayer-slot]")
    assert slot.evaluate("node => getComputedStyle(node).visibility") == "visible"
    note = shopper.locator("[data-interlayer-slot] [role=note]")
    assert said in note.inner_text()
    assert shopper.locator("[data-interlayer-slot] a").count() == 0
    assert shopper.evaluate("window.__cls") == 0


def test_the_app_block_alone_shows_the_widget_without_the_app_embed(
    shopper, simulator, live_exchange
):
    simulator.world.theme_embed_enabled["grinders"] = False

    shopper.goto(storefront(simulator, "grinders", "/products/grinders-0"))

    links = widget_links(shopper)
    assert links.and_(shopper.locator("[data-slot=partner]")).count() >= 1
    label = shopper.locator("[data-interlayer-slot] [data-partner-label]")
    assert label.inner_text() == "From partner stores"  # shoppers are told whose products
    # Only the block's own script tag is on the page: it loaded the widget by itself.
    assert shopper.locator("script[src*='interlayer.js']").count() == 1
    assert shopper.locator("section.product-recommendations script[src*='interlayer.js']").count()


def test_with_both_the_block_and_the_embed_the_script_runs_once_in_the_block(
    shopper, simulator, live_exchange
):
    with shopper.expect_response(lambda r: "/apps/interlayer/recommendations" in r.url):
        shopper.goto(storefront(simulator, "grinders", "/products/grinders-0"))
    widget_links(shopper)
    wait_for_widget_to_settle(shopper)

    assert shopper.locator("script[src*='interlayer.js']").count() == 2
    assert shopper.locator("[data-interlayer-slot]").count() == 1  # no second row
    assert shopper.locator("section.product-recommendations [data-interlayer-slot] a").count()


def test_a_french_storefront_shows_french_strings_and_a_working_widget(
    shopper, simulator, live_exchange, screenshot
):
    with shopper.expect_response(lambda r: "/apps/interlayer/recommendations" in r.url) as answer:
        shopper.goto(storefront(simulator, "grinders", "/fr/products/grinders-0"))

    links = widget_links(shopper)
    assert "/fr/apps/interlayer/recommendations?" in answer.value.url
    assert "locale=fr" in answer.value.url
    # The merchant kept the default title: the heading in the shopper's language.
    assert shopper.locator("[data-interlayer-slot] h2").inner_text() == (
        "Vous aimerez peut-être aussi"
    )
    assert shopper.locator("[data-interlayer-slot] [data-partner-label]").inner_text() == (
        "De boutiques partenaires"
    )
    assert shopper.locator("[data-interlayer-slot] ul").get_attribute("aria-label") == (
        "Produits recommandés"
    )
    buttons = shopper.locator("[data-interlayer-slot] button")
    assert [buttons.nth(i).get_attribute("aria-label") for i in range(buttons.count())] == [
        "Produits précédents",
        "Produits suivants",
    ]
    partner_link = links.and_(shopper.locator("[data-slot=partner]")).first
    assert re.search(r"\d+,00\xa0\$US", partner_link.inner_text())  # French money writing
    screenshot(shopper, "storefront-widget-fr")
    with shopper.expect_response(lambda r: "/fr/apps/interlayer/impression" in r.url):
        partner_link.scroll_into_view_if_needed()
    partner_link.click()
    shopper.wait_for_url(re.compile(r"brewers\.localhost"))
    wait_until_clicks_settled()
    assert Click.objects.filter(billable=True).count() == 1


def test_a_yen_partners_price_is_written_without_decimals(shopper, simulator, live_exchange):
    brewers = simulator.shop("brewers")
    brewers.currency = "JPY"
    for product in brewers.products.values():
        product["variants"][0]["price"] = "1200.00"
    catalog_sync.sync_catalog(live_exchange["brewers"])

    shopper.goto(storefront(simulator, "grinders", "/products/grinders-0"))

    partner_link = widget_links(shopper).and_(shopper.locator("[data-slot=partner]")).first
    # To this shopper, who shops in dollars, with the currency's code ("¥" is the yuan's too).
    assert re.search(r"JPY\s1,200 · Brewers", partner_link.inner_text())


@pytest.mark.parametrize("density", [1, 2])
def test_partner_images_are_requested_at_the_size_they_are_shown(
    browser, simulator, live_exchange, density
):
    brewers = simulator.shop("brewers")
    for product in brewers.products.values():
        product["images"] = [
            {"id": product["id"], "src": f"{simulator.url}/cdn/img/3366aa/{product['handle']}.svg"}
        ]
    catalog_sync.sync_catalog(live_exchange["brewers"])
    context = browser.new_context(
        viewport={"width": 1100, "height": 1000}, device_scale_factor=density,
        user_agent=SHOPPER_UA,
    )  # fmt: skip
    shopper = context.new_page()
    requested: list[str] = []
    shopper.on("request", lambda r: requested.append(r.url) if "/cdn/img/" in r.url else None)

    shopper.goto(storefront(simulator, "grinders", "/products/grinders-0"))
    image = widget_links(shopper).and_(shopper.locator("[data-slot=partner]")).first.locator("img")
    image.scroll_into_view_if_needed()
    shopper.wait_for_function(
        "() => [...document.querySelector('[data-interlayer-slot]').shadowRoot"
        ".querySelectorAll('img')].every(i => i.complete && i.naturalWidth)"
    )

    px = 170 * density
    assert requested
    assert all(f"width={px}&height={px}&crop=center" in url for url in requested), requested
    shown = image.evaluate("i => i.currentSrc")
    assert f"width={px}&" in shown
    # The (simulated) CDN served that size: the file is px x px, not the 400 px original.
    served = shopper.request.get(shown).text()
    assert f'width="{px}" height="{px}"' in served
    assert image.evaluate("i => i.getBoundingClientRect().height") == 170
    context.close()


def test_a_row_wider_than_its_place_gets_arrows_on_a_desktop_screen_too(
    shopper, simulator, live_exchange
):
    shopper.goto(storefront(simulator, "grinders", "/products/grinders-0"))
    widget_links(shopper)
    next_button = shopper.locator("[data-interlayer-slot] button[aria-label='Next products']")
    assert next_button.is_hidden()  # the whole row fits: no arrows

    # A theme that puts the widget in a narrow column: the row no longer fits.
    shopper.add_style_tag(content="[data-interlayer-slot] { width: 260px; }")

    next_button.wait_for(state="visible")
    next_button.click()
    shopper.wait_for_function(
        "() => document.querySelector('[data-interlayer-slot]').shadowRoot"
        ".querySelector('ul').scrollLeft > 0"
    )


def test_a_short_reserved_height_shrinks_the_images_and_clips_nothing(
    shopper, simulator, live_exchange
):
    simulator.world.theme_block_settings["grinders"] = {"reserved_height": 200}  # the minimum

    shopper.goto(storefront(simulator, "grinders", "/products/grinders-0"))
    widget_links(shopper)

    slot = shopper.locator("[data-interlayer-slot]").bounding_box()
    price = shopper.locator("[data-interlayer-slot] a .m").first.bounding_box()
    assert slot["height"] == 200
    assert price["y"] + price["height"] <= slot["y"] + slot["height"]  # the price line shows
    assert shopper.evaluate("window.__cls") == 0


@pytest.mark.parametrize("root", ["", "/fr"])
def test_own_products_link_to_the_shoppers_own_storefront_root(
    shopper, simulator, live_exchange, root
):
    shopper.goto(storefront(simulator, "grinders", f"{root}/products/grinders-0"))

    own = widget_links(shopper).and_(shopper.locator("[data-slot=own]")).first
    href = own.get_attribute("href")
    # The store's own page in the shopper's language, on the domain they are on: not the
    # product's address on the primary domain in the default language.
    assert re.fullmatch(rf"{root}/products/grinders-[12]", href), href
    own.click()
    shopper.wait_for_url(storefront(simulator, "grinders", href))
    assert shopper.locator("html").get_attribute("lang") == (root.strip("/") or "en")
    assert shopper.locator("h1.product-title").count() == 1


def test_in_the_theme_editor_the_row_shows_but_sends_no_view_and_no_click(
    shopper, simulator, live_exchange
):
    reported = []
    shopper.on(
        "request",
        lambda r: (
            reported.append(r.url)
            if re.search(r"/apps/interlayer/(impression|click)", r.url)
            else None
        ),
    )
    shopper.goto(editor_preview(simulator, "grinders", "/products/grinders-0"))

    partner = widget_links(shopper).and_(shopper.locator("[data-slot=partner]")).first
    partner.scroll_into_view_if_needed()
    shopper.wait_for_timeout(1500)  # half visible for over a second: a shopper's view
    shown, href = partner.inner_text(), partner.get_attribute("href")
    partner.click()
    shopper.wait_for_timeout(500)

    # The merchant sees partner products as shoppers will; previews are not views or clicks
    # (they would count as traffic and tick the set-up guide's "Go live").
    assert "Brewers" in shown
    assert reported == []
    assert href is None or "/click" not in href
    assert not Impression.objects.exists()
    assert not Click.objects.exists()


def test_the_theme_editor_re_rendering_the_section_shows_the_row_at_its_new_height(
    shopper, simulator, live_exchange
):
    errors = []
    shopper.on("pageerror", lambda error: errors.append(error))
    shopper.goto(editor_preview(simulator, "grinders", "/products/grinders-0"))
    widget_links(shopper)

    # The merchant moves the "Reserved height" slider: the editor re-renders the section.
    simulator.world.theme_block_settings["grinders"] = {"reserved_height": 400}
    shopper.evaluate("id => ShopifySimThemeEditor.renderSection(id)", RECOMMENDATIONS_SECTION)

    assert widget_links(shopper).and_(shopper.locator("[data-slot=partner]")).count() >= 1
    assert shopper.locator("[data-interlayer-slot]").bounding_box()["height"] == 400
    assert shopper.locator("[data-interlayer-slot] h2").count() == 1  # one row
    assert errors == []


def test_a_block_added_in_the_theme_editor_takes_the_row_from_the_app_embed(
    shopper, simulator, live_exchange
):
    simulator.world.theme_app_block_added["grinders"] = False
    shopper.goto(editor_preview(simulator, "grinders", "/products/grinders-0"))
    shopper.wait_for_selector("h2#il-title", timeout=15000)  # the embed's row, after <main>

    simulator.world.theme_app_block_added["grinders"] = True
    shopper.evaluate("id => ShopifySimThemeEditor.renderSection(id)", RECOMMENDATIONS_SECTION)

    in_block = "section.product-recommendations [data-interlayer-slot] a"
    shopper.wait_for_selector(in_block, timeout=15000)
    assert shopper.locator("h2#il-title").count() == 1  # the embed's row gave way


@pytest.mark.parametrize("app_block", [True, False], ids=["app block", "app embed only"])
def test_the_row_shows_in_a_theme_that_hides_empty_elements(
    shopper, simulator, live_exchange, app_block
):
    # Dawn (Shopify's reference theme, and the free themes built on it) has
    # `div:empty { display: none }`: an element whose children are a shadow root only is
    # still :empty, and a theme's rule for the host beats the row's own :host rule.
    simulator.world.theme_app_block_added["grinders"] = app_block
    shopper.goto(storefront(simulator, "grinders", "/products/grinders-0"))
    shopper.wait_for_selector("h2#il-title", state="attached", timeout=15000)

    heading = shopper.locator("h2#il-title")
    heading.wait_for(state="visible", timeout=5000)
    host = heading.evaluate_handle("node => node.getRootNode().host")
    assert host.evaluate("node => node.getBoundingClientRect().height") == 330
    # The block's space is in the theme's markup, the embed's reserved as the page is read:
    # nothing moves either way.
    assert shopper.evaluate("window.__cls") == 0


def test_the_app_embed_alone_reserves_its_rows_space_before_the_page_is_painted(
    shopper, simulator, live_exchange
):
    # The embed's row goes after the theme's <main>. Its space was made by the deferred
    # script, so a page painted before the script ran had its footer moved down.
    simulator.world.theme_app_block_added["grinders"] = False

    def late(route):  # a slow connection: the page is painted before the script arrives
        time.sleep(0.5)
        route.continue_()

    shopper.route("**/interlayer.js*", late)
    shopper.goto(storefront(simulator, "grinders", "/products/grinders-0"))
    heading = shopper.locator("h2#il-title")
    heading.wait_for(state="visible", timeout=15000)
    wait_for_widget_to_settle(shopper)

    assert shopper.evaluate("window.__cls") == 0
    host = heading.evaluate_handle("node => node.getRootNode().host")
    assert host.evaluate("node => node.previousElementSibling.tagName") == "MAIN"
    assert shopper.locator("[data-interlayer-embed]").count() == 1  # one row's space


def test_the_app_embeds_space_goes_when_the_widget_script_never_comes(
    shopper, simulator, live_exchange
):
    simulator.world.theme_app_block_added["grinders"] = False
    shopper.clock.install()
    shopper.route("**/interlayer.js*", lambda route: route.abort())  # blocked, or offline
    shopper.goto(storefront(simulator, "grinders", "/products/grinders-0"))
    reserved = shopper.locator("[data-interlayer-embed]")
    assert reserved.evaluate("node => node.getBoundingClientRect().top < innerHeight")

    shopper.clock.run_for(11_000)

    # On screen it stays, hidden: taking it away would move the page under the shopper.
    assert reserved.evaluate("node => node.style.visibility") == "hidden"
    # Below the first screen (a short one here) it is removed.
    shopper.set_viewport_size({"width": 1100, "height": 300})
    shopper.goto(storefront(simulator, "grinders", "/products/grinders-1"))
    assert reserved.evaluate("node => node.getBoundingClientRect().top >= innerHeight")
    shopper.clock.run_for(11_000)
    assert reserved.count() == 0


def test_a_script_that_comes_after_the_embeds_timer_shows_its_row_in_the_space_kept(
    shopper, simulator, live_exchange
):
    """The embed hides its space after 10 s without the script (on screen, it is kept). A
    script arriving later rendered into the hidden space: an invisible row, whose view was
    counted all the same a second later. It now shows the row there (nothing moves), and
    only a row shown counts a view."""
    simulator.world.theme_app_block_added["grinders"] = False
    shopper.clock.install()
    held = []
    shopper.route("**/interlayer.js*", lambda route: held.append(route))  # a very slow connection
    shopper.goto(storefront(simulator, "grinders", "/products/grinders-0"), wait_until="commit")
    deadline = time.monotonic() + 15
    while not held:
        assert time.monotonic() < deadline, "the page never asked for the script"
        shopper.wait_for_timeout(50)
    reserved = shopper.locator("[data-interlayer-embed]")
    shopper.clock.run_for(11_000)
    assert reserved.evaluate("node => node.style.visibility") == "hidden"

    held[0].continue_()
    shopper.locator("h2#il-title").wait_for(state="visible", timeout=15000)
    shopper.clock.run_for(1_500)  # half the row on screen for a second
    deadline = time.monotonic() + 5
    while not Impression.objects.exists() and time.monotonic() < deadline:
        time.sleep(0.1)

    assert reserved.evaluate("node => getComputedStyle(node).visibility") == "visible"
    assert Impression.objects.count() == 1
    assert shopper.evaluate("window.__cls") == 0


def test_a_row_block_a_theme_script_adds_later_is_no_blank_box(shopper, simulator, live_exchange):
    """A quick view (the theme renders a product's section into a dialog with its app
    blocks) added a second slot after the script ran: a blank 330 px box in the dialog."""
    shopper.goto(storefront(simulator, "grinders", "/products/grinders-0"))
    widget_links(shopper)
    wait_for_widget_to_settle(shopper)

    shopper.evaluate(
        """() => {
          const dialog = document.createElement('dialog');
          dialog.innerHTML = '<div data-interlayer-slot style="display:block;min-height:330px"></div>';
          document.body.append(dialog);
          dialog.showModal();
        }"""
    )
    shopper.wait_for_timeout(300)

    assert shopper.locator("dialog [data-interlayer-slot]").count() == 0
    assert shopper.locator("[data-interlayer-slot] a").count() >= 1  # the page's row stays


def test_text_a_shopper_made_larger_is_not_cut_off(shopper, simulator, live_exchange):
    """WCAG 1.4.4: at 200 % text the price and store line fell outside the row's fixed
    height and was clipped."""
    shopper.add_init_script(
        "document.addEventListener('DOMContentLoaded', () => "
        "{ document.body.style.fontSize = '32px'; })"
    )
    shopper.goto(storefront(simulator, "grinders", "/products/grinders-0"))
    widget_links(shopper)
    wait_for_widget_to_settle(shopper)

    bottoms = shopper.locator("[data-interlayer-slot]").evaluate(
        """host => [host.getBoundingClientRect().bottom,
                    Math.max(...[...host.shadowRoot.querySelectorAll('.m')].map(
                      m => m.getBoundingClientRect().bottom))]"""
    )
    row_bottom, last_line_bottom = bottoms
    assert last_line_bottom <= row_bottom


@pytest.mark.parametrize("root", ["", "/fr", "/de"])
def test_on_a_phone_the_heading_leaves_room_for_the_partner_label_and_the_arrows(
    phone_shopper, simulator, live_exchange, root
):
    phone_shopper.goto(storefront(simulator, "grinders", f"{root}/products/grinders-0"))
    widget_links(phone_shopper)

    box = phone_shopper.evaluate(
        """() => {
          const row = document.querySelector('[data-interlayer-slot]').shadowRoot;
          const box = node => node.getBoundingClientRect();
          const label = row.querySelector('[data-partner-label]');
          return {
            heading: box(row.querySelector('h2')), label: box(label),
            labelCut: label.scrollWidth > label.clientWidth,
            nav: box(row.querySelector('.nav')),
            buttons: [...row.querySelectorAll('button')].map(b => box(b).width),
          };
        }"""
    )
    # Shoppers are told these are partner stores' products, whatever the language...
    assert box["label"]["width"] > 0 and not box["labelCut"]
    # ... the heading gives way (an ellipsis) rather than run under the arrows...
    assert box["heading"]["right"] <= box["label"]["left"]
    assert box["label"]["right"] <= box["nav"]["left"]
    # ... and the arrows keep their size (a touch target, not a squeezed oval).
    assert box["buttons"] == [32, 32]


def test_in_a_right_to_left_language_the_arrows_and_arrow_keys_go_the_way_they_point(
    shopper, simulator, live_exchange
):
    shopper.goto(storefront(simulator, "grinders", "/ar/products/grinders-0"))
    links = widget_links(shopper)
    shopper.add_style_tag(content="[data-interlayer-slot] { width: 260px; }")  # a narrow column
    row = "document.querySelector('[data-interlayer-slot]').shadowRoot.querySelector('ul')"
    next_button = shopper.locator("[data-interlayer-slot] button[aria-label='Next products']")
    next_button.wait_for(state="visible")

    # The row starts on the right and goes on to the left: "next" moves it there.
    next_button.click()
    shopper.wait_for_function(f"() => {row}.scrollLeft < 0", timeout=3000)
    # The key that points at the next item (to the left) moves the focus to it.
    links.first.focus()
    shopper.keyboard.press("ArrowLeft")
    focused = shopper.evaluate(
        "document.querySelector('[data-interlayer-slot]').shadowRoot.activeElement.textContent"
    )
    assert focused == links.nth(1).text_content()


@pytest.mark.parametrize("motion", ["reduce", "no-preference"])
def test_the_arrows_scroll_at_once_for_a_shopper_who_asked_for_reduced_motion(
    shopper, simulator, live_exchange, motion
):
    shopper.emulate_media(reduced_motion=motion)
    shopper.goto(storefront(simulator, "grinders", "/products/grinders-0"))
    widget_links(shopper)
    shopper.add_style_tag(content="[data-interlayer-slot] { width: 260px; }")  # a narrow column
    shopper.locator("[data-interlayer-slot] button[aria-label='Next products']").wait_for()

    # Read in the same task as the click: a smooth scroll has not moved yet, a jump has.
    moved = shopper.evaluate(
        """() => {
          const row = document.querySelector('[data-interlayer-slot]').shadowRoot;
          row.querySelector("button[aria-label='Next products']").click();
          return row.querySelector('ul').scrollLeft > 0;
        }"""
    )

    assert moved is (motion == "reduce")


def test_a_keyboard_shoppers_focus_ring_is_not_cut_off_by_the_row(
    shopper, simulator, live_exchange
):
    shopper.goto(storefront(simulator, "grinders", "/products/grinders-0"))
    widget_links(shopper).first.focus()  # as Tab brings it: the ring shows
    shopper.keyboard.press("ArrowRight")
    shopper.keyboard.press("ArrowLeft")

    ring = shopper.evaluate(
        """() => {
          const row = document.querySelector('[data-interlayer-slot]').shadowRoot;
          const link = row.activeElement, style = getComputedStyle(link);
          const out = parseFloat(style.outlineOffset) + parseFloat(style.outlineWidth);
          const a = link.getBoundingClientRect(), clip = row.querySelector('ul').getBoundingClientRect();
          return {
            style: style.outlineStyle, width: parseFloat(style.outlineWidth),
            inside: a.left - out >= clip.left && a.top - out >= clip.top &&
                    a.right + out <= clip.right && a.bottom + out <= clip.bottom,
          };
        }"""
    )
    # The row scrolls (it clips what overflows it): the whole ring must be inside it.
    assert ring == {"style": "solid", "width": 2, "inside": True}


def test_a_second_partner_row_block_on_the_page_leaves_no_empty_space(
    phone_shopper, simulator, live_exchange
):
    # The merchant added the block twice (the product template and the footer group): the
    # row goes into the first; the second is no blank 330 px of page.
    phone_shopper.add_init_script(
        """document.addEventListener('readystatechange', () => {
          if (document.readyState !== 'interactive') return;
          const copy = document.querySelector('[data-interlayer-slot]').cloneNode();
          document.querySelector('footer').before(copy);
        })"""
    )
    phone_shopper.goto(storefront(simulator, "grinders", "/products/grinders-0"))
    widget_links(phone_shopper)
    wait_for_widget_to_settle(phone_shopper)

    slots = phone_shopper.locator("[data-interlayer-slot]")
    assert slots.count() == 1
    assert slots.locator("a").count() >= 1
    assert phone_shopper.evaluate("window.__cls") == 0
