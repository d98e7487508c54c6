"""Catalog sync against the simulator: pages, bulk, resume, eligibility, webhooks, bad data."""

from __future__ import annotations

import threading
import time
from datetime import timedelta
from decimal import Decimal

import numpy as np
import pytest
from django.db import connection
from django.db.models import F
from django.utils import timezone

from recommender import controls, tasks
from recommender.catalog import embedding_pass, index_events, pacer
from recommender.catalog import sync as catalog_sync
from recommender.catalog.products import embedding_text, upsert_products
from recommender.models import CatalogSync, IndexEvent, PendingOptOut, Product
from recommender.ranking import embedding, live_index
from simulator.webhooks import product_payload
from stores import services, webhooks
from stores import tasks as store_tasks
from stores.models import Store, WebhookDelivery
from tests.recommender.test_click_settlement import refuse, stop_refusing
from tests.stores.test_webhooks import post_webhook

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("hash_embedder")]


def add_products(simulator, handle: str, count: int, **extra) -> list[dict]:
    return [
        simulator.world.upsert_product(
            handle,
            {
                "title": f"Product {index}",
                "handle": f"product-{index}",
                "body_html": f"<p>Number {index}</p>",
                "variants": [{"price": "10.00", "inventory_quantity": 3}],
                **extra,
            },
        )
        for index in range(count)
    ]


def test_install_leads_to_every_product_stored_and_embedded(
    simulator, install, django_capture_on_commit_callbacks
):
    add_products(simulator, "alpha", 30)
    store = install("alpha")
    with django_capture_on_commit_callbacks(execute=False) as queued:
        store_tasks.after_install(store.pk)  # fires the install hook → sync requested
    assert CatalogSync.objects.get(store=store).state == CatalogSync.State.QUEUED
    assert len(queued) == 1

    tasks.sync_catalog(store.pk)

    sync = CatalogSync.objects.get(store=store)
    assert sync.state == CatalogSync.State.DONE
    assert sync.products_seen == 32
    assert Product.objects.filter(store=store).count() == 32
    assert not Product.objects.filter(store=store, eligible=True, vector__isnull=True).exists()
    assert sync.embeddings_total == 32


def test_page_sync_reads_in_pages_within_the_cost_budget(simulator, install, settings):
    settings.RECOMMENDER_PAGE_SIZE = 10
    add_products(simulator, "alpha", 45)
    store = install("alpha")

    sync = catalog_sync.sync_catalog(store)

    assert sync.mode == "pages"
    assert Product.objects.filter(store=store).count() == 47
    # productsCount + 5 pages + shop details untouched: no request was throttled
    assert simulator.shop("alpha").graphql_requests == 1 + 5


def test_large_catalog_uses_a_bulk_operation(simulator, install, settings):
    settings.RECOMMENDER_BULK_THRESHOLD = 20
    add_products(simulator, "alpha", 40)
    store = install("alpha")

    sync = catalog_sync.sync_catalog(store)

    assert sync.mode == "bulk"
    assert sync.state == CatalogSync.State.DONE
    assert sync.bulk_operation_id.startswith("gid://shopify/BulkOperation/")
    assert Product.objects.filter(store=store).count() == 42


def test_resync_of_an_unchanged_catalog_embeds_nothing(simulator, install):
    add_products(simulator, "alpha", 10)
    store = install("alpha")
    catalog_sync.sync_catalog(store)
    vectors = dict(Product.objects.values_list("pk", "vector"))

    catalog_sync.sync_catalog(store)

    sync = CatalogSync.objects.get(store=store)
    assert sync.embeddings_total == 12
    assert dict(Product.objects.values_list("pk", "vector")) == vectors


def test_ineligible_products_are_kept_and_marked_not_embedded(simulator, install):
    world = simulator.world
    cases = {
        "draft": {"status": "draft"},
        "archived": {"status": "archived"},
        "unpublished": {"published": False},
        "gift card": {"is_gift_card": True},
        "free": {"variants": [{"price": "0.00", "inventory_quantity": 5}]},
        "out of stock": {"variants": [{"price": "9.00", "inventory_quantity": 0}]},
    }
    for reason, change in cases.items():
        world.upsert_product(
            "alpha",
            {
                "title": f"Case {reason}",
                "handle": reason.replace(" ", "-"),
                "variants": [{"price": "5.00", "inventory_quantity": 2}],
                **change,
            },
        )
    store = install("alpha")

    catalog_sync.sync_catalog(store)

    reasons = dict(
        Product.objects.filter(store=store, eligible=False).values_list(
            "title", "ineligible_reason"
        )
    )
    assert reasons == {f"Case {reason}": reason for reason in cases}
    assert not Product.objects.filter(eligible=False, vector__isnull=False).exists()


def test_awkward_products_are_stored_safely(simulator, install):
    world = simulator.world
    world.upsert_product(
        "alpha",
        {"title": "", "handle": "untitled", "body_html": "", "variants": [{"price": "3.00"}]},
    )
    world.upsert_product(
        "alpha",
        {
            "title": "Long one",
            "handle": "long",
            "body_html": "<p>" + "word " * 20000 + "</p>",
            "variants": [{"price": "3.00"}],
        },
    )
    world.upsert_product(
        "alpha",
        {
            "title": '<img src=x onerror="alert(1)">Grinder',
            "handle": "xss",
            "body_html": "<script>alert(1)</script><b>Bold</b> claims",
            "variants": [{"price": "3.00"}],
        },
    )
    world.upsert_product(
        "alpha",
        {"title": "抹茶 ☕️ Matcha über café", "handle": "matcha", "variants": [{"price": "3.00"}]},
    )
    world.upsert_product(
        "alpha", {"title": "Twin A", "handle": "twin", "variants": [{"price": "3.00"}]}
    )
    world.upsert_product(
        "alpha", {"title": "Twin B", "handle": "twin", "variants": [{"price": "3.00"}]}
    )
    store = install("alpha")

    sync = catalog_sync.sync_catalog(store)

    assert sync.state == CatalogSync.State.DONE
    products = {p.handle + ":" + p.title: p for p in Product.objects.filter(store=store)}
    untitled = products["untitled:"]
    assert (untitled.eligible, untitled.ineligible_reason) == (False, "no title")
    long_one = products["long:Long one"]
    assert len(long_one.description) <= 5000
    xss = products['xss:<img src=x onerror="alert(1)">Grinder']
    assert "<script>" not in xss.description and "alert(1) Bold claims" in xss.description
    assert products["matcha:抹茶 ☕️ Matcha über café"].eligible
    assert {"twin:Twin A", "twin:Twin B"} <= set(products)


def test_a_product_with_text_no_column_can_hold_is_stored_with_it_replaced(simulator, install):
    # JSON carries a NUL and a lone surrogate as \\u0000 and \\ud800: PostgreSQL refused
    # the row, and the store's every sync failed on that one product.
    simulator.world.upsert_product(
        "alpha",
        {"title": "Mug\x00 Blue \ud800", "handle": "mug", "body_html": "<p>Glazed\x00 \udfff</p>",
         "vendor": "Pot\x00ter", "tags": ["a\x00"], "variants": [{"price": "3.00"}]},
    )  # fmt: skip
    store = install("alpha")

    sync = catalog_sync.sync_catalog(store)

    assert sync.state == CatalogSync.State.DONE
    mug = Product.objects.get(store=store, handle="mug")
    assert (mug.title, mug.vendor, mug.tags) == (
        "Mug\ufffd Blue \ufffd",
        "Pot\ufffdter",
        ["a\ufffd"],
    )
    assert mug.description == "Glazed\ufffd \ufffd"
    assert mug.eligible


def test_a_product_no_column_can_hold_does_not_stop_the_stores_sync(simulator, install):
    # One product priced past what the price columns hold (a placeholder price, or an
    # item in a currency of large numbers), one priced "NaN", one whose id is past 64 bits:
    # each failed the batch it was in, so every sync of the store failed there, and was
    # retried every half hour without getting past it.
    normal = add_products(simulator, "alpha", 3)
    world = simulator.world
    for handle, price in (("placeholder", "100000000000.00"), ("nan", "NaN")):
        world.upsert_product(
            "alpha", {"title": f"Odd {handle}", "handle": handle, "variants": [{"price": price}]}
        )
    # One variant at a placeholder price: the product is still sold at its lowest.
    world.upsert_product(
        "alpha",
        {"title": "Mixed", "handle": "mixed",
         "variants": [{"price": "5.00"}, {"price": "100000000000.00"}]},
    )  # fmt: skip
    world.upsert_product(
        "alpha",
        {"id": 2**63, "title": "Far id", "handle": "far", "variants": [{"price": "5.00"}]},
    )
    store = install("alpha")

    sync = catalog_sync.sync_catalog(store)

    assert sync.state == CatalogSync.State.DONE
    stored = {p.handle: p for p in Product.objects.filter(store=store)}
    assert {p["handle"] for p in normal} <= set(stored)
    assert all(stored[p["handle"]].eligible for p in normal)
    for handle in ("placeholder", "nan"):
        assert (stored[handle].eligible, stored[handle].ineligible_reason) == (
            False,
            "price out of range",
        )
    assert "far" not in stored
    assert (stored["mixed"].eligible, stored["mixed"].price_min) == (True, Decimal("5.00"))


@pytest.mark.parametrize(
    ("node", "kept"),
    [(None, False), ([], False), ("gid://shopify/Product/1", False), (7, False),
     ({"id": "gid://shopify/Product/2", "title": "Stock", "totalInventory": 1e400,
       "tracksInventory": True, "status": "ACTIVE"}, False),
     ({"id": "gid://shopify/Product/-4", "title": "Negative id", "status": "ACTIVE"}, False),
     ({"id": "gid://shopify/Product/9223372036854775808", "title": "Far", "status": "ACTIVE"},
      False),
     # Kept, without the time no column holds.
     ({"id": "gid://shopify/Product/3", "title": "Year 0", "status": "ACTIVE",
       "updatedAt": "0001-01-01T00:30:00+01:00"}, True)],
)  # fmt: skip
def test_an_odd_node_in_a_batch_is_skipped_or_kept_and_the_rest_stored(
    simulator, install, node, kept
):
    # Before, each of these failed the whole batch (a KeyError, an OverflowError, a value
    # the database refused) or, for the ids, was stored as no product of Shopify's is.
    store = install("alpha")
    sync = CatalogSync.objects.create(store=store, state=CatalogSync.State.RUNNING)
    good = {"id": "gid://shopify/Product/10", "title": "Good", "status": "ACTIVE",
            "onlineStoreUrl": "https://alpha.example/products/good",
            "priceRangeV2": {"minVariantPrice": {"amount": "5.00", "currencyCode": "USD"},
                             "maxVariantPrice": {"amount": "5.00", "currencyCode": "USD"}}}  # fmt: skip

    upsert_products(store, sync, [node, good])

    assert Product.objects.get(store=store, shopify_id=10).eligible
    others = list(Product.objects.filter(store=store).exclude(shopify_id=10))
    assert len(others) == (1 if kept else 0)
    assert all(p.shopify_updated_at is None for p in others)


def test_a_page_that_gives_no_next_cursor_fails_the_sync_rather_than_loop(
    simulator, install, settings
):
    # "More follow" with no cursor: the sync asked for the same page again and again,
    # spending the shop's API budget until the task's timeout, and every retry did the same.
    settings.RECOMMENDER_PAGE_SIZE = 10
    add_products(simulator, "alpha", 25)
    store = install("alpha")
    simulator.fault("alpha", "graphql", "stuck-page", after=2)  # the count, one page, then

    failed = catalog_sync.sync_catalog(store)

    assert failed.state == CatalogSync.State.FAILED
    assert "no next page" in failed.last_error
    assert failed.products_seen == 10
    resumed = catalog_sync.sync_catalog(store)
    assert resumed.state == CatalogSync.State.DONE
    assert Product.objects.filter(store=store).count() == len(
        simulator.world.shops["alpha"].products
    )


def test_a_query_error_with_text_no_column_holds_is_recorded_as_the_syncs_failure(
    simulator, install, monkeypatch
):
    # Shopify's error message went into last_error as it was: PostgreSQL refused the NUL
    # inside the failure handling, and the sync was left "running" with no error shown.
    monkeypatch.setattr(pacer, "MAX_SHOPIFY_RETRIES", 0)
    add_products(simulator, "alpha", 5)
    store = install("alpha")
    simulator.fault("alpha", "graphql", "error-text")

    failed = catalog_sync.sync_catalog(store)

    assert failed.state == CatalogSync.State.FAILED
    stored = CatalogSync.objects.get(pk=failed.pk)
    assert stored.state == CatalogSync.State.FAILED
    assert "Internal error\ufffd in \ufffd field" in stored.last_error


def test_malformed_json_fails_the_sync_and_the_next_run_resumes_from_the_cursor(
    simulator, install, settings, monkeypatch
):
    settings.RECOMMENDER_PAGE_SIZE = 10
    monkeypatch.setattr(pacer, "MAX_SHOPIFY_RETRIES", 0)
    add_products(simulator, "alpha", 28)
    store = install("alpha")
    # The count query and two pages go through; the third page comes back malformed.
    simulator.fault("alpha", "graphql", "malformed", after=3)
    failed = catalog_sync.sync_catalog(store)
    assert failed.state == CatalogSync.State.FAILED
    assert "malformed" in failed.last_error
    assert failed.cursor and failed.products_seen == 20
    requests_before = simulator.shop("alpha").graphql_requests

    resumed = catalog_sync.sync_catalog(store)

    assert resumed.state == CatalogSync.State.DONE
    assert resumed.products_seen == 30
    # The count query and the third page only, not the first pages again.
    assert simulator.shop("alpha").graphql_requests - requests_before == 2
    assert Product.objects.filter(store=store).count() == 30


def test_throttling_and_outage_mid_sync_are_waited_out(simulator, install, settings):
    settings.RECOMMENDER_PAGE_SIZE = 10
    add_products(simulator, "alpha", 18)
    store = install("alpha")
    simulator.fault("alpha", "graphql", "throttled")
    simulator.fault("alpha", "graphql", "502")

    sync = catalog_sync.sync_catalog(store)

    assert sync.state == CatalogSync.State.DONE
    assert Product.objects.filter(store=store).count() == 20


def test_token_expiring_mid_sync_is_refreshed_and_the_sync_continues(simulator, install, settings):
    settings.RECOMMENDER_PAGE_SIZE = 10
    add_products(simulator, "alpha", 18)
    store = install("alpha")
    simulator.fault("alpha", "graphql", "expire-tokens", after=2)  # after the first page

    sync = catalog_sync.sync_catalog(store)

    assert sync.state == CatalogSync.State.DONE
    assert "refresh_token" in simulator.shop("alpha").token_requests
    assert Product.objects.filter(store=store).count() == 20


def test_shop_uninstalled_mid_sync_stops_the_sync(simulator, install, settings):
    settings.RECOMMENDER_PAGE_SIZE = 10
    add_products(simulator, "alpha", 28)
    store = install("alpha")
    simulator.fault("alpha", "graphql", "uninstall", after=2)  # after the first page

    sync = catalog_sync.sync_catalog(store)

    assert sync.state == CatalogSync.State.FAILED
    assert sync.last_error
    # Shopify revoked the tokens: the store leaves the exchange until the merchant is back.
    assert Store.objects.get(pk=store.pk).status == Store.Status.NEEDS_REAUTH
    assert Product.objects.filter(store=store).count() == 10


def test_store_uninstalled_while_its_sync_waits_stops_before_the_next_page(
    simulator, install, settings
):
    settings.RECOMMENDER_PAGE_SIZE = 10
    add_products(simulator, "alpha", 28)
    store = install("alpha")
    Store.objects.filter(pk=store.pk).update(status=Store.Status.UNINSTALLED)

    sync = catalog_sync.sync_catalog(store)

    assert sync.state == CatalogSync.State.FAILED
    assert "uninstalled" in sync.last_error
    assert Product.objects.filter(store=store).count() == 0


def test_a_reinstall_syncs_even_when_the_last_sync_was_left_queued(
    simulator, install, task_queue, django_capture_on_commit_callbacks
):
    # Uninstalled while its sync waited: the task found the store gone and left it queued.
    store = install("alpha")
    CatalogSync.objects.update_or_create(store=store, defaults={"state": CatalogSync.State.QUEUED})
    task_queue.mark()

    with django_capture_on_commit_callbacks(execute=True):
        store_tasks.after_install(store.pk)

    assert ("recommender.tasks.sync_catalog", (store.pk,)) in task_queue.new()


def test_product_deleted_mid_sync_is_removed_by_the_next_full_sync(simulator, install):
    products = add_products(simulator, "alpha", 5)
    store = install("alpha")
    catalog_sync.sync_catalog(store)
    simulator.world.delete_product("alpha", products[0]["id"])  # its webhook was lost

    catalog_sync.sync_catalog(store)

    assert not Product.objects.filter(shopify_id=products[0]["id"]).exists()
    assert Product.objects.filter(store=store).count() == 6


# --- product webhooks -------------------------------------------------------------------


def product_webhook(client, simulator, topic, product, event_id, triggered_at=None):
    return post_webhook(
        client,
        topic,
        product_payload(product) if "title" in product else product,
        event_id=event_id,
        triggered_at=triggered_at,
    )


def test_product_update_webhook_refreshes_the_product(client, simulator, install):
    store = install("alpha")
    catalog_sync.sync_catalog(store)
    product = simulator.world.upsert_product("alpha", {"id": 1000, "title": "Burr Grinder Deluxe"})

    product_webhook(client, simulator, "products/update", product, "e1")
    webhooks.process_pending()
    embedding_pass.embed_store(store)

    stored = Product.objects.get(store=store, shopify_id=1000)
    assert stored.title == "Burr Grinder Deluxe"
    assert stored.embedded_hash == stored.content_hash


def test_product_create_and_delete_webhooks(client, simulator, install):
    store = install("alpha")
    created = simulator.world.upsert_product(
        "alpha", {"title": "New Kettle", "handle": "kettle", "variants": [{"price": "30.00"}]}
    )
    product_webhook(client, simulator, "products/create", created, "c1")
    webhooks.process_pending()
    assert Product.objects.filter(store=store, shopify_id=created["id"]).exists()

    simulator.world.delete_product("alpha", created["id"])
    product_webhook(client, simulator, "products/delete", {"id": created["id"]}, "d1")
    webhooks.process_pending()

    assert not Product.objects.filter(store=store, shopify_id=created["id"]).exists()


def test_a_product_deleted_in_the_shop_no_longer_waits_to_be_kept_off(client, simulator, install):
    store = install("alpha")
    created = simulator.world.upsert_product(
        "alpha", {"title": "New Kettle", "handle": "kettle", "variants": [{"price": "30.00"}]}
    )
    # The merchant chose it before any sync read it; then deleted it in Shopify.
    controls.set_products_opted_out(
        store=store, actor="1", shopify_ids=[created["id"]], opted_out=True
    )
    simulator.world.delete_product("alpha", created["id"])
    product_webhook(client, simulator, "products/delete", {"id": created["id"]}, "d1")
    webhooks.process_pending()

    assert not PendingOptOut.objects.filter(store=store).exists()  # no place taken for good


def test_burst_of_updates_queues_one_embedding(
    client, simulator, install, django_capture_on_commit_callbacks, task_queue
):
    store = install("alpha")
    catalog_sync.sync_catalog(store)
    before = CatalogSync.objects.get(store=store).embeddings_total
    task_queue.mark()
    with django_capture_on_commit_callbacks(execute=True):
        for version in range(5):
            product = simulator.world.upsert_product(
                "alpha", {"id": 1000, "title": f"Grinder v{version}"}
            )
            product_webhook(client, simulator, "products/update", product, f"burst-{version}")
            webhooks.process_pending()

    tasks.embed_store(store.pk)

    embeddings = [func for func, _ in task_queue.new() if func.startswith("recommender.")]
    assert embeddings == ["recommender.tasks.embed_store"]
    assert CatalogSync.objects.get(store=store).embeddings_total == before + 1
    assert Product.objects.get(store=store, shopify_id=1000).title == "Grinder v4"


def _shopify_time(moment) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


def test_an_update_is_judged_stale_on_shopifys_clock_not_ours(client, simulator, install):
    """Our clock three minutes behind Shopify's (a broken NTP): two edits 30 s apart must
    both be applied. A delivery is stale only when the product it carries is older, on
    Shopify's own clock, than the one stored; the delivery's arrival time is on ours."""
    store = install("alpha")
    catalog_sync.sync_catalog(store)
    shop = simulator.world.shops["alpha"]
    first_edit = timezone.now() + timedelta(minutes=3)
    for n, edited in enumerate([first_edit, first_edit + timedelta(seconds=30)], start=1):
        simulator.world.upsert_product("alpha", {"id": 1000, "title": f"Grinder v{n}"})
        shop.products[1000]["updated_at"] = _shopify_time(edited)
        product_webhook(client, simulator, "products/update", shop.products[1000], f"u{n}",
                        triggered_at=edited.isoformat())  # fmt: skip
        webhooks.process_pending()

    assert Product.objects.get(store=store, shopify_id=1000).title == "Grinder v2"
    # ... while a delivery of an older version than the one stored is stale, on that clock.
    older = {**shop.products[1000], "title": "Grinder v1",
             "updated_at": _shopify_time(first_edit)}  # fmt: skip
    product_webhook(client, simulator, "products/update", older, "u1-again")
    webhooks.process_pending()
    late = WebhookDelivery.objects.get(event_id="u1-again")
    assert late.outcome == "stale: stored product is newer"
    assert Product.objects.get(store=store, shopify_id=1000).title == "Grinder v2"


def test_out_of_order_delete_then_update_does_not_resurrect(client, simulator, install):
    store = install("alpha")
    catalog_sync.sync_catalog(store)
    product = simulator.world.shops["alpha"].products[1000]
    simulator.world.delete_product("alpha", 1000)

    product_webhook(client, simulator, "products/delete", {"id": 1000}, "late-delete")
    product_webhook(
        client,
        simulator,
        "products/update",
        product,
        "early-update",
        triggered_at="2020-01-01T00:00:00Z",
    )
    webhooks.process_pending()

    assert not Product.objects.filter(store=store, shopify_id=1000).exists()


def test_reconcile_resumes_lost_syncs_and_unfinished_embeddings(
    simulator, install, task_queue, django_capture_on_commit_callbacks
):
    never_synced = install("alpha")
    lost = install("beta")
    catalog_sync.sync_catalog(lost)
    CatalogSync.objects.filter(store=lost).update(state=CatalogSync.State.QUEUED)
    CatalogSync.objects.filter(store=lost).update(updated_at=timezone.now() - timedelta(hours=1))
    task_queue.mark()

    with django_capture_on_commit_callbacks(execute=True):
        resumed = catalog_sync.resume_stalled_syncs(older_than=timedelta(minutes=30))

    assert resumed == 2
    assert sorted(task_queue.new()) == sorted(
        [
            ("recommender.tasks.sync_catalog", (never_synced.pk,)),
            ("recommender.tasks.sync_catalog", (lost.pk,)),
        ]
    )


def test_reconcile_requests_embedding_when_a_pass_was_cut_short(
    simulator, install, task_queue, django_capture_on_commit_callbacks
):
    store = install("alpha")
    catalog_sync.sync_catalog(store)
    Product.objects.filter(store=store).update(embedded_hash="")  # the worker died mid-pass
    task_queue.mark()

    with django_capture_on_commit_callbacks(execute=True):
        catalog_sync.resume_stalled_syncs(older_than=timedelta(minutes=30))

    assert task_queue.new() == [("recommender.tasks.embed_store", (store.pk,))]


def test_catalog_too_costly_for_the_bucket_is_read_in_one_bulk_operation(simulator, install):
    # 300 products cost 2,400 points in pages, more than the 2,000 a full bucket holds.
    add_products(simulator, "alpha", 300)
    store = install("alpha")

    sync = catalog_sync.sync_catalog(store)

    assert sync.mode == "bulk"
    assert Product.objects.filter(store=store).count() == 302
    # productsCount, the bulk mutation, its status polls; no product page
    assert simulator.shop("alpha").graphql_requests < 10


def test_catalog_the_bucket_pays_for_is_read_in_pages(simulator, install):
    add_products(simulator, "alpha", 200)  # 1,600 points of the 2,000 available
    store = install("alpha")

    sync = catalog_sync.sync_catalog(store)

    assert sync.mode == "pages"
    assert Product.objects.filter(store=store).count() == 202
    assert simulator.shop("alpha").graphql_requests == 1 + 3  # pages of 100, 100, 2


@pytest.mark.django_db(transaction=True)
def test_products_are_embedded_while_the_catalog_is_read_and_each_once(
    simulator, install, settings, caplog
):
    settings.RECOMMENDER_BULK_THRESHOLD = 20
    add_products(simulator, "alpha", 3 * catalog_sync.BULK_BATCH)
    store = install("alpha")
    caplog.set_level("INFO", logger="recommender.catalog.embedding_pass")

    sync = catalog_sync.sync_catalog(store)

    assert sync.mode == "bulk"
    eligible = Product.objects.filter(store=store, eligible=True)
    assert not eligible.exclude(embedded_hash=F("content_hash")).exists()
    assert CatalogSync.objects.get(store=store).embeddings_total == eligible.count()
    alongside = [r for r in caplog.records if r.threadName.startswith("embed-alongside")]
    assert alongside, "nothing was embedded before the read ended"


@pytest.mark.django_db(transaction=True)
def test_embedding_pass_pairs_every_vector_with_its_product_and_catches_changes_behind_it(
    simulator, install, monkeypatch
):
    """The pass reads the next batch while one is encoded: each product still gets the
    vector of its own text, and a product edited while the pass has gone past it is
    embedded again (its new text) before the pass ends."""
    add_products(simulator, "alpha", 7)
    store = install("alpha")
    catalog_sync.sync_catalog(store)
    Product.objects.filter(store=store).update(embedded_hash="")  # all pending again
    first = Product.objects.filter(store=store, eligible=True).order_by("pk").first()
    real = embedding.HashEmbedder()
    calls = []

    class EditsTheFirstProductMidPass:
        name = "hash"

        def encode(self, texts):
            calls.append(len(texts))
            if len(calls) == 2:  # the first batch is encoded: the pass is past it
                fields = {**Product.objects.filter(pk=first.pk).values()[0], "title": "Renamed"}
                Product.objects.filter(pk=first.pk).update(
                    title="Renamed",
                    content_hash=embedding.content_hash(embedding_text(fields)),
                )
                connection.close()  # this helper thread's own connection
            return real.encode(texts)

    monkeypatch.setattr(embedding_pass, "get_embedder", EditsTheFirstProductMidPass)

    done = embedding_pass.embed_store(store, batch=2)

    eligible = list(Product.objects.filter(store=store, eligible=True).order_by("pk"))
    assert len(calls) == -(-len(eligible) // 2) + 1  # batches of 2, and one for the edit
    assert done == len(eligible) + 1
    for product in eligible:
        assert product.embedded_hash == product.content_hash
        expected = real.encode([embedding_text(product.__dict__)])[0]
        assert np.array_equal(np.frombuffer(product.vector, dtype=np.float32), expected)
    assert eligible[0].title == "Renamed"


# --- interleavings, made exact with the simulator's "hold" fault --------------------------


def sync_in_thread(store) -> threading.Thread:
    """A catalog sync on a thread of its own (its own database connection), as a worker's."""

    def run() -> None:
        try:
            catalog_sync.sync_catalog(store)
        finally:
            connection.close()

    thread = threading.Thread(target=run)
    thread.start()
    return thread


def wait_for_held(simulator, handle: str, count: int = 1) -> None:
    deadline = time.monotonic() + 10
    while len(simulator.shop(handle).faults.held) < count:
        assert time.monotonic() < deadline, "the request was never held"
        time.sleep(0.01)


@pytest.mark.django_db(transaction=True)
def test_a_bulk_result_older_than_a_webhook_does_not_overwrite_the_webhooks_product(
    client, simulator, install, settings
):
    """A bulk operation's file is a snapshot; the product was drafted, and its webhook
    applied, after Shopify took it and before the sync stored it."""
    settings.RECOMMENDER_BULK_THRESHOLD = 1
    settings.SHOPIFY_HTTP_TIMEOUT = 10
    store = install("alpha")
    for product in simulator.shop("alpha").products.values():
        product["updated_at"] = "2026-01-01T00:00:00Z"  # last edited long before this sync
    # productsCount and bulkOperationRunQuery go through; the first status poll waits.
    simulator.fault("alpha", "graphql", "hold", after=2)
    syncing = sync_in_thread(store)
    wait_for_held(simulator, "alpha")
    drafted = simulator.world.upsert_product("alpha", {"id": 1000, "status": "draft"})
    product_webhook(client, simulator, "products/update", drafted, "drafted-mid-sync")
    webhooks.process_pending()
    assert Product.objects.get(store=store, shopify_id=1000).status == "DRAFT"

    simulator.control("alpha", "release")
    syncing.join(timeout=30)

    assert CatalogSync.objects.get(store=store).state == CatalogSync.State.DONE
    stored = Product.objects.get(store=store, shopify_id=1000)
    assert (stored.status, stored.eligible) == ("DRAFT", False)


@pytest.mark.django_db(transaction=True)
def test_two_syncs_of_a_store_at_once_delete_nothing_shopify_still_has(
    simulator, install, settings
):
    """A sync requested while one runs (a reinstall requeues it, an operator's --now, a
    second worker taking a requeued task): the earlier one, behind, reads a page the later
    one read already; the later one must not then take those products for deleted."""
    settings.RECOMMENDER_PAGE_SIZE = 10
    settings.SHOPIFY_HTTP_TIMEOUT = 10
    add_products(simulator, "alpha", 25)
    store = install("alpha")
    catalog_sync.sync_catalog(store)
    simulator.fault("alpha", "graphql", "hold", after=1)  # the first sync's first page
    behind = sync_in_thread(store)
    wait_for_held(simulator, "alpha")
    simulator.fault("alpha", "graphql", "hold", after=2)  # the second sync's second page
    ahead = sync_in_thread(store)
    wait_for_held(simulator, "alpha", count=2)

    simulator.control("alpha", "release")  # the first sync reads all its pages and ends
    behind.join(timeout=30)
    simulator.control("alpha", "release")
    ahead.join(timeout=30)

    assert Product.objects.filter(store=store).count() == 27


def test_connection_reset_mid_bulk_download_fails_the_sync_with_a_reason(
    simulator, install, settings
):
    settings.RECOMMENDER_BULK_THRESHOLD = 20
    add_products(simulator, "alpha", 200)
    store = install("alpha")
    simulator.fault("alpha", "bulk", "reset")

    sync = catalog_sync.sync_catalog(store)

    # Not left "running" (a sync refused to the merchant until reconciliation's next pass)
    assert sync.state == CatalogSync.State.FAILED
    assert CatalogSync.objects.get(store=store).state == CatalogSync.State.FAILED
    assert "bulk result download" in sync.last_error
    assert catalog_sync.sync_catalog(store).state == CatalogSync.State.DONE
    assert Product.objects.filter(store=store).count() == 202
    # The file was read again; the export was not started again.
    assert len(simulator.shop("alpha").bulk_operations) == 1


def wait_for_requests(simulator, handle: str, count: int, thread: threading.Thread) -> None:
    deadline = time.monotonic() + 10
    while simulator.shop(handle).graphql_requests < count and thread.is_alive():
        assert time.monotonic() < deadline, "the sync made no Admin API requests"
        time.sleep(0.01)


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("id_kept", [True, False], ids=["id-kept", "id-lost"])
def test_a_bulk_read_longer_than_its_task_is_followed_on_the_next_run_not_started_again(
    simulator, install, settings, id_kept
):
    """A large catalog's export can outlast the task's timeout (30 minutes): the worker is
    killed and reconciliation queues the sync again. Shopify refuses a second bulk query
    while the app's first runs on the shop, and one started afresh would be cut off at
    the same point: the catalog would never be read. The next run follows the operation
    the killed one started; ``id-lost``: killed before it kept the operation's id, it
    finds it as the shop's current bulk operation."""
    settings.RECOMMENDER_BULK_THRESHOLD = 1
    settings.SHOPIFY_HTTP_TIMEOUT = 10
    add_products(simulator, "alpha", 30)
    store = install("alpha")
    simulator.control("alpha", "bulk", running=True)  # the export takes hours
    started = pacer.Pacer(store).call(
        catalog_sync.BULK_RUN_MUTATION, {"query": catalog_sync.BULK_INNER_QUERY}
    )
    operation = started.data["bulkOperationRunQuery"]["bulkOperation"]["id"]
    # As the killed task left it: "running" since it started the operation.
    CatalogSync.objects.update_or_create(store=store, defaults={
        "state": CatalogSync.State.RUNNING, "mode": "bulk" if id_kept else "",
        "bulk_operation_id": operation if id_kept else "", "generation": 1,
        "started_at": timezone.now() - timedelta(minutes=31),
    })  # fmt: skip
    requests = simulator.shop("alpha").graphql_requests
    syncing = sync_in_thread(store)  # the task queued again
    wait_for_requests(simulator, "alpha", requests + 4, syncing)  # polling, not refused

    simulator.control("alpha", "bulk", running=False)  # the export completes
    syncing.join(timeout=30)

    sync = CatalogSync.objects.get(store=store)
    assert sync.state == CatalogSync.State.DONE, sync.last_error
    assert sync.bulk_operation_id == operation
    assert [op["id"] for op in simulator.shop("alpha").bulk_operations] == [operation]
    assert Product.objects.filter(store=store).count() == 32


def test_a_failed_page_read_resumes_its_pages_not_an_earlier_bulk_export(
    simulator, install, settings, monkeypatch
):
    """A store read in bulk once, then in pages (its catalog now small enough), whose page
    read failed: its next run goes on from its cursor. The earlier export's id, left on the
    row by the release before this one (which never cleared it), is no unfinished read of
    this attempt's."""
    settings.RECOMMENDER_BULK_THRESHOLD = 1
    store = install("alpha")
    assert catalog_sync.sync_catalog(store).state == CatalogSync.State.DONE
    earlier_export = CatalogSync.objects.get(store=store).bulk_operation_id
    settings.RECOMMENDER_BULK_THRESHOLD = 10_000
    settings.RECOMMENDER_PAGE_SIZE = 10
    add_products(simulator, "alpha", 25)
    monkeypatch.setattr(pacer, "MAX_SHOPIFY_RETRIES", 0)
    simulator.fault("alpha", "graphql", "500", after=3)  # the third page
    assert catalog_sync.sync_catalog(store).state == CatalogSync.State.FAILED
    assert CatalogSync.objects.get(store=store).cursor  # a place to go on from
    CatalogSync.objects.filter(store=store).update(bulk_operation_id=earlier_export)

    catalog_sync.request_sync(store)
    sync = catalog_sync.sync_catalog(store)

    assert (sync.state, sync.mode) == (CatalogSync.State.DONE, "pages")
    assert Product.objects.filter(store=store).count() == 27
    assert len(simulator.shop("alpha").bulk_operations) == 1  # the first sync's alone


def test_a_finished_bulk_read_is_not_followed_by_the_next_sync(simulator, install, settings):
    """Its file is a snapshot of back then: the next sync (the weekly re-read, the merchant's
    "Sync now") and one queued afresh (a reinstall) start an export of their own."""
    settings.RECOMMENDER_BULK_THRESHOLD = 1
    store = install("alpha")
    assert catalog_sync.sync_catalog(store).state == CatalogSync.State.DONE
    add_products(simulator, "alpha", 3)
    catalog_sync.request_sync(store)
    assert catalog_sync.sync_catalog(store).state == CatalogSync.State.DONE
    assert Product.objects.filter(store=store).count() == 5

    add_products(simulator, "alpha", 2)
    simulator.fault("alpha", "bulk", "reset")  # this read's download breaks off
    assert catalog_sync.sync_catalog(store).state == CatalogSync.State.FAILED
    catalog_sync.request_sync(store, afresh=True)
    assert catalog_sync.sync_catalog(store).state == CatalogSync.State.DONE

    assert Product.objects.filter(store=store).count() == 7
    assert len(simulator.shop("alpha").bulk_operations) == 4


@pytest.mark.django_db(transaction=True)
def test_a_product_deleted_while_a_bulk_sync_runs_is_not_brought_back(
    client, simulator, install, settings
):
    settings.RECOMMENDER_BULK_THRESHOLD = 1
    settings.SHOPIFY_HTTP_TIMEOUT = 10
    store = install("alpha")
    catalog_sync.sync_catalog(store)
    # productsCount and bulkOperationRunQuery go through; the first status poll waits.
    simulator.fault("alpha", "graphql", "hold", after=2)
    syncing = sync_in_thread(store)
    wait_for_held(simulator, "alpha")
    simulator.world.delete_product("alpha", 1000)
    product_webhook(client, simulator, "products/delete", {"id": 1000}, "deleted-mid-sync")
    webhooks.process_pending()
    assert not Product.objects.filter(store=store, shopify_id=1000).exists()

    simulator.control("alpha", "release")
    syncing.join(timeout=30)

    assert CatalogSync.objects.get(store=store).state == CatalogSync.State.DONE
    assert not Product.objects.filter(store=store, shopify_id=1000).exists()


def test_a_failed_page_sync_requeued_by_reconciliation_resumes_from_its_cursor(
    simulator, install, settings, monkeypatch, django_capture_on_commit_callbacks
):
    settings.RECOMMENDER_PAGE_SIZE = 10
    monkeypatch.setattr(pacer, "MAX_SHOPIFY_RETRIES", 0)
    add_products(simulator, "alpha", 28)
    store = install("alpha")
    simulator.fault("alpha", "graphql", "500", after=3)  # the third page
    assert catalog_sync.sync_catalog(store).state == CatalogSync.State.FAILED
    CatalogSync.objects.filter(store=store).update(updated_at=timezone.now() - timedelta(hours=1))
    with django_capture_on_commit_callbacks(execute=False):
        catalog_sync.resume_stalled_syncs(older_than=timedelta(minutes=30))
    requests_before = simulator.shop("alpha").graphql_requests

    tasks.sync_catalog(store.pk)  # the task reconciliation queued

    assert CatalogSync.objects.get(store=store).state == CatalogSync.State.DONE
    assert simulator.shop("alpha").graphql_requests - requests_before == 2


def test_a_reinstall_reads_the_catalog_from_its_first_page_despite_a_failed_read(
    simulator, install, settings, monkeypatch, task_queue, django_capture_on_commit_callbacks
):
    """Its webhooks were turned away while it was gone: the pages the failed read had
    done hold what changed since, and the read after the reinstall must not skip them."""
    settings.RECOMMENDER_PAGE_SIZE = 10
    monkeypatch.setattr(pacer, "MAX_SHOPIFY_RETRIES", 0)
    add_products(simulator, "alpha", 28)
    store = install("alpha")
    simulator.fault("alpha", "graphql", "500", after=3)  # the third page
    assert catalog_sync.sync_catalog(store).state == CatalogSync.State.FAILED
    simulator.world.upsert_product("alpha", {"id": 1000, "title": "Renamed while away"})
    task_queue.mark()
    with django_capture_on_commit_callbacks(execute=True):
        store_tasks.after_install(store.pk)  # the reinstall
    requests_before = simulator.shop("alpha").graphql_requests

    tasks.sync_catalog(store.pk)

    assert ("recommender.tasks.sync_catalog", (store.pk,)) in task_queue.new()
    assert CatalogSync.objects.get(store=store).state == CatalogSync.State.DONE
    assert simulator.shop("alpha").graphql_requests - requests_before >= 4  # every page
    assert Product.objects.get(store=store, shopify_id=1000).title == "Renamed while away"


@pytest.mark.django_db(transaction=True)
def test_two_syncs_that_fail_at_once_resume_with_one_runs_cursor_and_generation(
    simulator, install, settings, monkeypatch
):
    """Two reads of a store at once (a requeued task beside a running one), both failed by
    one Shopify outage: each wrote its cursor to the one CatalogSync row, and the row's
    generation is the later one's. Resumed (Sync now, reconciliation), a read must not go
    on from one run's cursor under the other's generation: the pages in between were seen
    under neither, and their products were taken for deleted."""
    settings.RECOMMENDER_PAGE_SIZE = 10
    settings.SHOPIFY_HTTP_TIMEOUT = 10
    monkeypatch.setattr(pacer, "MAX_SHOPIFY_RETRIES", 0)
    add_products(simulator, "alpha", 28)
    store = install("alpha")
    catalog_sync.sync_catalog(store)
    assert Product.objects.filter(store=store).count() == 30
    simulator.fault("alpha", "graphql", "hold", after=1)  # the first sync's first page
    behind = sync_in_thread(store)
    wait_for_held(simulator, "alpha")
    simulator.fault("alpha", "graphql", "500", after=2)  # the second sync's second page
    ahead = sync_in_thread(store)
    ahead.join(timeout=30)
    simulator.fault("alpha", "graphql", "500", after=1)  # the first sync's third page
    simulator.control("alpha", "release")
    behind.join(timeout=30)
    assert CatalogSync.objects.get(store=store).state == CatalogSync.State.FAILED

    catalog_sync.request_sync(store)  # the merchant's Sync now
    assert catalog_sync.sync_catalog(store).state == CatalogSync.State.DONE

    assert Product.objects.filter(store=store).count() == 30


@pytest.mark.django_db(transaction=True)
def test_vectors_reach_the_index_even_when_their_events_could_not_be_written(
    simulator, install, private_index
):
    """The database refuses the index events of an embedding batch (a full disk; or the
    worker killed between the two writes): the vectors must not stay saved unannounced,
    where no pass would embed them again and no process would ever index them. Saved and
    announced together, the next pass does both."""
    if connection.vendor != "postgresql":
        pytest.fail("the refused insert is a PostgreSQL trigger (scripts/pg.sh)")
    store = install("alpha")
    index_events.rebuild_index()
    refuse("refuse_index_event", on="INSERT ON recommender_indexevent", message="disk full")
    with pytest.raises(Exception, match="disk full"):
        catalog_sync.sync_catalog(store)
    stop_refusing("refuse_index_event", table="recommender_indexevent")

    embedding_pass.embed_store(store)

    index = live_index.current(refresh=True)
    products = Product.objects.filter(store=store)
    assert products.exists() and not products.filter(vector__isnull=True).exists()
    assert [p.pk for p in products if index.vector(p.pk) is None] == []


def test_a_store_out_across_the_nightly_rebuild_is_back_in_the_index_when_it_returns(
    simulator, install, private_index, django_capture_on_commit_callbacks
):
    """The nightly rebuild indexes active stores only. A store frozen by Shopify across it,
    open again with its catalog unchanged, has a sync that changes nothing and so announces
    nothing: its products stayed out of every widget until the next night's rebuild."""

    alpha, beta = install("alpha"), install("beta")
    for store in (alpha, beta):
        catalog_sync.sync_catalog(store)
    index_events.rebuild_index()
    alpha_pks = list(Product.objects.filter(store=alpha).values_list("pk", flat=True))
    assert all(live_index.current(refresh=True).vector(pk) is not None for pk in alpha_pks)
    simulator.control("alpha", "close", status=402)
    services.reconcile_installs()
    # The nightly job, hours after the install's events.
    IndexEvent.objects.update(created_at=timezone.now() - timedelta(hours=3))
    index_events.rebuild_index()
    assert all(live_index.current(refresh=True).vector(pk) is None for pk in alpha_pks)

    simulator.control("alpha", "reopen")
    with django_capture_on_commit_callbacks(execute=True):
        services.reconcile_installs()
    with django_capture_on_commit_callbacks(execute=True):
        store_tasks.after_install(alpha.pk)
    tasks.sync_catalog(alpha.pk)
    tasks.embed_store(alpha.pk)

    index = live_index.current(refresh=True)
    assert [pk for pk in alpha_pks if index.vector(pk) is None] == []


def test_a_catalog_is_read_again_a_week_after_its_last_read(
    simulator, install, task_queue, django_capture_on_commit_callbacks
):
    """Webhooks are not a guarantee: Shopify gives up on a delivery after 8 tries over 4
    hours (an outage of ours that long), and one it never sent is never retried. With no
    read after the first, such a change stayed lost for good: a product deleted in the shop
    went on in partners' widgets. Each catalog is read again a week after its last read,
    a few stores per reconciliation run, the longest-unread first."""
    store, recent = install("alpha"), install("beta")
    catalog_sync.sync_catalog(store)
    catalog_sync.sync_catalog(recent)
    simulator.world.delete_product("alpha", 1001)  # its webhook never came
    week_ago = timezone.now() - catalog_sync.REREAD_AFTER - timedelta(hours=1)
    CatalogSync.objects.filter(store=store).update(finished_at=week_ago)
    task_queue.mark()

    with django_capture_on_commit_callbacks(execute=True):
        reread = catalog_sync.reread_old_catalogs()

    assert reread == 1
    assert task_queue.new() == [("recommender.tasks.sync_catalog", (store.pk,))]
    tasks.sync_catalog(store.pk)
    assert not Product.objects.filter(store=store, shopify_id=1001).exists()
    task_queue.mark()
    with django_capture_on_commit_callbacks(execute=True):
        assert catalog_sync.reread_old_catalogs() == 0  # read now: not again for a week
    assert task_queue.new() == []


@pytest.mark.django_db(transaction=True)
def test_a_sync_stopped_by_an_unexpected_error_says_it_failed_and_resumes(simulator, install):
    """Shopify's and the read's own errors were recorded as a failed sync; anything else
    (the database refusing a write, a response of a shape no one expected) left the sync
    "running", the merchant's page saying "Syncing" with no error, until reconciliation
    took it for lost half an hour later. It fails as any other, and is tried again."""
    if connection.vendor != "postgresql":
        pytest.fail("the refused insert is a PostgreSQL trigger (scripts/pg.sh)")
    store = install("alpha")
    refuse("refuse_product", on="INSERT ON recommender_product", message="no space left")
    with pytest.raises(Exception, match="no space left"):
        catalog_sync.sync_catalog(store)
    stop_refusing("refuse_product", table="recommender_product")

    failed = CatalogSync.objects.get(store=store)
    assert failed.state == CatalogSync.State.FAILED
    assert "no space left" in failed.last_error  # for operators
    assert catalog_sync.failure_in_words(failed)  # the merchant is told it stopped
    assert catalog_sync.sync_catalog(store).state == CatalogSync.State.DONE
