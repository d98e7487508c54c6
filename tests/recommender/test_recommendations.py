"""Every control of the recommendation, one test each, on a real FAISS index."""

from __future__ import annotations

import json
import time
from decimal import Decimal
from io import StringIO

import numpy as np
import pytest
from django.core.management import call_command
from django.db import connection
from django.test.utils import CaptureQueriesContext

from recommender import controls, runtime
from recommender.catalog import index_events, products
from recommender.exchange import ledger, rules
from recommender.models import CatalogSync, IndexEvent, LedgerEntry, Product, WidgetSettings
from recommender.ranking import competitors, live_index, recommendations
from stores.models import Store
from tests.factories import make_product, make_store, mixed_vector, topic_vector

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def isolated_index(private_index, settings):
    settings.RECOMMENDER_RELEVANCE_FLOOR = 0.3


@pytest.fixture
def network():
    """A coffee host, two coffee-adjacent partners, a dog store and a dress store."""
    host = make_store("host")
    roastery = make_store("roastery")
    teahouse = make_store("teahouse")
    dogs = make_store("dogs")
    dresses = make_store("dresses")
    for store in (host, roastery, teahouse, dogs, dresses):
        ledger.grant_starter_credits(store)
    viewed = make_product(host, "Hand Burr Grinder", topic_vector("coffee", seed=1))
    for seed in range(2, 6):
        make_product(host, f"House Coffee {seed}", topic_vector("coffee", seed=seed))
    # Coffee-adjacent, not the same niche: books about coffee.
    make_product(
        roastery, "The Roaster's Handbook", mixed_vector(("coffee", 0.8), ("books", 0.6), seed=10)
    )
    make_product(
        roastery, "Espresso at Home", mixed_vector(("coffee", 0.8), ("books", 0.6), seed=11)
    )
    make_product(
        teahouse,
        "Sencha",
        topic_vector("tea", seed=20, noise=0.9),
        category_id="gid://shopify/TaxonomyCategory/fb-1-14-2",
    )
    make_product(
        teahouse,
        "Coffee-ish Tea Blend",
        mixed_vector(("tea", 0.8), ("coffee", 0.5), seed=21),
        category_id="gid://shopify/TaxonomyCategory/fb-1-14-2",
    )
    make_product(dogs, "Dog Bed", topic_vector("dogs", seed=30))
    make_product(dresses, "Linen Dress", topic_vector("dresses", seed=40))
    index_events.rebuild_index()
    return {"host": host, "roastery": roastery, "teahouse": teahouse, "dogs": dogs,
            "dresses": dresses, "viewed": viewed}  # fmt: skip


def recommend(store, product=None, **kwargs):
    live_index.current(refresh=True)
    runtime.network_state.clear()
    product_id = product.shopify_id if product is not None else None
    return recommendations.recommendations_for(store, product_id=product_id, **kwargs)


def partner_shops(items) -> list[str]:
    return [i.product.store.shop_domain.split(".")[0] for i in items if i.slot == "partner"]


def configure(store, **fields):
    WidgetSettings.objects.filter(store=store).update(**fields)


def test_product_page_shows_related_partner_products_and_never_the_host(network):
    index_events.rebuild_index()

    items = recommend(network["host"], network["viewed"], limit=4)

    partners = [i for i in items if i.slot == "partner"]
    assert partner_shops(items)[0] == "roastery"
    assert all(i.product.store != network["host"] for i in partners)
    assert "dresses" not in partner_shops(items) and "dogs" not in partner_shops(items)


def test_at_most_one_slot_per_partner_store(network):
    configure(network["host"], own_share=0)

    items = recommend(network["host"], network["viewed"], limit=4, raw=False)

    shops = partner_shops(items)
    assert len(shops) == len(set(shops))


def test_relevance_floor_shows_nothing_rather_than_something_irrelevant(network, settings):
    settings.RECOMMENDER_RELEVANCE_FLOOR = 0.99

    assert recommend(network["host"], network["viewed"], limit=4) == []


def test_uninstalled_partner_disappears_at_once_without_a_rebuild(network):
    index_events.rebuild_index()
    assert "roastery" in partner_shops(recommend(network["host"], network["viewed"]))

    Store.objects.filter(pk=network["roastery"].pk).update(status=Store.Status.UNINSTALLED)

    assert "roastery" not in partner_shops(recommend(network["host"], network["viewed"]))


def test_partner_with_widget_disabled_is_not_shown(network):
    configure(network["roastery"], enabled=False)

    assert "roastery" not in partner_shops(recommend(network["host"], network["viewed"]))


def test_partner_without_credits_is_not_shown_but_still_gets_partners(network):
    LedgerEntry.objects.create(
        store=network["roastery"],
        kind=LedgerEntry.Kind.SPEND,
        amount=-rules.STARTER_GRANT,
        counterparty=network["dogs"],
    )

    assert "roastery" not in partner_shops(recommend(network["host"], network["viewed"]))
    assert "host" in partner_shops(recommend(network["roastery"], limit=4))


def test_host_blocked_partner_is_not_shown(network):
    WidgetSettings.objects.get(store=network["host"]).blocked_stores.add(network["roastery"])

    assert "roastery" not in partner_shops(recommend(network["host"], network["viewed"]))


def test_partner_that_blocked_the_host_is_not_shown(network):
    WidgetSettings.objects.get(store=network["roastery"]).blocked_stores.add(network["host"])

    assert "roastery" not in partner_shops(recommend(network["host"], network["viewed"]))


def test_excluded_category_and_its_subcategories_are_not_shown(network):
    configure(
        network["host"], own_share=0, excluded_categories=["gid://shopify/TaxonomyCategory/fb-1"]
    )

    assert "teahouse" not in partner_shops(recommend(network["host"], network["viewed"], limit=6))


def test_opted_out_and_ineligible_products_leave_the_index_through_events(network):
    index_events.rebuild_index()
    handbook, espresso = network["roastery"].products.order_by("pk")
    index = live_index.current(refresh=True)
    assert index.vector(handbook.pk) is not None and index.vector(espresso.pk) is not None

    # The merchant opts one out (the settings page's service); the other becomes
    # ineligible through a catalog update (sold out), as the sync writes it.
    controls.set_products_opted_out(
        store=network["roastery"], actor="1", shopify_ids=[handbook.shopify_id], opted_out=True
    )
    sync, _ = CatalogSync.objects.get_or_create(store=network["roastery"])
    products.upsert_products(network["roastery"], sync, [product_node(espresso, inventory=0)])
    index = live_index.current(refresh=True)

    # Out of the serving index itself, not merely filtered when results are hydrated.
    assert index.vector(handbook.pk) is None
    assert index.vector(espresso.pk) is None
    hits = index.search(np.frombuffer(espresso.vector, dtype=np.float32), 50)
    assert not {handbook.pk, espresso.pk} & {hit.product_id for hit in hits}
    assert "roastery" not in partner_shops(recommend(network["host"], network["viewed"]))


def product_node(product, *, inventory: int) -> dict:
    """An Admin API Product node for ``product`` (the shape the catalog sync reads)."""
    return {
        "id": f"gid://shopify/Product/{product.shopify_id}", "handle": product.handle,
        "title": product.title, "status": "ACTIVE", "onlineStoreUrl": product.url,
        "tracksInventory": True, "totalInventory": inventory, "vendor": product.vendor,
        "priceRangeV2": {"minVariantPrice": {"amount": "10.00", "currencyCode": "USD"},
                         "maxVariantPrice": {"amount": "10.00", "currencyCode": "USD"}},
    }  # fmt: skip


def test_new_product_is_searchable_after_its_event_without_a_rebuild(network):
    index_events.rebuild_index()
    newcomer = make_store("newcomer")
    ledger.grant_starter_credits(newcomer)
    product = make_product(
        newcomer,
        "Grinder Cleaning Tablets",
        mixed_vector(("coffee", 1.0), ("dogs", 0.7), seed=1, noise=0.05),
    )

    index_events.emit_index_events(IndexEvent.Kind.UPSERT, [(product.pk, newcomer.pk)])

    assert partner_shops(recommend(network["host"], network["viewed"]))[0] == "newcomer"


def test_competitor_avoidance_hides_the_same_item_sold_elsewhere(network):
    twin = make_store("twin")
    ledger.grant_starter_credits(twin)
    make_product(twin, "Hand Burr Grinder", mixed_vector(("coffee", 1.0), ("dogs", 0.8), seed=1))
    index_events.rebuild_index()

    assert "twin" not in partner_shops(recommend(network["host"], network["viewed"]))
    configure(network["host"], avoid_competitors=False)
    assert partner_shops(recommend(network["host"], network["viewed"]))[0] == "twin"


def test_same_item_matching_uses_model_numbers_not_just_similarity(network):
    def product(title, vendor=""):
        return Product(title=title, vendor=vendor)

    assert competitors.same_item(
        product("Comandante C40 MK4 Grinder"), product("C40 mk4 hand mill")
    )
    assert competitors.same_item(product("Hand Burr Grinder"), product("Hand Burr Grinder - Black"))
    assert not competitors.same_item(product("Hand Burr Grinder"), product("Electric Kettle"))


def test_same_niche_partner_store_is_avoided(network):
    twin_store = make_store("twin-roastery")
    ledger.grant_starter_credits(twin_store)
    for seed in range(2, 6):  # the same catalog profile as the host
        make_product(twin_store, f"Roast {seed}", topic_vector("coffee", seed=seed + 100))
    index_events.rebuild_index()

    shops = partner_shops(recommend(network["host"], limit=4))

    assert "twin-roastery" not in shops


def test_own_products_share_fills_the_rest_from_the_host_but_not_the_viewed_product(network):
    configure(network["host"], own_share=50)

    items = recommend(network["host"], network["viewed"], limit=4)

    own = [i for i in items if i.slot == "own"]
    assert len(own) == 2
    assert all(i.product.store == network["host"] for i in own)
    assert network["viewed"].pk not in {i.product.pk for i in own}


def test_ranking_is_stable_and_rewards_stores_that_send_traffic(network):
    query = np.frombuffer(network["viewed"].vector, dtype=np.float32)
    giver_vector = mixed_vector(("coffee", 0.8), ("dresses", 0.6), seed=77)
    # The taker's product is a little more similar, and the taker is created first (so an
    # id tie-break would favour it too): only the fairness term can put the giver ahead.
    taker_vector = giver_vector + 0.03 * query
    taker_vector /= np.linalg.norm(taker_vector)
    taker, giver = make_store("taker"), make_store("giver")
    make_product(taker, "Grinder Brush from Taker", taker_vector)
    make_product(giver, "Grinder Brush from Giver", giver_vector)
    for store in (giver, taker):
        ledger.grant_starter_credits(store)
    LedgerEntry.objects.create(
        store=giver, kind=LedgerEntry.Kind.EARN, amount=40, counterparty=taker
    )
    index_events.rebuild_index()
    configure(network["host"], own_share=0, avoid_competitors=False)
    advantage = float(taker_vector @ query - giver_vector @ query)
    assert 0.005 < advantage < 0.02  # a real, small lead

    first = recommend(network["host"], network["viewed"], limit=6)
    again = recommend(network["host"], network["viewed"], limit=6)

    shops = partner_shops(first)
    assert shops == partner_shops(again)
    assert shops.index("giver") < shops.index("taker")
    by_shop = {item.product.store.name.lower(): item for item in first}
    assert by_shop["taker"].similarity > by_shop["giver"].similarity


def test_raw_mode_keeps_only_the_hard_filters(network):
    WidgetSettings.objects.get(store=network["host"]).blocked_stores.add(network["dogs"])

    items = recommend(network["host"], network["viewed"], limit=20, raw=True)

    shops = partner_shops(items)
    assert shops.count("roastery") == 2  # no one-slot rule
    assert "dogs" not in shops and "host" not in shops
    assert [i.score for i in items] == sorted((i.score for i in items), reverse=True)


def test_unknown_or_foreign_product_id_gives_nothing(network):
    foreign = network["roastery"].products.first()

    assert recommend(network["host"], foreign) == []


def test_recommend_command_prints_json(network):
    out = StringIO()

    call_command(
        "recommend",
        "host.myshopify.com",
        "--product",
        str(network["viewed"].shopify_id),
        "--limit",
        "3",
        "--json",
        stdout=out,
    )

    items = json.loads(out.getvalue())
    # Operators see the score and the partner's fairness; a merchant's preview does not.
    assert items and {"shop", "product_id", "title", "score", "fairness", "slot", "reason"} <= set(
        items[0]
    )
    assert "partner fairness" in items[0]["reason"]
    assert items[0]["shop"] == "roastery.myshopify.com"


@pytest.mark.parametrize("balance", ["none", "0.50"])
def test_a_partner_that_cannot_pay_for_a_click_is_not_shown(network, balance):
    host, roastery = network["host"], network["roastery"]
    shown = {item.product.store_id for item in recommend(host, network["viewed"], limit=6)}
    assert roastery.pk in shown
    if balance == "none":  # its after-install step never ran: no ledger rows at all
        LedgerEntry.objects.filter(store=roastery).delete()
    else:
        LedgerEntry.objects.create(store=roastery, kind=LedgerEntry.Kind.SPEND,
                                   amount=-(rules.STARTER_GRANT - Decimal("0.50")))  # fmt: skip

    shown = {item.product.store_id for item in recommend(host, network["viewed"], limit=6)}

    assert roastery.pk not in shown


def test_partner_rows_are_read_once_per_freshness_window_not_once_per_page(network):
    """Ranking weighs dozens of partner candidates per page, and the same partner items
    come up on page after page (or the same page in another language): within the freshness
    window their rows are read once, and a page reads only its own product."""
    host, viewed = network["host"], network["viewed"]
    configure(host, own_share=0)  # partner items only: the host's own differ page by page
    first = recommend(host, viewed, limit=4)
    widget = WidgetSettings.objects.get(store=host)

    with CaptureQueriesContext(connection) as queries:
        again = recommendations.recommendations_for(
            host, product_id=viewed.shopify_id, limit=4, widget=widget
        )

    assert partner_shops(again) == partner_shops(first) != []
    product_reads = [q["sql"] for q in queries if '"recommender_product"' in q["sql"]]
    assert len(product_reads) == 1, product_reads  # the viewed product, nothing else


def test_a_partner_products_change_shows_once_the_freshness_window_has_passed(network, settings):
    settings.RECOMMENDER_STATE_TTL_SECONDS = 0.2
    host, viewed = network["host"], network["viewed"]
    first = next(i for i in recommend(host, viewed, limit=4) if i.slot == "partner")
    Product.objects.filter(pk=first.product.pk).update(title="The Roaster's Handbook, 2nd ed.")
    time.sleep(0.3)

    shown = {i.product.pk: i.product.title for i in recommend(host, viewed, limit=4)}
    assert shown[first.product.pk] == "The Roaster's Handbook, 2nd ed."

    # No longer eligible (its index event not applied yet): gone once the window passes.
    Product.objects.filter(pk=first.product.pk).update(eligible=False)
    time.sleep(0.3)
    assert first.product.pk not in {i.product.pk for i in recommend(host, viewed, limit=4)}


def test_cache_computes_only_the_missing_keys_and_remembers_absent_ones(settings):
    settings.RECOMMENDER_STATE_TTL_SECONDS = 60
    cache = runtime.TTLCache()
    asked: list[list[int]] = []

    def read(keys):
        asked.append(sorted(keys))
        return {key: key * 10 for key in keys if key != 3}

    assert cache.get_many([1, 2, 3], read) == {1: 10, 2: 20}
    assert cache.get_many([2, 3, 4], read) == {2: 20, 4: 40}
    assert asked == [[1, 2, 3], [4]]  # 3 was not found the first time, and is not asked again


def test_a_partner_keeps_its_slot_when_its_kept_item_leaves_before_the_index_hears(
    network, settings
):
    """Rows ranking read lately are kept. When the item a page would show has left the
    exchange since (its index event not applied yet), its store's next item takes the slot
    rather than the slot going empty."""
    settings.RECOMMENDER_STATE_TTL_SECONDS = 60
    host = network["host"]
    configure(host, own_share=0)
    near = {"handbook": mixed_vector(("coffee", 0.8), ("books", 0.6), seed=10),
            "espresso": mixed_vector(("coffee", 0.8), ("books", 0.6), seed=11)}  # fmt: skip
    page_a = make_product(host, "Grinder A", near["handbook"])
    page_b = make_product(host, "Grinder B", near["espresso"])
    index_events.rebuild_index()

    def titles(page):
        return [item.product.title for item in recommend(host, page, limit=4)]

    # Page A shows the handbook; ranking read the espresso book too, and kept its row.
    assert "The Roaster's Handbook" in titles(page_a)
    Product.objects.filter(title="Espresso at Home").update(eligible=False)

    shown = titles(page_b)

    assert "Espresso at Home" not in shown
    assert "The Roaster's Handbook" in shown


def test_a_viewed_row_handed_in_for_another_stores_page_is_not_ranked_from(network, settings):
    settings.RECOMMENDER_EXPLORE_SHARE = 0
    host, viewed = network["host"], network["viewed"]
    dog_bed = Product.objects.get(title="Dog Bed")
    # The same Shopify id in another store: a row that is not this page's product.
    stranger = Product(store=dog_bed.store, shopify_id=viewed.shopify_id, title=dog_bed.title,
                       vector=dog_bed.vector, category_id=dog_bed.category_id)  # fmt: skip
    expected = [item.product.pk for item in recommend(host, viewed, limit=4)]

    given = recommendations.recommendations_for(
        host, product_id=viewed.shopify_id, limit=4, viewed=stranger
    )

    assert [item.product.pk for item in given] == expected
