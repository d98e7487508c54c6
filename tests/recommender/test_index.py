"""The FAISS index on its own: exclusion by store, incremental changes, persistence."""

from __future__ import annotations

import numpy as np
import pytest

from recommender.ranking.index import VectorIndex


def unit(rows: np.ndarray) -> np.ndarray:
    return (rows / np.linalg.norm(rows, axis=1, keepdims=True)).astype(np.float32)


@pytest.fixture
def data():
    rng = np.random.default_rng(0)
    vectors = unit(rng.normal(size=(300, 384)))
    products = np.arange(1000, 1300)
    stores = np.repeat(np.arange(1, 11), 30)
    rng.shuffle(stores)  # stores interleaved in insertion order: the build must group them
    return vectors, products, stores


def brute(vectors, products, stores, query, k, exclude):
    keep = ~np.isin(stores, list(exclude))
    scores = vectors[keep] @ query
    order = np.argsort(-scores)[:k]
    return list(products[keep][order])


def test_search_matches_exact_search_with_stores_excluded(data):
    vectors, products, stores = data
    index = VectorIndex.build(vectors, products, stores)
    query = vectors[7]

    hits = index.search(query, 10, exclude_stores={3, 5, int(stores[7])})

    assert [h.product_id for h in hits] == brute(
        vectors, products, stores, query, 10, {3, 5, int(stores[7])}
    )
    assert not {h.store_id for h in hits} & {3, 5, int(stores[7])}
    assert index.kind == "exact"


def test_ivf_is_used_above_the_exact_limit_with_high_recall():
    # Clustered like real catalogs (uniform random vectors defeat every approximate index).
    rng = np.random.default_rng(3)
    centres = rng.normal(size=(40, 384))
    vectors = unit(centres[rng.integers(0, 40, 4000)] + 0.7 * rng.normal(size=(4000, 384)))
    products = np.arange(4000)
    stores = rng.integers(0, 40, 4000)
    index = VectorIndex.build(vectors, products, stores, exact_limit=1000)

    recalls = []
    for row in range(0, 4000, 200):
        exclude = {int(stores[row]), 2}
        got = {h.product_id for h in index.search(vectors[row], 10, exclude_stores=exclude)}
        recalls.append(
            len(got & set(brute(vectors, products, stores, vectors[row], 10, exclude))) / 10
        )

    assert index.kind == "ivf"
    assert np.mean(recalls) >= 0.95


def test_upsert_makes_a_new_product_searchable_and_replaces_an_old_vector(data):
    vectors, products, stores = data
    index = VectorIndex.build(vectors, products, stores)
    fresh = unit(np.ones((1, 384)))

    index.upsert(fresh, [5000], [4])
    index.upsert(fresh, [1000], [int(stores[0])])  # product 1000 changed its vector

    hits = index.search(fresh[0], 2)
    assert {h.product_id for h in hits} == {5000, 1000}
    assert all(h.score == pytest.approx(1.0, abs=1e-5) for h in hits)
    assert len(index) == 301
    assert next(h.product_id for h in index.search(fresh[0], 5, exclude_stores={4})) == 1000


def test_removed_products_are_never_returned(data):
    vectors, products, stores = data
    index = VectorIndex.build(vectors, products, stores)

    index.remove([1007])

    assert 1007 not in {h.product_id for h in index.search(vectors[7], 20)}
    assert index.vector(1007) is None


def test_save_and_load_round_trip_and_current_points_to_a_complete_version(data, tmp_path):
    vectors, products, stores = data
    index = VectorIndex.build(vectors, products, stores, watermark=42)
    index.upsert(unit(np.ones((1, 384))), [5000], [4])
    index.remove([1003])

    index.save(tmp_path)
    loaded = VectorIndex.load(tmp_path)

    assert loaded.watermark == 42
    assert len(loaded) == len(index)
    assert [h.product_id for h in loaded.search(vectors[9], 10, exclude_stores={1})] == [
        h.product_id for h in index.search(vectors[9], 10, exclude_stores={1})
    ]
    version = (tmp_path / "CURRENT").read_text()
    assert {p.name for p in (tmp_path / version).iterdir()} == {
        "index.faiss",
        "products.npy",
        "stores.npy",
        "dead.npy",
        "meta.json",
    }


def test_store_vectors_returns_live_products_of_one_store(data):
    vectors, products, stores = data
    index = VectorIndex.build(vectors, products, stores)
    some = int(products[stores == 2][0])
    index.remove([some])

    ids, matrix = index.store_vectors(2)

    assert sorted(ids) == sorted(int(p) for p in products[stores == 2] if p != some)
    assert matrix.shape == (29, 384)


def test_save_and_load_keep_upserted_products_in_their_stores_ranges(data, tmp_path):
    vectors, products, stores = data
    index = VectorIndex.build(vectors, products, stores)
    rng = np.random.default_rng(7)
    # Store 4 gains products after the build, and one of store 1's products changes.
    added = unit(rng.normal(size=(5, 384)))
    index.upsert(added, [6000 + n for n in range(5)], [4] * 5)
    index.upsert(unit(rng.normal(size=(1, 384))), [int(products[stores == 1][0])], [1])

    index.save(tmp_path)
    loaded = VectorIndex.load(tmp_path)

    assert len(loaded) == len(index) == 305
    assert sorted(loaded.store_vectors(4)[0]) == sorted(index.store_vectors(4)[0])
    for query in (added[0], vectors[11], vectors[200]):
        # Excluding store 4 removes exactly its products, upserted ones included, and
        # nothing of any other store.
        got = [h.product_id for h in loaded.search(query, 50, exclude_stores={4})]
        want = [h.product_id for h in index.search(query, 50, exclude_stores={4})]
        assert got == want
        assert not {6000, 6001, 6002, 6003, 6004} & set(got)
        assert len(got) == 50


@pytest.mark.parametrize("exact_limit", [1000, 100])  # exact search, and IVF
def test_compaction_keeps_every_live_product_and_drops_the_dead(data, exact_limit):
    vectors, products, stores = data
    index = VectorIndex.build(vectors, products, stores, exact_limit=exact_limit, watermark=7)
    rng = np.random.default_rng(3)
    for _ in range(400):  # churn: products change their vectors again and again
        row = int(rng.integers(0, 300))
        index.upsert(unit(rng.normal(size=(1, 384))), [int(products[row])], [int(stores[row])])
    index.upsert(unit(rng.normal(size=(3, 384))), [9001, 9002, 9003], [11, 11, 2])
    index.remove([int(products[5]), 9002])
    index.applied = {8, 9}

    compact = index.compacted()

    assert index.dead_count > 300 and compact.dead_count == 0
    assert len(compact) == len(index) == 301
    assert (compact.kind, compact.watermark, compact.applied) == (index.kind, 7, {8, 9})
    for store in (2, 11):
        assert sorted(compact.store_vectors(store)[0]) == sorted(index.store_vectors(store)[0])
    for query in (vectors[0], vectors[150], unit(rng.normal(size=(1, 384)))[0]):
        before = index.search(query, 10, exclude_stores={1, 11})
        after = compact.search(query, 10, exclude_stores={1, 11})
        if index.kind == "exact":
            assert [h.product_id for h in after] == [h.product_id for h in before]
        assert not {h.store_id for h in after} & {1, 11}
        assert len(after) == 10


def mapped_files() -> set[str]:
    with open("/proc/self/maps") as maps:
        return {line.split()[-1] for line in maps if line.count(" ") >= 5 and "/" in line}


@pytest.mark.parametrize("exact_limit", [1000, 100])  # exact search, and IVF
def test_a_loaded_index_is_mapped_from_its_files_and_still_takes_changes(
    data, tmp_path, exact_limit
):
    vectors, products, stores = data
    VectorIndex.build(vectors, products, stores, exact_limit=exact_limit).save(tmp_path)
    reference = VectorIndex.build(vectors, products, stores, exact_limit=exact_limit)

    loaded = VectorIndex.load(tmp_path)

    # Shared through the page cache, not copied into this process: the files are mapped.
    version = tmp_path / (tmp_path / "CURRENT").read_text()
    for name in ("index.faiss", "products.npy", "stores.npy"):
        assert str(version / name) in mapped_files()
    rng = np.random.default_rng(11)
    changed = int(products[stores == 3][0])
    new_vectors = unit(rng.normal(size=(4, 384)))
    for index in (loaded, reference):
        index.upsert(new_vectors[:3], [7001, 7002, changed], [3, 5, 3])
        index.upsert(new_vectors[3:], [7001], [3])  # a second change to a new product
        index.remove([int(products[0]), 7002])
    assert len(loaded) == len(reference) == 300 + 1 - 1
    assert loaded.vector(7001) == pytest.approx(new_vectors[3])
    assert loaded.vector(changed) == pytest.approx(new_vectors[2])
    assert sorted(loaded.store_vectors(3)[0]) == sorted(reference.store_vectors(3)[0])
    for query in (new_vectors[3], new_vectors[2], vectors[0], vectors[40]):
        got = loaded.search(query, 10, exclude_stores={5})
        assert [h.product_id for h in got] == [
            h.product_id for h in reference.search(query, 10, exclude_stores={5})
        ]
    assert loaded.search(new_vectors[3], 1)[0].product_id == 7001
    assert 7001 not in {h.product_id for h in loaded.search(new_vectors[3], 10, exclude_stores={3})}
    assert 7002 not in {h.product_id for h in loaded.search(new_vectors[1], 10)}
    compact = loaded.compacted()
    assert len(compact) == len(loaded)
    assert compact.search(new_vectors[3], 1)[0].product_id == 7001


def test_a_loaded_lexical_index_is_mapped_and_matches_added_products_words(data, tmp_path):
    vectors, products, stores = data
    texts = [f"Plain item {n}" for n in range(len(products))]
    texts[7] = "Alpina AL-372LBO4V6 watch"
    VectorIndex.build(vectors, products, stores, texts=texts).save(tmp_path)

    loaded = VectorIndex.load(tmp_path)
    far = unit(-vectors[7:8])  # far from the query's vector: only its words can find it
    loaded.upsert(far, [8000], [9], ["Alpina AL372LBO4V6 boxed"])

    version = tmp_path / (tmp_path / "CURRENT").read_text()
    assert str(version / "lexical-data.npy") in mapped_files()
    found = [h.product_id for h in loaded.search(vectors[7], 3, text="Alpina AL-372LBO4V6")]
    assert found[:2] == [int(products[7]), 8000]
