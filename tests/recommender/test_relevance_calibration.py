"""The calibrated relevance and what the taxonomy says, on small fixed data."""

from __future__ import annotations

import numpy as np
import pytest

from recommender.ranking import relevance
from recommender.ranking.relevance import Calibration, affinity


@pytest.mark.parametrize(
    ("a", "b", "expected"),
    [
        ("aa-1-10-2-10", "aa-1-10-2-9", relevance.SAME_CATEGORY_BRANCH),  # two kinds of coat
        ("hg-11-7-4", "hg-11-7-4-4", relevance.SAME_CATEGORY_BRANCH),  # coffee makers: presses
        ("hg-11-7-4-4", "hg-11-7-41", relevance.SAME_DEPARTMENT),  # a press, a refrigerator
        # A category three levels deep and one inside it: only the department, as for any
        # two categories under it ("Outerwear" holds rain coats as it holds fur stoles).
        ("aa-1-10", "aa-1-10-2-10", relevance.SAME_DEPARTMENT),
        ("aa-2", "aa-2", relevance.SAME_CATEGORY_BRANCH),
        ("fb-1-3-1", "hg-11-6-2-6", relevance.COMPLEMENT),  # coffee beans, grinders
        ("hg-11-6-2-6", "fb-1-3-1", relevance.COMPLEMENT),  # either order
        ("hg-11-2-3", "hg-11-10-5-5", relevance.SAME_DEPARTMENT),  # cookware, mugs
        ("hg-3-40-2", "hg-11-10", None),  # same vertical only: the taxonomy says nothing
        ("me-1-3", "hg-11-6-2-6", None),  # a book can be about anything
        ("", "hg-11-6-2-6", None),
        ("el-4", "ap-2-4", 0.0),  # an Ethernet switch and an aquarium
        ("aa-1-4", "hg-15-1-5", relevance.COMPLEMENT),  # a linen dress, a linen duvet cover
        ("hg-15-1-4", "aa-2-26", relevance.COMPLEMENT),  # either order: a throw, a scarf
        ("ap-2-6-10", "aa-1-10-2-10", relevance.COMPLEMENT),  # a dog's raincoat, the walker's
        ("ap-2-31-5", "sg-4-2-8", relevance.COMPLEMENT),  # a leash, trekking poles
        ("ap-2-41", "sg-4-2", relevance.COMPLEMENT),  # training aids, camping & hiking
        ("ap-2-6-10", "sg-4-2-2-1", 0.0),  # but not a dog's raincoat and a camp mug
        ("ap-2-9-8", "hg-15-1-4", relevance.COMPLEMENT),  # a dog bed, a throw blanket
        ("ap-2-26-7-3", "hg-15-4-1-1", relevance.COMPLEMENT),  # pet shampoo, bath towels
        ("sg-4-2-2-1", "fb-1-3-1", relevance.COMPLEMENT),  # a camp mug, coffee
        ("hg-11-7-38", "fb-1-14-2", relevance.COMPLEMENT),  # a camp stove, tea
        ("sg-4-2-17", "fb-1-3-1", 0.0),  # but not a tent and coffee
        ("hg-11-7-38", "fb-1-1", 0.0),  # nor a camp stove and alcoholic beverages
        ("hg-15-4-1-1", "aa-1-18-2", 0.0),  # nor bath towels and hiking socks
        ("ap-2-14-2", "hg-15-4-1-1", 0.0),  # a cat bowl and a towel stay unrelated
        ("ap-2-26-6", "hg-15-4-1-1", 0.0),  # so do nail clippers and a towel
        ("ap-2-9-8", "hg-15-1-5", 0.0),  # and a dog bed and a duvet cover
        ("ap-2-3-3-1", "sg-4-2-17", 0.0),  # and so do dog food and a tent
        ("ap-2-3-7", "aa-1-4", 0.0),  # and a dog toy and a dress
        ("sg-4-2-17", "aa-1-4", 0.0),  # and a tent and a dress
        ("sg-4-2-14", "aa-2-17-2", relevance.COMPLEMENT),  # a sleeping bag, a beanie
        ("aa-2-4", "sg-4-2-8", relevance.COMPLEMENT),  # a bandana, trekking poles
        ("sg-4-2-2-1", "aa-2-17-2", 0.0),  # but not a camp mug and a beanie
        ("sg-4-2-17", "aa-2-6", 0.0),  # but not a tent and a belt
        ("ap-2-31-5", "lb-1-15", relevance.COMPLEMENT),  # a leash, a hiking backpack
        ("ap-2-6-10", "aa-2-26", relevance.COMPLEMENT),  # a dog's raincoat, a scarf
        ("ap-2-3-7", "aa-2-17-2", 0.0),  # but not a dog toy and a beanie
        ("ap-2-9-8", "hg-3-57", relevance.COMPLEMENT),  # a dog bed, a rug
        ("os-4-9-9", "lb-1-15", relevance.COMPLEMENT),  # a notebook, a backpack
        ("os-4-9-9", "lb-13", relevance.COMPLEMENT),  # a notebook, a tote bag
        ("os-4-9-9", "lb-12-2", 0.0),  # but not a notebook and a suitcase
        # Ids from an earlier draft of the taxonomy are not read as complements: hg-10 is
        # Household Supplies, not linens.
        ("aa-1-4", "hg-10", 0.0),
    ],
)
def test_affinity_follows_the_taxonomy_tree_and_the_complements(a, b, expected):
    assert affinity(a, b) == expected


def test_content_is_the_share_of_unrelated_pairs_less_alike():
    calibration = Calibration(np.linspace(0.0, 0.4, len(relevance.PERCENTILES)))

    assert calibration.content(0.2) == pytest.approx(0.5, abs=1e-3)
    assert calibration.content(0.38) == pytest.approx(0.95, abs=1e-3)
    assert calibration.content(-1) == 0 and calibration.content(0.9) == 1


def test_relevance_combines_the_evidence_and_unrelated_verticals_never_pass_the_floor():
    calibration = Calibration(np.linspace(0.0, 0.4, len(relevance.PERCENTILES)))

    assert calibration.relevance(0.2, None) == pytest.approx(0.5, abs=1e-3)
    assert calibration.relevance(0.2, 0.8) == pytest.approx(1 - 0.5 * 0.2, abs=1e-3)
    assert calibration.relevance(0.39, 0.0) < relevance.MIN_RELEVANCE  # 0.975 alike, x 0.9
    assert calibration.relevance(0.9, 0.0) < relevance.MIN_RELEVANCE
    assert calibration.relevance(0.39, None) > relevance.MIN_RELEVANCE


def test_ties_in_the_table_keep_content_monotonic():
    table = np.concatenate([np.full(150, 0.1), np.linspace(0.1, 0.5, 51)])
    calibration = Calibration(table)

    values = [calibration.content(c) for c in (0.05, 0.1, 0.1001, 0.3, 0.5)]

    assert values == sorted(values) and values[-1] == pytest.approx(1.0, abs=1e-3)
    assert calibration.content(0.1001) >= 0.7  # above the tie, not thrown back to 0


def test_the_table_is_measured_on_unrelated_pairs_of_a_large_enough_network():
    rng = np.random.default_rng(0)
    count = 600
    stores = np.repeat(np.arange(6), count // 6)
    vectors = rng.normal(size=(count, 16)).astype(np.float32)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    unrelated = ["el-4" if s % 2 else "ap-2-4" for s in stores]  # two unrelated verticals

    table = relevance.unrelated_cosines(vectors, stores, unrelated)
    too_small = relevance.unrelated_cosines(vectors[:50], stores[:50], unrelated[:50])

    assert table is not None and len(table) == len(relevance.PERCENTILES)
    assert abs(float(np.median(table))) < 0.05  # random 16-d vectors: centred on 0
    assert too_small is None


def test_a_books_topic_is_the_narrowest_branch_most_of_its_neighbours_are_in():
    coffee = [("fb-1-3-1", 0.5), ("hg-11-6-2-6", 0.45), ("fb-1-3-1", 0.4), ("fb-1-3-2", 0.3)]
    dogs = [("ap-2-3-7", 0.4), ("ap-2-9-8", 0.35), ("ap-2-41-1", 0.3), ("sg-4-2-8", 0.3)]

    assert relevance.inferred_topic(coffee) == "fb-1-3"  # coffee, three levels
    # No three-level branch has most of the dog book's neighbours: pet supplies, two.
    assert relevance.inferred_topic(dogs) == "ap-2"


def test_a_book_whose_neighbours_agree_on_nothing_or_are_too_few_has_no_topic():
    slow_living = [("hg-3-40-2", 0.3), ("hg-11-10-5", 0.3), ("ap-2-14-5", 0.28), ("aa-1-4", 0.25)]
    other_books = [("me-1-3", 0.9), ("me-1-3", 0.8), ("fb-1-3-1", 0.3), ("fb-1-3-1", 0.3)]

    assert relevance.inferred_topic(slow_living) is None
    assert relevance.inferred_topic(other_books) is None  # books are no evidence: two left
    assert relevance.inferred_topic([]) is None


def test_only_the_nearest_neighbours_vote_on_a_topic():
    near = [("fb-1-14-2", 0.5)] * relevance.TOPIC_NEIGHBOURS
    far = [("ap-2-3-7", 0.45)] * (relevance.TOPIC_NEIGHBOURS + 1)

    assert relevance.inferred_topic(near + far) == "fb-1-14"


@pytest.mark.parametrize(
    ("topic", "item", "expected"),
    [
        # A book about kitchen and dining at large, with a tea's page: teapots and tea tins
        # (parts of that branch) go with tea, so the taxonomy says nothing; content decides.
        ("hg-11", "fb-1-14-2", None),
        ("hg-11", "ap-2-3-3-1", 0.0),  # but dog food complements no part of it
        ("fb-1-3", "ap-2-2-2-6", 0.0),  # nor a cat's window perch any part of coffee
        ("fb-1-3", "hg-11-6-2-6", relevance.COMPLEMENT),  # coffee and grinders, as ever
    ],
)
def test_a_topic_rules_out_only_what_no_part_of_it_complements(topic, item, expected):
    assert relevance.topic_affinity(topic, item) == expected
    assert relevance.topic_affinity(item, topic) == expected


def test_a_books_neighbours_relate_it_to_an_item_where_its_topic_says_nothing():
    # A tea history book: near teapots, strainers and teas. Its topic is kitchen and dining
    # (hg-11), which says nothing of a tea's page; every one of its neighbours goes with tea.
    tea_book = relevance.topic_neighbours(
        [("hg-11-10-2", 0.45), ("hg-11-8-75", 0.4), ("fb-1-14-2", 0.35), ("hg-11-10-2", 0.3)]
    )
    assert relevance.inferred_topic(tea_book) == "hg-11"
    assert relevance.topic_affinity("hg-11", "fb-1-14-2") is None
    # Teapots and strainers complement tea (0.8), the tea is of its branch (0.8).
    assert relevance.neighbours_affinity(tea_book, "fb-1-14-2") == pytest.approx(0.8)
    # A cast iron pan is in the same department as the teapots (0.6), not as the tea.
    mixed = relevance.neighbours_affinity(tea_book, "hg-11-2-3")
    assert mixed == pytest.approx(0.6)  # the related neighbours' mean (teapots, strainer)
    # Dog food goes with none of them.
    assert relevance.neighbours_affinity(tea_book, "ap-2-3-3-1") is None


def test_a_books_neighbours_speak_only_as_a_clear_majority_and_never_for_other_books():
    # Two thirds of the cosine with the item is not enough (a book near mugs, plates and
    # carafes is not about coffee because mugs go with coffee and plates half do).
    two_thirds = relevance.topic_neighbours(
        [("fb-1-14-2", 0.4), ("ap-2-3-7", 0.3), ("fb-1-14-2", 0.2), ("ap-2-9-8", 0.0001)]
    )
    assert relevance.neighbours_affinity(two_thirds, "hg-11-8-75") is None
    most = relevance.topic_neighbours(
        [("fb-1-14-2", 0.4), ("ap-2-3-7", 0.3), ("fb-1-14-2", 0.21), ("ap-2-9-8", 0.0001)]
    )
    assert relevance.neighbours_affinity(most, "hg-11-8-75") == pytest.approx(0.8)
    assert relevance.neighbours_affinity(most, "me-1-3") is None  # a book beside a book
    assert relevance.neighbours_affinity(most, "") is None
    assert relevance.neighbours_affinity(most[:2], "hg-11-8-75") is None  # too few


def test_a_books_neighbours_leave_out_books_and_keep_the_nearest():
    listed = [("me-1-3", 0.9), ("fb-1-3-1", 0.5), ("", 0.4), ("hg-11-6-2-6", -0.1)]
    listed += [("ap-2-3-7", 0.3)] * (relevance.TOPIC_NEIGHBOURS + 2)

    nearest = relevance.topic_neighbours(listed)

    assert nearest[0] == ("fb-1-3-1", 0.5)
    assert len(nearest) == relevance.TOPIC_NEIGHBOURS
    assert all(key and not relevance.is_topical(key) and cosine > 0 for key, cosine in nearest)
