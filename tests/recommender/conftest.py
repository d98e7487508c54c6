"""Fixtures the recommender's tests share."""

from __future__ import annotations

import pytest

from recommender import runtime
from recommender.catalog import index_events
from recommender.exchange import ledger
from tests.factories import make_product, make_store, mixed_vector, topic_vector


@pytest.fixture
def private_index(settings, tmp_path):
    """An index directory of the test's own, applied inline (no polling thread), and a
    process state that starts and ends empty."""
    settings.RECOMMENDER_INDEX_DIR = tmp_path / "index"
    settings.RECOMMENDER_INDEX_POLL_SECONDS = 0
    runtime.reset()
    yield settings.RECOMMENDER_INDEX_DIR
    runtime.reset()


@pytest.fixture
def hash_embedder(settings):
    """The deterministic stand-in embedder, and no quiet period before embedding."""
    settings.RECOMMENDER_EMBEDDER = "hash"
    settings.RECOMMENDER_EMBED_QUIET_SECONDS = 0


@pytest.fixture
def pair():
    """A host store and a partner with a product, both granted their starter credits: a
    click from one to the other (the click tests')."""
    host, partner = make_store("host"), make_store("partner")
    for store in (host, partner):
        ledger.grant_starter_credits(store)
    product = make_product(partner, "Coffee Book", topic_vector("coffee", seed=1))
    return host, partner, product


@pytest.fixture
def shops(private_index):
    """A host with a product page and a partner whose one product (its title markup, as a
    merchant may write) fits it, both granted their starter credits; the index built."""
    host, partner = make_store("host"), make_store("partner")
    for store in (host, partner):
        ledger.grant_starter_credits(store)
    viewed = make_product(host, "Hand Burr Grinder", topic_vector("coffee", seed=1))
    target = make_product(
        partner,
        '<img src=x onerror="alert(1)">Coffee Book',
        mixed_vector(("coffee", 0.8), ("books", 0.6), seed=2),
        url="https://partner.example/products/coffee-book?variant=7",
    )
    index_events.rebuild_index()
    return host, partner, viewed, target
