"""Hybrid retrieval: lexical evidence (model numbers, title words) fused with the vectors,
on a real FAISS index, and through the product with the real model on WDC offers."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from django.conf import settings

from recommender.catalog import index_events
from recommender.exchange import ledger
from recommender.models import WidgetSettings
from recommender.ranking import embedding, lexical, live_index, recommendations
from recommender.ranking.index import LEXICAL_WEIGHT, VectorIndex
from tests.factories import make_product, make_store

WDC = Path(__file__).resolve().parents[3] / "shared" / "datasets" / "wdc-shops"


def unit(matrix) -> np.ndarray:
    matrix = np.asarray(matrix, dtype=np.float32)
    return matrix / np.linalg.norm(matrix, axis=1, keepdims=True)


def watch_index() -> tuple[VectorIndex, np.ndarray]:
    """Three watches of one brand: the embedding prefers the wrong model (product 1), the
    title's model number says product 2; product 3 is far in vector space but the same
    model too. Product 4 is another store's, unrelated."""
    rng = np.random.default_rng(7)
    query = unit(rng.normal(size=(1, 384)))[0]
    noise = unit(rng.normal(size=(4, 384)))
    vectors = unit(
        [query * 0.9 + noise[0] * 0.44, query * 0.8 + noise[1] * 0.6, noise[2], noise[3]]
    )
    texts = [
        "Alpina Pilot Chronograph AL-372N4S6",
        "Alpina Pilot Chronograph AL-372LBO4V6",
        "AL372LBO4V6 watch strap edition",
        "Linen Midi Dress",
    ]
    index = VectorIndex.build(vectors, [1, 2, 3, 4], [10, 10, 11, 12], texts=texts)
    return index, query


QUERY_SWITCH = (
    "TP-Link 16-Port Gigabit Ethernet Switch (TL-SG1016) Routers - Page 4 | Laptops Outlet Direct"
)
SAME_SWITCH = "Switch TP-Link 16 Portas 10/100/1000Mbps Rack (TL-SG1016) (TL-SG1016) - PCDIGA"
QUERY_TEXT = "Alpina Pilot Quartz Chronograph Watch AL-372LBO4V6"


def test_lexical_score_matches_model_numbers_across_separators():
    built = lexical.LexicalIndex.build(["TP-Link Switch TL-SG1016", "TLSG1016 rackmount", "mug"])

    scores = built.scores(built.query("16-port switch (TLSG1016)"))

    assert scores[1] > 0.3  # the same model number written without its hyphen
    assert scores[0] > 0.1
    assert scores[2] == 0
    assert scores.min() >= 0 and scores.max() <= 1.0001


def test_references_written_with_separators_count_as_model_numbers():
    _, models, _ = lexical.terms("Omega Seamaster 300m 2541.80.00 Nike 844994-002 size 10.5")

    assert models == ["300m", "25418000", "844994002"]


def test_identifiers_are_model_and_part_numbers_not_quantities_years_or_counts():
    found = lexical.identifiers(
        "Seagate 2TB 7200RPM 64MB HDD (ST2000DM001) 2017 2-pack 12 Omega 2541.80.00 SD8SNAT-256G"
        " 100ct 1080p 144Hz 10x10 \uff34\uff2c\uff0d\uff33\uff27\uff11\uff10\uff11\uff16"  # full-width
    )

    assert found == {"st2000dm001", "25418000", "sd8snat256g", "tlsg1016"}


def test_a_number_is_not_found_inside_a_longer_number():
    assert lexical.identifier_agreement("Ref 12345", "Ref 0123456") == 0
    assert lexical.identifier_agreement("Ref 12345", "Steel ref. 12345") == 1


@pytest.mark.parametrize(
    "candidate",
    [
        "Omega Seamaster 300m 2541.80.00 2541.80.00 Watch",  # written twice
        "Sneakers Nike WMNS Roshe One 844994-002 844994-002 | Bludshop",
        "Omega Seamaster 2541.80.00 300 Watch",  # beside another number
    ],
)
def test_a_number_written_beside_another_number_is_still_found(candidate):
    """Letters and digits only, a number written twice ran into itself ("2541800025418000")
    and was found nowhere: the candidate carrying the query's own reference lost to a
    sibling's."""
    query = "Omega Seamaster 25418000" if "Omega" in candidate else "NIKE ROSHE ONE 844994002"

    assert lexical.identifier_agreement(query, candidate) == 1


@pytest.mark.parametrize(
    ("candidate", "agreement"),
    [
        # Inside a store's code: both of ours are in it, one of its two is in ours.
        ("Sandisk 256GB Z400s SSD LN70221-SD8SNAT-256G-1122 | SCAN UK", 0.75),
        ("SanDisk Z400s SSD SD8SNAT256G1122", 1.0),  # without separators
        ("SanDisk Z400s SSD SD8SNAT-512G-1122", 0.5),  # the 512 GB sibling: the series only
        ("SanDisk solid state drive 256GB", 0.0),  # no identifier: no evidence
    ],
)
def test_identifier_agreement_finds_the_same_part_number_however_it_is_written(
    candidate, agreement
):
    assert lexical.identifier_agreement(
        "SanDisk Z400s - solid state drive 256 GB SD8SNAT-256G-1122", candidate
    ) == pytest.approx(agreement)


def test_fused_search_puts_the_same_model_number_first_where_the_embedding_did_not():
    index, query = watch_index()

    dense = index.search(query, 2)
    fused = index.search(query, 2, text=QUERY_TEXT)

    assert [hit.product_id for hit in dense] == [1, 2]
    assert fused[0].product_id == 2
    assert fused[0].lexical > 0
    assert fused[0].score == pytest.approx(fused[0].cosine + LEXICAL_WEIGHT * fused[0].lexical)
    assert fused[0].cosine == pytest.approx(dense[1].score, abs=1e-5)


def test_fused_search_finds_lexical_matches_the_vector_search_did_not_return():
    index, query = watch_index()

    fused = index.search(query, 1, text=QUERY_TEXT)
    pooled = index.search(query, 3, text=QUERY_TEXT)

    assert fused[0].product_id == 2
    assert 3 in [hit.product_id for hit in pooled]  # cosine near 0, found by its words
    assert [hit.score for hit in pooled] == sorted((hit.score for hit in pooled), reverse=True)


def test_fused_search_never_returns_excluded_stores_or_removed_products():
    index, query = watch_index()

    without_store = index.search(query, 4, exclude_stores={10}, text=QUERY_TEXT)
    index.remove([3])
    without_removed = index.search(query, 4, exclude_stores={10}, text=QUERY_TEXT)

    assert {hit.store_id for hit in without_store} == {11, 12}
    assert [hit.product_id for hit in without_removed] == [4]


def test_products_added_after_the_build_are_matched_lexically_and_survive_compaction_and_disk(
    tmp_path,
):
    index, query = watch_index()
    far = unit(np.random.default_rng(3).normal(size=(1, 384)))
    index.upsert(far, [5], [13], ["Alpina AL-372LBO4V6 boxed"])
    index.upsert(far, [3], [11], ["Linen apron"])  # product 3 changed: its old words go

    added = [hit.product_id for hit in index.search(query, 4, text=QUERY_TEXT)]
    index.save(tmp_path)
    loaded = VectorIndex.load(tmp_path)
    compacted = index.compacted()

    assert 5 in added and added.index(5) < added.index(4)  # a far vector, found by its words
    for other in (loaded, compacted):
        again = [hit.product_id for hit in other.search(query, 4, text=QUERY_TEXT)]
        assert again == added
    three = next(hit for hit in compacted.search(query, 5, text=QUERY_TEXT) if hit.product_id == 3)
    assert three.lexical < 0.05  # "Linen apron" now, not the model number it had


def boilerplate_shops() -> tuple[list[str], list[int]]:
    """Two shops of 60 products that both end every title with the same site's name, as
    offers copied from one marketplace do (each sells a walnut lamp), in a network of 720
    products: the site's name is on a sixth of them, too few to be common network-wide."""
    texts, stores = [], []
    for store, items in ((1, ["walnut desk lamp"]), (2, ["walnut desk lamp", "oak stool"])):
        for n in range(60):
            item = items[n] if n < len(items) else f"item{n} model q{n}x{store}"
            texts.append(f"{item} | Shop Outlet Direct")
            stores.append(store)
    for n in range(600):
        texts.append(f"other{n} thing r{n}")
        stores.append(3 + n % 4)
    return texts, stores


def test_words_a_store_repeats_across_its_catalog_match_nothing():
    texts, stores = boilerplate_shops()
    oak_stool = texts.index("oak stool | Shop Outlet Direct")
    lamp_b = texts.index("walnut desk lamp | Shop Outlet Direct", 60)

    aware = lexical.LexicalIndex.build(texts, stores)
    blind = lexical.LexicalIndex.build(texts)
    query = "walnut desk lamp | Shop Outlet Direct"

    # Without the stores, the shared site name alone makes the stool a lexical match.
    assert blind.scores(blind.query(query))[oak_stool] > 0.1
    # With them it is each store's boilerplate: the stool's row no longer holds it (a query
    # from no store of these still finds nothing in common), nor does a query from store
    # 1's page; the other shop's lamp still shares every word that names it.
    assert aware.scores(aware.query(query))[oak_stool] == 0
    scores = aware.scores(aware.query(query, store=1))
    assert scores[oak_stool] == 0
    assert scores[lamp_b] > 0.5


def test_a_small_catalog_keeps_the_words_its_products_share():
    # 40 variants of one item: below STORE_COMMON_MIN, so nothing is boilerplate.
    texts = [f"hand burr grinder {size}" for size in range(40)] + ["burr grinder deluxe"]
    stores = [1] * 40 + [2]

    aware = lexical.LexicalIndex.build(texts, stores)
    blind = lexical.LexicalIndex.build(texts)

    scores = aware.scores(aware.query("hand burr grinder", store=1))
    assert scores[40] > 0.1
    assert np.allclose(scores, blind.scores(blind.query("hand burr grinder")))


def test_a_stores_boilerplate_stays_left_out_of_rows_added_later_and_after_a_reload(tmp_path):
    texts, stores = boilerplate_shops()
    vectors = unit(np.random.default_rng(5).normal(size=(len(texts) + 1, 384)))
    index = VectorIndex.build(vectors[:-1], list(range(1, len(texts) + 1)), stores, texts=texts)
    index.upsert(vectors[-1:], [999], [2], ["brass bookends | Shop Outlet Direct"])
    index.save(tmp_path)
    loaded = VectorIndex.load(tmp_path)

    assert loaded.lexical._store_common == index.lexical._store_common != {}
    for search in (index, loaded, index.compacted()):
        # Queried from a page of a store without boilerplate: the added row's site name,
        # store 2's boilerplate, was left out of the row itself.
        hits = search.search(
            vectors[0], len(texts) + 1, text="brass bookends | Shop Outlet Direct", text_store=3
        )
        by_product = {hit.product_id: hit.lexical for hit in hits}
        assert by_product[999] > 0.5  # "brass bookends" still matches
        hits = search.search(vectors[0], len(texts) + 1, text="Shop Outlet Direct", text_store=3)
        assert {hit.product_id: hit.lexical for hit in hits}.get(999, 0) == 0


def test_an_index_saved_without_lexical_rows_serves_dense_results(tmp_path):
    index, query = watch_index()
    index.save(tmp_path)
    version = (tmp_path / "CURRENT").read_text().strip()
    for saved in (tmp_path / version).glob("lexical*"):
        saved.unlink()

    loaded = VectorIndex.load(tmp_path)

    assert loaded.lexical is None
    assert [hit.product_id for hit in loaded.search(query, 2, text=QUERY_TEXT)] == [1, 2]


@pytest.mark.integration
@pytest.mark.django_db
@pytest.mark.skipif(not WDC.exists(), reason="the WDC development set is beside the repository")
def test_a_model_number_query_finds_its_partner_item_first_on_wdc_offers(private_index):
    """Real offers, the real model, the real index: a switch page of one shop; the other
    sells the same switch under a Portuguese title, and its sibling models (TL-SG1016DE)."""
    partner_titles = [
        p["title"]
        for p in json.loads((WDC / "shops" / "wdc-computers-b.json").read_text())["products"]
        if "switch" in p["title"].lower() and p["title"] != QUERY_SWITCH
    ]
    embedder = embedding.load_embedder("onnx", str(settings.RECOMMENDER_MODEL_DIR), 2)
    host, partner = make_store("wdc-a"), make_store("wdc-b")
    for store in (host, partner):
        ledger.grant_starter_credits(store)
    vectors = embedder.encode([QUERY_SWITCH, *partner_titles])
    viewed = make_product(host, QUERY_SWITCH, vectors[0])
    for title, vector in zip(partner_titles, vectors[1:], strict=True):
        make_product(partner, title, vector)
    built = index_events.rebuild_index()

    found = recommendations.recommendations_for(
        host, product_id=viewed.shopify_id, limit=3, raw=True
    )
    dense = built.search(vectors[0], 1, exclude_stores={host.pk})

    assert len(partner_titles) > 15  # switches of many makes, and this one's siblings
    assert found[0].product.title == SAME_SWITCH
    assert dense[0].product_id != found[0].product.pk  # the embedding alone ranks another first


def memory_kits(
    partner_title: str,
    *,
    viewed_title: str = "Corsair Vengeance LPX DDR4-3200 Kit CMK32GX4M2B3200C16",
    sibling_title: str = "Corsair Vengeance LPX DDR4-2666 Kit CMK32GX4M2A2666C16",
) -> tuple:
    """A memory-kit page of one store; another sells its sibling (another speed), nearer in
    vector space, and a kit titled ``partner_title``, besides a catalog of other things."""
    rng = np.random.default_rng(3)
    query = unit(rng.normal(size=(1, 384)))[0]
    noise = unit(rng.normal(size=(6, 384)))
    nearer, near = unit([query * 0.9 + noise[0] * 0.44, query * 0.6 + noise[1] * 0.8])
    host, partner = make_store("memory-a"), make_store("memory-b")
    for store in (host, partner):
        ledger.grant_starter_credits(store)
    viewed = make_product(host, viewed_title, query)
    sibling = make_product(partner, sibling_title, nearer)
    kit = make_product(partner, partner_title, near)
    for n, vector in enumerate(noise[2:]):  # not a twin of the host's store
        make_product(partner, f"Desk Lamp {n}", vector)
    index_events.rebuild_index()
    return host, viewed, sibling, kit


@pytest.mark.django_db
def test_the_raw_ranking_puts_the_same_part_number_before_a_sibling_with_more_words_alike(
    private_index,
):
    """The sibling kit (another speed) is nearer in vector space and the fused score ranks
    it first; the same kit's title has its part number inside a store code."""
    host, viewed, sibling, same = memory_kits(
        "Corsair 32GB Vengeance LPX Kit LN69029-CMK32GX4M2B3200C16",
        viewed_title="Corsair Vengeance LPX 32GB DDR4-3200 CMK32GX4M2B3200C16",
        sibling_title="Corsair Vengeance LPX 32GB DDR4-2666 CMK32GX4M2A2666C16",
    )

    fused = live_index.current().search(
        np.frombuffer(viewed.vector, np.float32), 2, exclude_stores={host.pk}, text=viewed.title
    )
    found = recommendations.recommendations_for(
        host, product_id=viewed.shopify_id, limit=2, raw=True
    )

    assert [hit.product_id for hit in fused] == [sibling.pk, same.pk]
    assert [item.product.pk for item in found] == [same.pk, sibling.pk]
    assert "same model numbers 0.25" in found[0].reason


@pytest.mark.django_db
def test_a_widget_that_does_not_avoid_competitors_puts_the_same_part_number_first(
    private_index,
):
    host, viewed, sibling, same = memory_kits("Corsair Memory LN69029 CMK32GX4M2B3200C16")
    widget = WidgetSettings(store=host, items=1, own_share=0, avoid_competitors=False)

    shown = recommendations.recommendations_for(host, product_id=viewed.shopify_id, widget=widget)
    fused = live_index.current().search(
        np.frombuffer(viewed.vector, np.float32), 2, exclude_stores={host.pk}, text=viewed.title
    )

    assert [hit.product_id for hit in fused] == [sibling.pk, same.pk]
    assert [item.product.pk for item in shown] == [same.pk]
    assert "same model numbers 0.50" in shown[0].reason


@pytest.mark.django_db
def test_model_numbers_lift_nothing_in_a_widget_that_avoids_competitors(private_index):
    """There the same item is what must not be shown; the sibling is hidden as one."""
    host, viewed, _, kit = memory_kits("Corsair Memory Kit LN69029-CMK32GX4M2B3200C16")
    widget = WidgetSettings(store=host, items=1, own_share=0, avoid_competitors=True)

    shown = recommendations.recommendations_for(host, product_id=viewed.shopify_id, widget=widget)

    assert lexical.identifier_agreement(viewed.title, kit.title) > 0
    assert [item.product.pk for item in shown] == [kit.pk]
    assert "same model numbers" not in shown[0].reason
