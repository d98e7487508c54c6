"""The settings page as a merchant uses it: inside the (simulated) Shopify admin frame,
authenticated by App Bridge ID tokens, changing what shoppers see."""

from __future__ import annotations

import pytest
from django.utils import timezone

from recommender.models import Click, LedgerEntry, WidgetSettings

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


@pytest.fixture
def admin(browser):
    context = browser.new_context(viewport={"width": 1200, "height": 1600})
    page = context.new_page()
    yield page
    context.close()


def open_settings(admin, simulator, handle: str):
    admin.goto(f"{simulator.url}/store/{handle}/admin/apps/interlayer")
    frame = admin.frame_locator("#app-frame")
    frame.locator("#overview .metric").first.wait_for(timeout=15000)  # API calls with ID tokens
    return frame


def storefront_widget_titles(
    browser, simulator, handle: str, path: str, *, served: list | None = None
) -> tuple[str, list[str]]:
    """The widget's heading and partner link texts on a storefront page; ``served`` gets
    the recommendations endpoint's (status, payload), so an error cannot pass for "none"."""
    context = browser.new_context(
        user_agent="Mozilla/5.0 (X11; Linux x86_64) Chrome/156.0 Safari/537.36"
    )
    page = context.new_page()
    with page.expect_response(lambda r: "/apps/interlayer/recommendations" in r.url) as answer:
        page.goto(simulator.world.storefront_url(simulator.shop(handle)) + path)
    if served is not None:
        served.append((answer.value.status, answer.value.json()))
    page.wait_for_load_state("networkidle")
    heading = page.locator("[data-interlayer-slot] h2")
    title = heading.inner_text() if heading.count() else ""
    links = page.locator("[data-interlayer-slot] a[data-slot=partner]")
    partners = [links.nth(i).inner_text() for i in range(links.count())]
    context.close()
    return title, partners


def test_page_loads_in_the_admin_frame_with_an_id_token(
    admin, simulator, live_exchange, screenshot
):
    frame = open_settings(admin, simulator, "grinders")

    assert frame.locator("h1").inner_text() == "Interlayer"
    assert frame.locator("#overview").inner_text().count("Products synced") == 1
    assert "switched on in your theme" in frame.locator("#embed-status").inner_text()
    screenshot(admin, "settings-page")


def test_a_saved_setting_shows_on_the_storefront_widget(admin, browser, simulator, live_exchange):
    frame = open_settings(admin, simulator, "grinders")
    frame.locator("input[name=title]").fill("More for your coffee")

    frame.locator("#settings-form button[type=submit]").click()
    frame.locator("#save-status", has_text="Saved").wait_for()

    assert (
        WidgetSettings.objects.get(store=live_exchange["grinders"]).title == "More for your coffee"
    )
    title, _ = storefront_widget_titles(browser, simulator, "grinders", "/products/grinders-0")
    assert title == "More for your coffee"


def test_a_blocked_partner_disappears_from_the_widget(admin, browser, simulator, live_exchange):
    _, before = storefront_widget_titles(browser, simulator, "grinders", "/products/grinders-0")
    assert any("Brewers" in text for text in before)
    frame = open_settings(admin, simulator, "grinders")

    frame.locator("[data-picker=blocked_stores] input").fill("Brew")
    frame.locator("[data-picker=blocked_stores] .suggestions li").first.click()
    frame.locator("#settings-form button[type=submit]").click()
    frame.locator("#save-status", has_text="Saved").wait_for()

    served = []
    _, after = storefront_widget_titles(
        browser, simulator, "grinders", "/products/grinders-0", served=served
    )
    assert not any("Brewers" in text for text in after)
    status, payload = served[0]
    assert status == 200
    assert payload["items"]  # the widget still shows (its own products), just not Brewers
    assert "Brewers" not in {i["store_name"] for i in payload["items"]}


def test_invalid_input_shows_a_clear_error(admin, simulator, live_exchange):
    frame = open_settings(admin, simulator, "grinders")
    frame.locator("input[name=own_share]").fill("150")

    frame.locator("#settings-form button[type=submit]").click()

    error = frame.locator(".error-message[data-field=own_share]")
    error.wait_for()
    assert "less than or equal to 100" in error.inner_text()


def test_the_chart_renders_with_data(admin, simulator, live_exchange, screenshot):
    grinders, brewers = live_exchange["grinders"], live_exchange["brewers"]
    for n in range(5):
        click = Click.objects.create(source_store=grinders, target_store=brewers, target_product_id=n,
                                     impression_id=f"i{n}", token_id=f"t{n}", visitor_hash=f"v{n}",
                                     billable=True, reason="billable", created_at=timezone.now())  # fmt: skip
        LedgerEntry.objects.create(
            store=grinders, kind="earn", amount="0.80", counterparty=brewers, click=click
        )

    frame = open_settings(admin, simulator, "grinders")
    frame.locator("#chart rect.bar--sent").first.wait_for()

    assert frame.locator("#chart rect.bar--sent").count() >= 1
    assert frame.locator("#partner-table tbody th").first.inner_text() == "Brewers"
    screenshot(admin, "settings-page-with-traffic")
