"""The settings page's API: ID-token auth on every call, validation, audit, bounded stats."""

from __future__ import annotations

import contextlib
import json
import threading
import time
from datetime import datetime, timedelta
from datetime import time as clock
from decimal import Decimal
from io import StringIO
from zoneinfo import ZoneInfo

import httpx
import numpy as np
import pytest
from django.core.management import call_command
from django.db import connection, transaction
from django.utils import timezone
from django.utils.html import escape

from recommender import controls, lifecycle, runtime
from recommender import tasks as recommender_tasks
from recommender.catalog import index_events, pacer, products
from recommender.catalog import sync as catalog_sync
from recommender.exchange import rules
from recommender.models import (
    CatalogSync,
    Click,
    Impression,
    LedgerEntry,
    PendingOptOut,
    Product,
    SettingsChange,
    WidgetSettings,
)
from recommender.ranking import live_index
from recommender.web import stats
from stores import services as store_services
from stores import tasks
from stores.models import Store
from tests.factories import make_product, make_store, seed_exchange_history

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def quick_state(private_index, hash_embedder, settings):
    settings.RECOMMENDER_STATE_TTL_SECONDS = 0


@pytest.fixture
def merchant(client, simulator, install):
    """An installed store with a synced catalog, and a way to call the API as its admin."""
    store = install("alpha")
    tasks.after_install(store.pk)
    catalog_sync.sync_catalog(store)

    def call(method: str, path: str, body=None, *, token: str | None = None, **extra):
        headers = {"HTTP_AUTHORIZATION": f"Bearer {token or simulator.id_token('alpha')}"}
        if method == "get":
            return client.get(path, **headers, **extra)
        return client.post(
            path, data=json.dumps(body or {}), content_type="application/json", **headers, **extra
        )

    call.store = store
    return call


def settings_body(**changes) -> dict:
    body = {
        "enabled": True, "title": "Partners we love", "items": 5, "own_share": 20,
        "accent_color": "#005bd3", "text_color": "#1a1a1a",
        "background_color": "#ffffff", "avoid_competitors": True,
        "blocked_stores": [], "excluded_categories": [],
    }  # fmt: skip
    body.update(changes)
    return body


def test_settings_page_renders_controls_and_the_rules(client, simulator, install):
    install("alpha")

    response = client.get("/", simulator.embedded_query("alpha"))

    html = response.content.decode()
    assert response.status_code == 200
    assert 'id="settings-form"' in html and 'name="own_share"' in html
    for rule in rules.RULES_IN_WORDS:
        assert escape(rule) in html


def test_overview_reports_catalog_and_the_theme_app_embed(merchant, simulator):
    simulator.control("alpha", "theme-embed", enabled=False)
    simulator.control("alpha", "theme-block", added=True)

    body = merchant("get", "/api/overview").json()

    assert body["catalog"]["synced"] == 2 and body["catalog"]["eligible"] == 2
    assert body["catalog"]["state"] == "Synced"
    assert body["app_embed"]["enabled"] is False
    assert body["app_embed"]["block_added"] is True  # the block alone shows the widget
    assert body["app_embed"]["activate_url"] == (
        "https://alpha.myshopify.com/admin/themes/current/editor"
        "?context=apps&activateAppId=interlayer-dev-api-key/app-embed"
    )
    simulator.control("alpha", "theme-embed", enabled=True)
    # The theme read is cached briefly; the set-up guide's "Check again" reads it anew.
    merchant("get", "/api/setup?refresh=1")
    assert merchant("get", "/api/overview").json()["app_embed"]["enabled"] is True


def test_a_sync_failure_is_shown_while_the_sync_is_failed_and_goes_once_one_succeeds(
    merchant, simulator, monkeypatch
):
    # The error of a failed sync stayed on the overview, as a critical banner, after every
    # sync that succeeded since.
    monkeypatch.setattr(pacer, "MAX_SHOPIFY_RETRIES", 0)
    simulator.fault("alpha", "graphql", "malformed")
    catalog_sync.sync_catalog(merchant.store)
    shown = merchant("get", "/api/overview").json()["catalog"]

    catalog_sync.sync_catalog(merchant.store)  # the fault was for one request
    after = merchant("get", "/api/overview").json()["catalog"]

    assert shown["state"] == "Failed"
    assert shown["last_error"].startswith("Shopify's Admin API did not answer properly")
    assert shown["last_error_at"] is not None
    assert after["state"] == "Synced"
    assert (after["last_error"], after["last_error_at"]) == ("", None)


def test_a_first_sync_that_failed_says_why_in_the_set_up_guide(
    client, simulator, install, monkeypatch
):
    monkeypatch.setattr(pacer, "MAX_SHOPIFY_RETRIES", 0)
    store = install("alpha")
    simulator.fault("alpha", "graphql", "malformed")
    catalog_sync.sync_catalog(store)
    token = simulator.id_token("alpha")

    steps = client.get("/api/setup?refresh=1", HTTP_AUTHORIZATION=f"Bearer {token}").json()["steps"]

    catalog = next(step for step in steps if step["key"] == "catalog")
    assert catalog["status"] == "todo"
    assert catalog["detail"].startswith(
        "The last sync did not finish. Shopify's Admin API did not answer properly"
    )
    assert catalog["action"]["command"] == "sync"


@pytest.mark.parametrize(
    ("fault", "told"),
    [
        ("503", "Shopify's Admin API did not answer properly just then"),
        ("malformed", "Shopify's Admin API did not answer properly just then"),
        ("429", "Shopify asked Interlayer to slow down"),
        ("403", "Shopify refused a request Interlayer needs"),
    ],
)
def test_a_failed_sync_is_told_in_the_merchants_words_and_its_detail_kept_for_operators(
    merchant, simulator, monkeypatch, fault, told
):
    # The merchant was shown what the Admin API client said ("Admin API unavailable (HTTP
    # 503 ...)"): the operator's detail, not something a merchant can act on.
    monkeypatch.setattr(pacer, "MAX_SHOPIFY_RETRIES", 0)
    simulator.fault("alpha", "graphql", fault, count=10)
    catalog_sync.sync_catalog(merchant.store)

    shown = merchant("get", "/api/overview").json()["catalog"]
    sync = CatalogSync.objects.get(store=merchant.store)

    assert shown["state"] == "Failed" and shown["last_error"].startswith(told)
    assert sync.last_error and sync.last_error not in shown["last_error"]


def test_overview_counts_products_kept_off_among_eligible_ones_only(merchant):
    draft = make_product(merchant.store, "Draft mug", status="DRAFT", eligible=False,
                         ineligible_reason="draft")  # fmt: skip
    eligible = Product.objects.filter(store=merchant.store, eligible=True).first()
    merchant("post", "/api/products/opt-out",
             {"product_ids": [draft.shopify_id, eligible.shopify_id], "opted_out": True})  # fmt: skip

    catalog = merchant("get", "/api/overview").json()["catalog"]

    assert (catalog["synced"], catalog["eligible"]) == (3, 2)
    assert catalog["opted_out"] == 1  # the draft is never shown: it is not one kept off


def test_saving_settings_applies_them_and_records_who_changed_what(merchant, simulator):
    response = merchant("post", "/api/settings", settings_body())

    assert response.status_code == 200
    widget = WidgetSettings.objects.get(store=merchant.store)
    assert (widget.title, widget.items, widget.own_share) == ("Partners we love", 5, 20)
    change = SettingsChange.objects.get(store=merchant.store)
    assert change.actor == "1"  # the ID token's "sub"
    assert change.changes["title"] == ["", "Partners we love"]


def test_recent_changes_read_as_what_changed_in_the_shops_time_zone(merchant, client, simulator):
    # The page listed the changed fields' internal names ("own_share, accent_color"), in UTC.
    simulator.shop("alpha").time_zone = "Asia/Tokyo"
    store_services.sync_store_details(merchant.store)
    Store.objects.create(shop_domain="beta.myshopify.com", status="active")
    merchant("post", "/api/settings", settings_body())
    merchant("post", "/api/settings",
             settings_body(enabled=False, title="", items=6, own_share=35,
                           blocked_stores=["beta.myshopify.com"]))  # fmt: skip
    product = Product.objects.filter(store=merchant.store).first()
    merchant(
        "post", "/api/products/opt-out", {"product_ids": [product.shopify_id], "opted_out": True}
    )
    SettingsChange.objects.update(created_at=datetime(2026, 11, 24, 23, 30, tzinfo=ZoneInfo("UTC")))

    html = client.get("/", simulator.embedded_query("alpha")).content.decode()

    listed = html.split('id="recent-changes">')[1].split("</ul>")[0]
    assert listed.count("<li>") == 3
    assert "25 Nov 2026, 08:30 JST — " in listed
    assert (
        escape(
            "Widget switched off; Heading “Partners we love” → in the shopper's language; "
            "Products shown 5 → 6; Share of your own products 20 % → 35 %; Blocked beta.myshopify.com"
        )
        in listed
    )
    assert "1 product kept off the network" in listed
    assert "own_share" not in listed and "blocked_stores" not in listed


def test_each_kind_of_change_has_its_words():
    assert stats.change_in_words({
        "avoid_competitors": [True, False], "blocked_stores": [["a.myshopify.com"], []],
        "accent_color": ["#005bd3", "#1a1a1a"], "enabled": [False, True],
        "excluded_categories": [["gid://shopify/TaxonomyCategory/gone"], []],
        "opted_in": [1, 2], "opted_out_once_synced": [3],
        "no_longer_opted_out_once_synced": [4, 5, 6],
    }) == [
        "Widget switched on", "Accent colour #005bd3 → #1a1a1a", "Avoid direct competitors off",
        "No longer excluded: gid://shopify/TaxonomyCategory/gone (no longer in the network)",
        "Unblocked a.myshopify.com",
        "2 products put back in the network",
        "1 product to be kept off once your catalog sync reads them",
        "3 products no longer to be kept off once synced",
    ]  # fmt: skip


def test_switching_the_widget_off_tells_the_theme_which_then_renders_nothing(
    merchant, simulator, task_queue, django_capture_on_commit_callbacks
):
    # The theme reserved the row's space (330 px) on every page while the widget was off
    # here, and an empty answer could not take back a slot already on screen.
    page_url = f"{simulator.url}/store/alpha/products/burr-grinder"

    def page() -> str:
        return httpx.get(page_url).text

    assert "data-interlayer-slot" in page() and "interlayer.js" in page()
    with django_capture_on_commit_callbacks(execute=True):
        merchant("post", "/api/settings", settings_body(enabled=False))
    queued = task_queue.new()
    recommender_tasks.publish_widget_switch(merchant.store.pk)
    off = page()
    with django_capture_on_commit_callbacks(execute=True):
        merchant("post", "/api/settings", settings_body(enabled=True))
    recommender_tasks.publish_widget_switch(merchant.store.pk)

    assert ("recommender.tasks.publish_widget_switch", (merchant.store.pk,)) in queued
    assert "data-interlayer-slot" not in off and "data-interlayer-embed" not in off
    assert "interlayer.js" not in off
    assert "data-interlayer-slot" in page() and "interlayer.js" in page()
    assert simulator.shop("alpha").app_metafields == {
        "interlayer": {"widget_enabled": {"type": "boolean", "value": "true"}}
    }


def test_a_store_reinstalled_with_its_widget_off_tells_its_theme_again(
    merchant, simulator, install, task_queue
):
    WidgetSettings.objects.filter(store=merchant.store).update(enabled=False)
    controls.publish_widget_switch(merchant.store)
    simulator.control("alpha", "uninstall")  # the app's metafields go with it
    store_services.uninstall_store(shop_domain="alpha.myshopify.com", triggered_at=timezone.now())
    store = install("alpha")
    task_queue.mark()

    tasks.after_install(store.pk)
    queued = task_queue.new()
    untold = dict(simulator.shop("alpha").app_metafields)
    for name, args in queued:
        if name == "recommender.tasks.publish_widget_switch":
            recommender_tasks.publish_widget_switch(*args)

    assert untold == {}  # until the queued task runs
    assert ("recommender.tasks.publish_widget_switch", (store.pk,)) in queued
    told = simulator.shop("alpha").app_metafields["interlayer"]["widget_enabled"]
    assert told["value"] == "false"
    assert WidgetSettings.objects.get(store=store).enabled_in_theme is False


def test_a_switch_shopify_refused_to_store_is_told_again_by_reconciliation(
    merchant, simulator, task_queue, django_capture_on_commit_callbacks
):
    # The switch was told once, when the setting changed: a refusal left the theme showing
    # (or hiding) the row for good, with the overview saying otherwise.
    with django_capture_on_commit_callbacks(execute=True):
        merchant("post", "/api/settings", settings_body(enabled=False))
    simulator.fault("alpha", "graphql", "malformed")
    with pytest.raises(store_services.shopify.ShopifyError):
        recommender_tasks.publish_widget_switch(merchant.store.pk)
    told_before = WidgetSettings.objects.get(store=merchant.store).enabled_in_theme
    task_queue.mark()

    lifecycle.resume_stalled_work(sender=None)
    queued = task_queue.new()
    recommender_tasks.publish_widget_switch(merchant.store.pk)
    task_queue.mark()
    lifecycle.resume_stalled_work(sender=None)  # told now: nothing more to do

    assert told_before is None
    assert simulator.shop("alpha").app_metafields == {
        "interlayer": {"widget_enabled": {"type": "boolean", "value": "false"}}
    }
    assert ("recommender.tasks.publish_widget_switch", (merchant.store.pk,)) in queued
    assert task_queue.new() == []


def test_a_store_back_from_reauthorisation_is_told_a_switch_it_missed(merchant, task_queue):
    # Switched back on while Shopify refused our token: the theme still had "off". The
    # store's return (a token exchange, so store_installed) forgot that it was told "off",
    # and nothing told it "on" again: a storefront blank for good while the widget was on.
    WidgetSettings.objects.filter(store=merchant.store).update(enabled=True, enabled_in_theme=False)
    task_queue.mark()

    lifecycle.welcome(sender=None, store=merchant.store)
    lifecycle.resume_stalled_work(sender=None)

    queued = task_queue.new()
    assert queued.count(("recommender.tasks.publish_widget_switch", (merchant.store.pk,))) == 2
    assert WidgetSettings.objects.get(store=merchant.store).enabled_in_theme is False  # until told


def test_a_store_that_never_switched_its_widget_off_needs_no_telling(merchant, task_queue):
    task_queue.mark()

    merchant("post", "/api/settings", settings_body(title="Also see"))  # the widget stays on
    lifecycle.resume_stalled_work(sender=None)

    assert ("recommender.tasks.publish_widget_switch", (merchant.store.pk,)) not in task_queue.new()


def test_an_empty_title_is_saved_as_the_heading_in_each_shoppers_language(merchant):
    WidgetSettings.objects.filter(store=merchant.store).update(title="Partners we love")

    response = merchant("post", "/api/settings", settings_body(title="  "))

    assert response.status_code == 200
    assert WidgetSettings.objects.get(store=merchant.store).title == ""


@pytest.mark.parametrize(
    ("field", "value"),
    [("items", 0), ("items", 99), ("own_share", 150), ("own_share", -1), ("accent_color", "red"),
     ("title", "x" * 200),
     # "$" matches before a final newline: these passed, and did not fit the seven-character
     # column on PostgreSQL (a 500).
     ("background_color", "#ffffff\n"), ("accent_color", "#005bd3\n"), ("text_color", "\n#1a1a1a"),
     # Not text: a list or a number was saved as Python's spelling of it ("['a', 'b']").
     ("title", ["a", "b"]), ("title", {"a": 1}), ("title", 5), ("title", []), ("title", {})],
)  # fmt: skip
def test_out_of_range_values_are_400_with_the_field_named_and_nothing_saved(merchant, field, value):
    response = merchant("post", "/api/settings", settings_body(**{field: value}))

    assert response.status_code == 400
    assert field in response.json()["errors"]
    assert not SettingsChange.objects.exists()


@pytest.mark.parametrize(
    ("field", "value"),
    [("blocked_stores", ["beta\x00"]), ("excluded_categories", ["beta\x00"]),
     ("title", "\ud800"), ("title", "a\x00b"), ("blocked_stores", ["\ud800"]),
     ("excluded_categories", ["\ud800"])],
)  # fmt: skip
def test_text_the_database_cannot_hold_is_400_with_the_field_named(merchant, field, value):
    # PostgreSQL text cannot hold a NUL, and JSON may carry a lone surrogate, which is no
    # UTF-8: unchecked, saving the title or looking the names up failed in the database
    # or its driver (500).
    response = merchant("post", "/api/settings", settings_body(**{field: value}))

    assert response.status_code == 400
    assert field in response.json()["errors"]
    assert not SettingsChange.objects.exists()


def test_a_body_nested_too_deep_to_parse_is_400_not_a_server_error(merchant, client, simulator):
    response = client.post(
        "/api/settings", data="[" * 3000, content_type="application/json",
        HTTP_AUTHORIZATION=f"Bearer {simulator.id_token('alpha')}",
    )  # fmt: skip

    assert (response.status_code, response.json()) == (400, {"error": "invalid JSON"})
    assert not SettingsChange.objects.exists()


def test_unknown_category_names_are_rejected_and_known_ones_stored_as_taxonomy_ids(merchant):
    Product.objects.filter(store=merchant.store).update(
        category_id="gid://shopify/TaxonomyCategory/hg-11-7",
        category_full_name="Home & Garden > Kitchen & Dining > Kitchen Appliances",
    )

    bad = merchant("post", "/api/settings", settings_body(excluded_categories=["Spaceships"]))
    good = merchant(
        "post",
        "/api/settings",
        settings_body(excluded_categories=["Home & Garden > Kitchen & Dining"]),
    )

    assert bad.status_code == 400 and "Spaceships" in json.dumps(bad.json())
    assert good.status_code == 200
    assert WidgetSettings.objects.get(store=merchant.store).excluded_categories == [
        "gid://shopify/TaxonomyCategory/hg-11"
    ]


@pytest.mark.parametrize(
    ("colours", "refused"),
    [
        ({"text_color": "#ffffff"}, "text_color"),  # white on white: no text at all
        ({"text_color": "#bbbbbb"}, "text_color"),  # 1.9:1
        # 3:1 does for large text only: titles and prices are body text, 4.5:1 (WCAG AA).
        ({"text_color": "#949494"}, "text_color"),
        ({"accent_color": "#ffd600"}, "accent_color"),  # arrows and focus ring: 1.5:1
        ({"text_color": "#767676", "accent_color": "#949494"}, None),  # 4.5:1 and 3:1
        ({"text_color": "#f5f5f5", "accent_color": "#ffd600", "background_color": "#121212"},
         None),  # a dark widget
    ],
)  # fmt: skip
def test_colours_a_shopper_could_not_read_are_refused_with_the_reason(merchant, colours, refused):
    def saved_colours():
        widget = WidgetSettings.objects.get(store=merchant.store)
        return widget.text_color, widget.accent_color, widget.background_color

    before = saved_colours()

    response = merchant("post", "/api/settings", settings_body(**colours))

    if refused is None:
        assert response.status_code == 200
        return
    assert response.status_code == 400
    assert "contrast" in response.json()["errors"][refused][0]["message"]
    assert saved_colours() == before


def test_colours_saved_before_the_contrast_rule_do_not_block_saving_other_settings(merchant):
    # Saved when any colour was taken: the merchant can still switch the widget off or
    # rename it; a colour changed now must pass.
    controls.widget_settings_for(merchant.store)
    WidgetSettings.objects.filter(store=merchant.store).update(
        text_color="#BBBBBB", accent_color="#ffd600"
    )
    kept = settings_body(text_color="#bbbbbb", accent_color="#ffd600")

    response = merchant("post", "/api/settings", {**kept, "enabled": False})
    changed = merchant("post", "/api/settings", {**kept, "text_color": "#cccccc"})

    assert response.status_code == 200
    assert WidgetSettings.objects.get(store=merchant.store).enabled is False
    assert changed.status_code == 400
    assert list(changed.json()["errors"]) == ["text_color"]


def test_a_contrast_just_short_of_the_least_is_not_shown_as_reaching_it(merchant):
    response = merchant(
        "post", "/api/settings", settings_body(text_color="#777777", accent_color="#959595")
    )  # 4.48:1 and 2.995:1

    assert response.status_code == 400
    errors = response.json()["errors"]
    assert "contrast 4.4:1, at least 4.5:1." in errors["text_color"][0]["message"]
    assert "contrast 2.9:1, at least 3:1." in errors["accent_color"][0]["message"]


KETTLES = "gid://shopify/TaxonomyCategory/hg-11-7"
KITCHEN = "gid://shopify/TaxonomyCategory/hg-11"


def test_a_saved_category_that_left_the_network_is_kept_on_save_and_can_be_removed(
    client, merchant, simulator
):
    partner = make_store("partner", status=Store.Status.UNINSTALLED)
    make_product(partner, "Gooseneck kettle", category_id=KETTLES,
                 category_full_name="Home & Garden > Kitchen & Dining > Kitchen Appliances")  # fmt: skip
    saved = merchant(
        "post",
        "/api/settings",
        settings_body(excluded_categories=["Home & Garden > Kitchen & Dining"]),
    )
    assert saved.status_code == 200
    # The partner's last products in that category go with its data.
    store_services.redact_shop(
        shop_domain=partner.shop_domain, triggered_at=None, keep_delivery_id=0
    )
    assert merchant("get", "/api/categories?q=Kitchen").json()["categories"] == []

    page = client.get("/", simulator.embedded_query("alpha")).content.decode()
    retitled = merchant(
        "post", "/api/settings", settings_body(title="New title", excluded_categories=[KITCHEN])
    )
    kept = WidgetSettings.objects.get(store=merchant.store)
    removed = merchant("post", "/api/settings", settings_body(excluded_categories=[]))

    assert f'<li data-value="{KITCHEN}">' in page  # what the page posts back for it
    assert f"{KITCHEN} (no longer in the network)" in page
    assert retitled.status_code == 200
    assert (kept.title, kept.excluded_categories) == ("New title", [KITCHEN])
    assert removed.status_code == 200
    assert WidgetSettings.objects.get(store=merchant.store).excluded_categories == []


def test_a_category_id_this_store_never_saved_is_rejected_unless_known(merchant):
    # Saved by another store: it is still new to this one.
    WidgetSettings.objects.filter(store=make_store("other")).update(excluded_categories=[KITCHEN])

    response = merchant("post", "/api/settings", settings_body(excluded_categories=[KITCHEN]))

    assert response.status_code == 400
    assert KITCHEN in json.dumps(response.json()["errors"]["excluded_categories"])
    assert WidgetSettings.objects.get(store=merchant.store).excluded_categories == []


def test_a_blocked_partner_list_of_thousands_is_validated_in_bounded_queries(
    merchant, django_assert_max_num_queries
):
    Store.objects.bulk_create(
        [Store(shop_domain=f"partner-{n}.myshopify.com", status="active") for n in range(3000)]
    )
    domains = [f"partner-{n}.myshopify.com" for n in range(3000)]

    with django_assert_max_num_queries(40):
        ok = merchant("post", "/api/settings", settings_body(blocked_stores=domains))
    too_many = merchant("post", "/api/settings", settings_body(blocked_stores=domains * 2))
    unknown = merchant(
        "post", "/api/settings", settings_body(blocked_stores=["ghost.myshopify.com"])
    )

    assert ok.status_code == 200
    assert WidgetSettings.objects.get(store=merchant.store).blocked_stores.count() == 3000
    assert too_many.status_code == 400 and "At most" in json.dumps(too_many.json())
    assert unknown.status_code == 400 and "ghost.myshopify.com" in json.dumps(unknown.json())


def test_blocking_tells_a_store_that_left_from_one_that_never_was_apart_for_no_one(merchant):
    # The answer to blocking a domain said whether that shop had ever installed the app
    # (uninstalled and redacted stores keep their domain): any merchant could ask for any
    # shop. Now a store outside the network is as unknown as one that never was, unless
    # this merchant blocked it while it took part (kept, so other settings still save).
    kept = Store.objects.create(shop_domain="kept.myshopify.com", status="active")
    assert (
        merchant(
            "post", "/api/settings", settings_body(blocked_stores=[kept.shop_domain])
        ).status_code
        == 200
    )
    Store.objects.filter(pk=kept.pk).update(status="uninstalled")
    Store.objects.create(shop_domain="left.myshopify.com", status="uninstalled")
    Store.objects.create(shop_domain="purged.myshopify.com", status="redacted")

    answers = {
        domain: merchant("post", "/api/settings", settings_body(blocked_stores=[kept.shop_domain, domain]))
        for domain in ("left.myshopify.com", "purged.myshopify.com", "never.myshopify.com")
    }  # fmt: skip
    still = merchant("post", "/api/settings", settings_body(blocked_stores=[kept.shop_domain]))

    errors = {
        domain: answer.json()["errors"]["blocked_stores"] for domain, answer in answers.items()
    }
    assert {answer.status_code for answer in answers.values()} == {400}
    assert errors == {
        domain: [{"message": f"Unknown partner stores: {domain}", "code": ""}] for domain in answers
    }
    assert still.status_code == 200
    saved = WidgetSettings.objects.get(store=merchant.store).blocked_stores
    assert list(saved.values_list("shop_domain", flat=True)) == [kept.shop_domain]


def test_a_token_for_shop_a_cannot_change_shop_b(merchant, simulator, install):
    other = install("beta")
    controls.widget_settings_for(other)

    response = merchant("post", "/api/settings?shop=beta.myshopify.com",
                        {**settings_body(title="Hijacked"), "shop": "beta.myshopify.com"})  # fmt: skip

    assert response.status_code == 200
    assert WidgetSettings.objects.get(store=other).title == ""
    assert WidgetSettings.objects.get(store=merchant.store).title == "Hijacked"


def test_requests_without_or_with_an_expired_token_get_401_and_the_retry_header(
    client, merchant, simulator
):
    expired = simulator.id_token("alpha", exp=int(time.time()) - 120)

    missing = client.post(
        "/api/settings", data=json.dumps(settings_body()), content_type="application/json"
    )
    stale = merchant("post", "/api/settings", settings_body(), token=expired)

    for response in (missing, stale):
        assert response.status_code == 401
        assert response["X-Shopify-Retry-Invalid-Session-Request"] == "1"
    assert not SettingsChange.objects.exists()


@pytest.mark.parametrize("status", [Store.Status.NEEDS_REAUTH, Store.Status.REDACTED])
def test_a_store_that_is_not_active_gets_401_from_the_settings_api(merchant, status):
    Store.objects.filter(pk=merchant.store.pk).update(status=status)

    overview = merchant("get", "/api/overview")
    save = merchant("post", "/api/settings", settings_body())

    for response in (overview, save):
        assert response.status_code == 401
        assert response["X-Shopify-Retry-Invalid-Session-Request"] == "1"
    assert not SettingsChange.objects.exists()


def test_cross_site_form_posts_cannot_change_settings(client, merchant, simulator):
    # A cross-site form can send neither an Authorization header nor a JSON body.
    no_token = client.post(
        "/api/settings", data={"title": "pwned"}, HTTP_ORIGIN="https://evil.example"
    )
    as_form = client.post("/api/settings", data={"title": "pwned"},
                          HTTP_AUTHORIZATION=f"Bearer {simulator.id_token('alpha')}")  # fmt: skip

    assert no_token.status_code == 401
    assert as_form.status_code == 415
    assert not SettingsChange.objects.exists()


def test_opting_a_product_out_takes_it_off_partner_widgets(merchant):
    product = Product.objects.filter(store=merchant.store).first()
    index_events.rebuild_index()

    response = merchant(
        "post", "/api/products/opt-out", {"product_ids": [product.shopify_id], "opted_out": True}
    )
    bad = merchant("post", "/api/products/opt-out", {"product_ids": "all", "opted_out": "yes"})

    assert response.json() == {"changed": 1, "not_synced": []}
    assert bad.status_code == 400
    product.refresh_from_db()
    assert product.opted_out
    hits = live_index.current(refresh=True).search(
        np.frombuffer(product.vector, dtype=np.float32), 10
    )
    assert product.pk not in {hit.product_id for hit in hits}


def test_opting_out_a_product_not_synced_yet_says_so(merchant):
    product = Product.objects.filter(store=merchant.store).first()
    unread = product.shopify_id + 1000  # in the shop, not read yet

    response = merchant("post", "/api/products/opt-out",
                        {"product_ids": [product.shopify_id, unread], "opted_out": True})  # fmt: skip

    assert response.status_code == 200
    assert response.json() == {"changed": 1, "not_synced": [unread]}


def _not_read_yet(store) -> tuple[int, str]:
    """A product of the shop the catalog has not read yet (a new product, or any product
    while the first sync runs)."""
    product = Product.objects.filter(store=store).order_by("shopify_id").first()
    product.delete()
    return product.shopify_id, product.title


def test_a_product_chosen_before_the_sync_read_it_is_kept_off_once_it_is_read(merchant):
    store = merchant.store
    unread, title = _not_read_yet(store)

    answer = merchant("post", "/api/products/opt-out", {
        "product_ids": [unread], "opted_out": True, "titles": {str(unread): title},
    })  # fmt: skip
    waiting = merchant("get", "/api/products?opted_out=1").json()["products"]
    catalog_sync.sync_catalog(store)  # the sync reads it
    read = Product.objects.get(store=store, shopify_id=unread)
    index_events.rebuild_index()
    listed = merchant("get", "/api/products?opted_out=1").json()["products"]

    assert answer.json() == {"changed": 0, "not_synced": [unread]}
    assert waiting == [{"shopify_id": unread, "title": title, "opted_out": True,
                        "eligible": False, "ineligible_reason": "", "not_synced": True}]  # fmt: skip
    assert read.opted_out
    assert [(p["shopify_id"], p.get("not_synced", False)) for p in listed] == [(unread, False)]
    hits = live_index.current(refresh=True).search(np.frombuffer(read.vector, np.float32), 50)
    assert read.pk not in {hit.product_id for hit in hits}
    change = SettingsChange.objects.filter(store=store).latest("created_at")
    assert change.changes == {"opted_out_once_synced": [unread]}


def test_a_product_returned_before_the_sync_read_it_stays_in_the_network(merchant):
    store = merchant.store
    unread, _ = _not_read_yet(store)
    merchant("post", "/api/products/opt-out", {"product_ids": [unread], "opted_out": True})

    back = merchant("post", "/api/products/opt-out", {"product_ids": [unread], "opted_out": False})
    catalog_sync.sync_catalog(store)

    assert back.json() == {"changed": 0, "not_synced": [unread]}
    assert merchant("get", "/api/products?opted_out=1").json()["products"] == []
    assert not Product.objects.get(store=store, shopify_id=unread).opted_out


def test_products_waiting_for_the_sync_are_bounded_and_their_titles_checked(merchant):
    store = merchant.store
    unread, _ = _not_read_yet(store)
    bad_title = merchant("post", "/api/products/opt-out", {
        "product_ids": [unread], "opted_out": True, "titles": {str(unread): ["not", "text"]},
    })  # fmt: skip
    assert bad_title.status_code == 400
    assert not PendingOptOut.objects.filter(store=store).exists()
    # Ids the shop may not even have: what waits for the sync is bounded per store.
    many = [10**12 + n for n in range(controls.MAX_WAITING_OPT_OUTS)]
    for n in range(0, len(many), 500):
        merchant("post", "/api/products/opt-out",
                 {"product_ids": many[n:n + 500], "opted_out": True})  # fmt: skip

    one_more = merchant(
        "post", "/api/products/opt-out", {"product_ids": [unread], "opted_out": True}
    )

    assert PendingOptOut.objects.filter(store=store).count() == controls.MAX_WAITING_OPT_OUTS
    assert one_more.status_code == 400
    assert "waiting for your catalog to sync" in one_more.json()["error"]
    assert not PendingOptOut.objects.filter(store=store, shopify_id=unread).exists()


@pytest.mark.parametrize(
    ("ids", "titles"),
    [
        ([2**63], {}),  # past a BIGINT: PostgreSQL refused the row (a 500)
        ([10**30], {}),
        ([0], {}),  # no Shopify product has these: they only took the bound's places
        ([-5], {}),
        ([123456], {"123456": "Kettle\x00"}),  # PostgreSQL refuses a NUL in text
        ([123456], {"123456": "\ud800"}),  # a lone surrogate is not UTF-8
    ],
)
def test_opt_out_ids_and_titles_the_database_cannot_hold_are_refused(merchant, ids, titles):
    answer = merchant("post", "/api/products/opt-out",
                      {"product_ids": ids, "opted_out": True, "titles": titles})  # fmt: skip

    assert answer.status_code == 400
    assert "error" in answer.json()
    assert not PendingOptOut.objects.exists()
    assert not SettingsChange.objects.filter(store=merchant.store).exists()


def _new_product_node(shopify_id: int, title: str) -> dict:
    """A product as the sync's page or a products webhook reads it from the Admin API."""
    return {
        "id": f"gid://shopify/Product/{shopify_id}", "title": title, "status": "ACTIVE",
        "onlineStoreUrl": f"https://alpha.example/products/{shopify_id}",
        "priceRangeV2": {"minVariantPrice": {"amount": "12.00", "currencyCode": "USD"},
                         "maxVariantPrice": {"amount": "12.00", "currencyCode": "USD"}},
    }  # fmt: skip


@pytest.mark.django_db(transaction=True)
def test_a_product_chosen_while_the_sync_stores_it_is_kept_off_and_waits_no_more(
    simulator, install
):
    """The merchant chooses a product in the very moment the sync stores it: neither saw
    the other's uncommitted row, so it entered the network and its choice waited on."""
    store = install("alpha")
    catalog_sync.sync_catalog(store)
    sync = CatalogSync.objects.get(store=store)
    known = Product.objects.filter(store=store).order_by("shopify_id").first()
    # The batch also writes a product the catalog had: its row is locked until it commits.
    nodes = [_new_product_node(7777, "Brand New Kettle"),
             _new_product_node(known.shopify_id, "Renamed")]  # fmt: skip
    stored, go = threading.Event(), threading.Event()
    errors: list[BaseException] = []

    def the_sync_stores_it() -> None:
        try:
            with transaction.atomic():  # the batch's transaction, held open a moment
                products.upsert_products(store, sync, nodes)
                stored.set()
                go.wait(5)
        except BaseException as error:
            errors.append(error)
        finally:
            connection.close()

    def the_merchant_chooses_it() -> None:
        try:
            controls.set_products_opted_out(store=store, actor="42", opted_out=True,
                                            shopify_ids=[7777, known.shopify_id])  # fmt: skip
        except BaseException as error:
            errors.append(error)
        finally:
            connection.close()

    syncing = threading.Thread(target=the_sync_stores_it)
    syncing.start()
    assert stored.wait(5)
    choosing = threading.Thread(target=the_merchant_chooses_it)
    choosing.start()
    choosing.join(0.5)  # before the batch commits (or waiting for it to)
    go.set()
    syncing.join(10)
    choosing.join(10)

    assert not errors  # neither waited for the other's rows: no deadlock
    assert Product.objects.get(store=store, shopify_id=7777).opted_out
    assert Product.objects.get(pk=known.pk).opted_out
    assert not PendingOptOut.objects.filter(store=store).exists()


@pytest.mark.django_db(transaction=True)
def test_two_choices_at_once_never_leave_more_than_the_bound_waiting(
    simulator, install, monkeypatch
):
    store = install("alpha")
    PendingOptOut.objects.bulk_create(
        [PendingOptOut(store=store, shopify_id=10**12 + n) for n in range(600)]
    )
    both_counted = threading.Barrier(2)
    insert = PendingOptOut.objects.bulk_create

    def after_both_counted(*args, **kwargs):  # two admin tabs, two requests at once
        # Unless the other one waits for this one to finish first.
        with contextlib.suppress(threading.BrokenBarrierError):
            both_counted.wait(timeout=1)
        return insert(*args, **kwargs)

    monkeypatch.setattr(PendingOptOut.objects, "bulk_create", after_both_counted)
    refused: list[BaseException] = []

    def choose(first: int) -> None:
        try:
            controls.set_products_opted_out(
                store=store, actor="42", opted_out=True,
                shopify_ids=[first + n for n in range(300)],
            )  # fmt: skip
        except controls.TooManyWaiting as error:
            refused.append(error)
        finally:
            connection.close()

    tabs = [threading.Thread(target=choose, args=(first,)) for first in (10**13, 2 * 10**13)]
    for tab in tabs:
        tab.start()
    for tab in tabs:
        tab.join(10)

    assert PendingOptOut.objects.filter(store=store).count() == 900
    assert len(refused) == 1


def test_a_choice_about_a_read_product_replaces_one_left_waiting_for_it(merchant):
    """A choice left waiting for a product the catalog has read (as the race above left
    them): returning the product must not have the next sync take it off again, nor the
    list show it twice."""
    store = merchant.store
    product = Product.objects.filter(store=store).order_by("shopify_id").first()
    PendingOptOut.objects.create(store=store, shopify_id=product.shopify_id, title="Old")

    merchant("post", "/api/products/opt-out",
             {"product_ids": [product.shopify_id], "opted_out": True})  # fmt: skip
    listed = merchant("get", "/api/products?opted_out=1").json()["products"]
    merchant("post", "/api/products/opt-out",
             {"product_ids": [product.shopify_id], "opted_out": False})  # fmt: skip
    catalog_sync.sync_catalog(store)

    assert [p["shopify_id"] for p in listed] == [product.shopify_id]
    product.refresh_from_db()
    assert not product.opted_out
    assert not PendingOptOut.objects.filter(store=store).exists()


def test_stats_aggregate_a_year_of_events_in_a_fixed_number_of_queries(
    merchant, django_assert_num_queries
):
    seed_exchange_history(
        merchant.store, [make_store("partner")], days=365, per_day=6, billable=lambda n: n < 4
    )

    # the store, 4 series, attributed orders received and sent, the partner ledger, the balance
    with django_assert_num_queries(9):
        response = merchant("get", "/api/stats?days=365")

    body = response.json()
    assert len(body["days"]) == 365
    assert body["totals"]["sent"] == 365 * 6 and body["totals"]["sent_billable"] == 365 * 4
    assert body["totals"]["impressions"] == 365 * 6
    assert body["totals"]["ctr"] == round(4 / 6, 4)  # billable clicks over viewable impressions
    assert body["partners"][0]["clicks_sent"] == 4 * 365


def test_the_click_through_rate_is_billable_clicks_sent_over_viewable_impressions(merchant):
    # 4 viewable impressions and 6 clicks sent: 1 billable, 3 from bots, 2 on rows never
    # reported seen. Raw clicks over views would be 150 %.
    partner = make_store("partner")
    seed_exchange_history(merchant.store, [partner], days=1, per_day=4, billable=lambda n: n == 0)
    for n in range(2):
        Click.objects.create(source_store=merchant.store, target_store=partner,
                             target_product_id=n, impression_id=f"unseen-{n}",
                             token_id=f"unseen-{n}", visitor_hash="v", reason=rules.NO_VIEW)  # fmt: skip

    totals = merchant("get", "/api/stats?days=7").json()["totals"]

    assert (totals["impressions"], totals["sent"], totals["sent_billable"]) == (4, 6, 1)
    assert totals["ctr"] == 0.25


def test_stats_count_the_shops_own_days_in_the_time_zone_shopify_gives(merchant, simulator):
    """A click at 11 pm in Los Angeles is that day's, not the next (UTC's) day's."""
    simulator.shop("alpha").time_zone = "America/Los_Angeles"
    store = store_services.sync_store_details(merchant.store)
    zone = ZoneInfo("America/Los_Angeles")
    today = timezone.now().astimezone(zone).date()
    evening = datetime.combine(today, clock.min, tzinfo=zone) - timedelta(hours=1)
    Click.objects.create(source_store=store, target_store=make_store("partner"),
                         target_product_id=1, impression_id="late", token_id="late",
                         visitor_hash="v", created_at=evening)  # fmt: skip

    body = merchant("get", "/api/stats?days=2").json()

    assert store.time_zone == body["time_zone"] == "America/Los_Angeles"
    assert [(day["date"], day["sent"]) for day in body["days"]] == [
        ((today - timedelta(days=1)).isoformat(), 1), (today.isoformat(), 0)
    ]  # fmt: skip


def test_stats_period_is_bounded(merchant):
    assert merchant("get", "/api/stats?days=5000").status_code == 400
    assert merchant("get", "/api/stats?days=abc").status_code == 400


def test_preview_explains_each_item(merchant, simulator, install):
    other = install("beta")
    tasks.after_install(other.pk)  # shop details and the starter grant: it can pay
    catalog_sync.sync_catalog(other)
    index_events.rebuild_index()
    runtime.reset()

    response = merchant("get", "/api/preview")

    assert response.status_code == 200
    items = response.json()["items"]
    assert {item["slot"] for item in items} == {"partner", "own"}
    assert {item["shop"] for item in items if item["slot"] == "partner"} == {"beta.myshopify.com"}
    assert all({"slot", "reason", "title"} <= set(item) for item in items)
    assert all(item["reason"] for item in items)


def test_the_preview_tells_a_merchant_nothing_of_a_partners_credit_balance(
    merchant, simulator, install
):
    # Each partner item's reason said "partner fairness +0.68", and its score held 0.05 x
    # that: fairness is a known blend of the partner's balance and catalog size, so a
    # merchant polling the preview read a partner's balance to about a credit.
    other = install("beta")
    tasks.after_install(other.pk)
    catalog_sync.sync_catalog(other)
    index_events.rebuild_index()
    runtime.reset()
    before = merchant("get", "/api/preview").json()["items"]

    call_command("grant_credits", "beta.myshopify.com", "27.50", reason="test", stdout=StringIO())
    runtime.reset()
    after = merchant("get", "/api/preview").json()["items"]

    assert any(item["slot"] == "partner" for item in before)
    assert after == before
    assert not any("fairness" in item["reason"] or "score" in item for item in after)


def test_partner_and_category_search(merchant, install):
    install("beta")

    partners = merchant("get", "/api/partners?q=bet").json()["partners"]
    themselves = merchant("get", "/api/partners?q=alpha").json()["partners"]

    assert [p["shop"] for p in partners] == ["beta.myshopify.com"]
    assert themselves == []


def test_the_networks_categories_are_read_once_per_freshness_window(
    merchant, settings, django_assert_num_queries
):
    """Every save and every keystroke of a category search asks for them: a DISTINCT over
    every product of the network, read once per RECOMMENDER_STATE_TTL_SECONDS."""
    settings.RECOMMENDER_STATE_TTL_SECONDS = 60
    Product.objects.filter(store=merchant.store).update(
        category_id=KETTLES,
        category_full_name="Home & Garden > Kitchen & Dining > Kitchen Appliances",
    )
    runtime.network_categories.clear()  # what the page read before the products changed
    first = stats.category_search("")

    with django_assert_num_queries(0):
        again = stats.category_search("")

    assert first and again == first
    assert merchant("get", "/api/categories?q=").json()["categories"] == first


@pytest.mark.parametrize(
    ("path", "key"),
    [("/api/partners", "partners"), ("/api/products", "products"),
     ("/api/products?eligible=1&", "products"), ("/api/categories", "categories")],
)  # fmt: skip
def test_a_search_with_a_nul_character_answers_like_one_without_it(merchant, install, path, key):
    install("beta")
    separator = "&" if path.endswith("&") else "?"

    with_nul = merchant("get", f"{path.rstrip('&')}{separator}q=B%00")
    without = merchant("get", f"{path.rstrip('&')}{separator}q=B")

    assert with_nul.status_code == 200
    assert with_nul.json()[key] == without.json()[key]


# --- the set-up guide ----------------------------------------------------------------------


def guide_steps(merchant) -> tuple[dict, dict]:
    response = merchant("get", "/api/setup?refresh=1")
    assert response.status_code == 200
    body = response.json()
    return body, {step["key"]: step for step in body["steps"]}


def test_the_set_up_guide_moves_step_by_step_with_the_stores_real_state(
    merchant, simulator, install
):
    simulator.control("alpha", "theme-embed", enabled=False)
    simulator.control("alpha", "theme-block", added=False)

    body, steps = guide_steps(merchant)
    assert [s["key"] for s in body["steps"]] == ["catalog", "embed", "block", "preview", "live"]
    assert steps["catalog"]["status"] == "done"
    assert (body["current"], steps["embed"]["status"]) == ("embed", "todo")
    assert steps["embed"]["action"]["url"] == (
        "https://alpha.myshopify.com/admin/themes/current/editor"
        "?context=apps&activateAppId=interlayer-dev-api-key/app-embed"
    )
    assert steps["block"]["action"]["url"] == (
        "https://alpha.myshopify.com/admin/themes/current/editor?template=product"
        "&addAppBlockId=interlayer-dev-api-key/recommendations&target=mainSection"
    )
    assert steps["live"]["status"] == "todo" and body["complete"] is False

    simulator.control("alpha", "theme-embed", enabled=True)
    body, steps = guide_steps(merchant)
    # The embed alone shows the widget: the block is worth adding, not needed. And with no
    # partner store in the network yet, the preview waits on nothing the merchant can do.
    assert (steps["embed"]["status"], steps["block"]["status"]) == ("done", "optional")
    assert steps["block"]["action"]["url"].endswith("target=mainSection")
    assert (steps["preview"]["status"], body["current"]) == ("waiting", "live")

    simulator.control("alpha", "theme-block", added=True)
    body, steps = guide_steps(merchant)
    assert (steps["block"]["status"], body["current"]) == ("done", "live")

    partner = install("beta")
    tasks.after_install(partner.pk)
    catalog_sync.sync_catalog(partner)
    index_events.rebuild_index()
    runtime.reset()
    body, steps = guide_steps(merchant)
    assert (steps["preview"]["status"], body["current"]) == ("done", "live")
    assert steps["live"]["status"] == "todo"  # nobody has seen the widget yet
    # "View your store" opens the storefront at its primary domain's URL, as Shopify gives it.
    storefront = simulator.world.storefront_url(simulator.shop("alpha"))
    assert storefront.startswith("http") and steps["live"]["action"]["url"] == storefront

    Impression.objects.create(store=merchant.store, impression_id="i1", visitor_hash="v")
    body, steps = guide_steps(merchant)
    assert steps["live"]["status"] == "done"
    assert (body["current"], body["complete"]) == (None, True)


def test_with_the_block_alone_the_guide_can_be_finished(merchant, simulator, install):
    # The embed step stayed "to do" for a merchant who placed the block only, and the guide
    # never said Interlayer was live, though shoppers saw the widget.
    simulator.control("alpha", "theme-embed", enabled=False)
    simulator.control("alpha", "theme-block", added=True)
    Impression.objects.create(store=merchant.store, impression_id="i1", visitor_hash="v")

    body, steps = guide_steps(merchant)

    assert steps["embed"]["status"] == "optional" and steps["embed"]["action"] is not None
    assert (body["current"], body["complete"]) == (None, True)


@pytest.mark.parametrize("setting", ["own_share", "blocked_stores"])
def test_a_preview_emptied_by_the_merchants_own_settings_is_theirs_to_do(
    merchant, simulator, install, setting
):
    # The step said "waiting: new partners join every day" when it was the merchant's own
    # settings (all own products, every partner blocked) that kept partners out.
    partner = install("beta")
    tasks.after_install(partner.pk)
    catalog_sync.sync_catalog(partner)
    index_events.rebuild_index()
    runtime.reset()
    assert guide_steps(merchant)[1]["preview"]["status"] == "done"
    change = (
        {"own_share": 100} if setting == "own_share" else {"blocked_stores": ["beta.myshopify.com"]}
    )
    assert merchant("post", "/api/settings", settings_body(**change)).status_code == 200
    runtime.reset()

    body, steps = guide_steps(merchant)

    assert steps["preview"]["status"] == "todo" and body["current"] == "preview"
    assert "your settings" in steps["preview"]["detail"]
    assert steps["preview"]["action"]["url"] == "#widget-title"


def test_the_live_step_needs_the_widget_switched_on(merchant, simulator):
    Impression.objects.create(store=merchant.store, impression_id="i1", visitor_hash="v")
    WidgetSettings.objects.filter(store=merchant.store).update(enabled=False)

    _, steps = guide_steps(merchant)

    assert steps["live"]["status"] == "todo"
    assert "switched off" in steps["live"]["detail"]
    WidgetSettings.objects.filter(store=merchant.store).update(enabled=True)
    assert guide_steps(merchant)[1]["live"]["status"] == "done"


def test_the_catalog_step_waits_for_a_sync_with_products_to_show(merchant):
    controls.set_products_opted_out(
        store=merchant.store, actor="1",
        shopify_ids=list(Product.objects.filter(store=merchant.store)
                         .values_list("shopify_id", flat=True)),
        opted_out=True,
    )  # fmt: skip

    _, steps = guide_steps(merchant)

    assert steps["catalog"]["status"] == "todo"
    assert steps["catalog"]["action"]["command"] == "sync"


def test_sync_now_pressed_again_queues_no_second_full_read(
    merchant, task_queue, django_capture_on_commit_callbacks
):
    # Each sync reads the whole catalog on the workers every store shares: a merchant's
    # repeated clicks (or a script with their token) must not stack them up.
    task_queue.mark()

    with django_capture_on_commit_callbacks(execute=True):
        answers = [merchant("post", "/api/sync").json() for _ in range(5)]
        CatalogSync.objects.filter(store=merchant.store).update(state=CatalogSync.State.RUNNING)
        while_running = merchant("post", "/api/sync").json()

    assert answers == [{"queued": True}] + [{"queued": False}] * 4
    assert while_running == {"queued": False}
    assert task_queue.new() == [("recommender.tasks.sync_catalog", (merchant.store.pk,))]


def test_sync_now_after_a_finished_sync_queues_one(
    merchant, task_queue, django_capture_on_commit_callbacks
):
    CatalogSync.objects.filter(store=merchant.store).update(state=CatalogSync.State.DONE)
    task_queue.mark()

    with django_capture_on_commit_callbacks(execute=True):
        answer = merchant("post", "/api/sync")

    assert answer.json() == {"queued": True}
    assert task_queue.new() == [("recommender.tasks.sync_catalog", (merchant.store.pk,))]
    assert CatalogSync.objects.get(store=merchant.store).state == CatalogSync.State.QUEUED


def test_a_theme_that_cannot_be_read_is_unknown_not_missing(merchant, simulator):
    simulator.fault("alpha", "graphql", "500", count=10)

    body, steps = guide_steps(merchant)

    assert steps["embed"]["status"] == "unknown" and steps["block"]["status"] == "unknown"
    assert body["current"] == "embed"


def test_one_page_load_reads_the_theme_once(merchant, simulator, settings):
    settings.SHOPIFY_THEME_STATE_TTL_SECONDS = 30
    shop = simulator.shop("alpha")
    before = shop.graphql_requests

    assert merchant("get", "/api/overview").status_code == 200
    assert merchant("get", "/api/setup").status_code == 200
    assert shop.graphql_requests - before == 1

    simulator.control("alpha", "theme-embed", enabled=False)
    assert merchant("get", "/api/setup?refresh=1").status_code == 200
    assert shop.graphql_requests - before == 2
    assert merchant("get", "/api/overview").json()["app_embed"]["enabled"] is False


def test_a_theme_that_cannot_be_read_is_not_asked_for_on_every_look(merchant, simulator, settings):
    # While the catalog syncs the page looks again every 4 s (overview and guide): with
    # Shopify failing or throttling, each look used to ask it for the theme once more.
    settings.SHOPIFY_THEME_STATE_TTL_SECONDS = 30
    shop = simulator.shop("alpha")
    simulator.fault("alpha", "graphql", "500")  # the next read fails; the one after works
    before = shop.graphql_requests

    for _ in range(3):
        assert merchant("get", "/api/overview").json()["app_embed"]["enabled"] is None
        assert merchant("get", "/api/setup").status_code == 200
    asked = shop.graphql_requests - before
    # "Check again" still asks at once, and Shopify answers it.
    checked = merchant("get", "/api/setup?refresh=1").json()

    assert asked == 1
    assert shop.graphql_requests - before == 2
    assert checked["steps"][1]["status"] != "unknown"


def test_opted_out_products_are_listed_for_the_resource_picker(merchant):
    product = Product.objects.filter(store=merchant.store).order_by("title").first()
    merchant(
        "post", "/api/products/opt-out", {"product_ids": [product.shopify_id], "opted_out": True}
    )

    listed = merchant("get", "/api/products?opted_out=1").json()["products"]

    assert [p["shopify_id"] for p in listed] == [product.shopify_id]


def test_the_preview_finds_any_eligible_product_by_its_title(merchant):
    """The preview offered the first 30 products by title, drafts included: a merchant with
    more could not preview most of their pages. It now searches eligible products."""
    store = merchant.store
    for n in range(5):
        make_product(store, f"Aaa Draft {n}", eligible=False)  # first by title
    for n in range(40):
        make_product(store, f"Aeropress Filter {n:02d}")
    make_product(store, "Zebra Mug")
    make_product(store, "Zebra Mug Draft", eligible=False)

    first = merchant("get", "/api/products?eligible=1&q=").json()["products"]
    found = merchant("get", "/api/products?eligible=1&q=zebra").json()["products"]

    assert len(first) == 30 and all(p["eligible"] for p in first)
    assert [p["title"] for p in found] == ["Zebra Mug"]


def test_released_earnings_count_as_earned_and_the_partner_table_keeps_to_the_period(merchant):
    store, partner_store = merchant.store, make_store("partner")
    now = timezone.now()
    held = LedgerEntry.objects.create(
        store=store, kind=LedgerEntry.Kind.HELD, amount=Decimal("0.80"),
        counterparty=partner_store, created_at=now - timedelta(days=2),
    )  # fmt: skip
    LedgerEntry.objects.create(
        store=store, kind=LedgerEntry.Kind.RELEASE, amount=Decimal("0.80"),
        counterparty=partner_store, resolves=held, created_at=now - timedelta(days=1),
    )  # fmt: skip
    LedgerEntry.objects.create(  # a click sent to the same partner long before the period
        store=store, kind=LedgerEntry.Kind.EARN, amount=Decimal("1.00"),
        counterparty=partner_store, created_at=now - timedelta(days=60),
    )  # fmt: skip

    body = merchant("get", "/api/stats?days=7").json()

    assert body["totals"]["earned"] == 0.8  # released by an operator: earned
    (row,) = body["partners"]
    assert (row["clicks_sent"], row["net"]) == (1, "0.80")  # the held click, not the old one
