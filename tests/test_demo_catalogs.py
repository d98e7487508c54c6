"""The demo stores' catalogs: what `make demo` shows merchants and shoppers, and what the
relevance and learning benchmarks measure on."""

from __future__ import annotations

import pytest

from simulator.demo_shops import NICHES, catalog


def _items(product_type: tuple) -> set[str]:
    return {entry if isinstance(entry, str) else entry[0] for entry in product_type[3]}


@pytest.mark.parametrize("niche", NICHES, ids=lambda niche: niche["handle"])
def test_item_qualifiers_name_items_of_their_type(niche):
    """An item's own qualifiers are keyed by its name; a name that matches no item of the
    type would be ignored without a word, and the item listed under its type's."""
    for product_type in niche["types"]:
        words = product_type[5] if len(product_type) > 5 else {}
        assert set(words.get("item_qualifiers", {})) <= _items(product_type), product_type[0]


@pytest.mark.parametrize("niche", NICHES, ids=lambda niche: niche["handle"])
def test_titles_name_a_product_once(niche):
    products = catalog(niche)
    titles = [product["title"] for product in products]
    assert len(titles) == len(set(titles))
    # A qualifier the item's name already holds is not added again ("Organic Uji Matcha",
    # not "Organic Uji Matcha Organic"); a placeholder one puts the item inside it.
    for title in titles:
        words = title.lower().split()
        assert len(words) == len(set(words)), title
        assert "{}" not in title


def test_qualifiers_and_phrases_come_from_the_type_where_it_gives_them():
    coffee = catalog(next(niche for niche in NICHES if niche["handle"] == "coffee-corner"))
    grinders = [product for product in coffee if product["product_type"] == "Coffee Grinders"]
    beans = [product for product in coffee if product["product_type"] == "Coffee Beans"]
    assert grinders and beans
    assert not any("Roast" in product["title"] for product in grinders)
    assert not any("stone fruit" in product["body_html"] for product in grinders)
    assert any("Roast" in product["title"] for product in beans)
    trail = catalog(next(niche for niche in NICHES if niche["handle"] == "trail-outfitters"))
    assert "Men's Rain Shell Jacket" in {product["title"] for product in trail}
    aeropress = {product["title"] for product in coffee if "AeroPress" in product["title"]}
    assert aeropress <= {
        "AeroPress Coffee Maker",
        "AeroPress Coffee Maker Clear",
        "AeroPress Coffee Maker with Travel Case",
    }
