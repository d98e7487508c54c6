"""How related a partner item is to the page it would be shown on: one score in [0, 1] whose
floor is a statement about relatedness, not a raw cosine. Plain NumPy, no Django.

Two pieces of evidence, combined as independent ones (a noisy-OR):

- **Content**, calibrated from the network's own data: the share of *unrelated* cross-store
  pairs (different verticals of Shopify's standard product taxonomy that no complement
  links; all cross-store pairs when categories are unknown) whose cosine is lower than this
  pair's. A content score of 0.95 says "more alike than 95 % of unrelated pairs". Each index
  build recomputes the table from a sample of pairs; small networks use the table measured
  on the demo network (``DEFAULT_UNRELATED_COSINES``).
- **Taxonomy**: how close the two products' categories are in the taxonomy tree (same
  category or branch), or whether the categories are known complements (coffee and
  grinders, tea and teapots, camping gear and outerwear; ``COMPLEMENTS``).

Pairs whose verticals the taxonomy says are unrelated (an Ethernet switch and an aquarium)
are discounted so that no cosine alone gets them over the floor. Books ("Media") are about
anything, and their category does not say what: a book's topic is read from the products
nearest to it (``inferred_topic``: a coffee book's neighbours are beans, grinders and
filters), and the taxonomy then speaks for that topic, so a coffee book goes with grinders
and kettles and not with a cat's window perch. Where the topic says nothing of an item (no
branch holds a majority of the neighbours, or only part of the branch goes with the item),
the neighbours speak for themselves: a book more than two thirds of whose neighbours go
with the item is related to it (a tea history book near teapots and strainers, with a
tea). Else content alone decides.
"""

from __future__ import annotations

import functools
from collections import Counter
from collections.abc import Iterable, Sequence
from typing import TypeVar

import numpy as np

# The widget shows nothing scoring below this (the RECOMMENDER_MIN_RELEVANCE default): an
# item must be more alike than 95 % of unrelated pairs, or less alike but in a related or
# complementary category.
MIN_RELEVANCE = 0.95
# The same category, or four or more taxonomy levels in common ("... > Outerwear > Coats &
# Jackets"). Three are not enough: "Home & Garden > Kitchen & Dining > Kitchen Appliances"
# holds coffee makers and refrigerators.
SAME_CATEGORY_BRANCH = 0.8
SAME_DEPARTMENT = 0.6  # two or three levels: "Home & Garden > Kitchen & Dining"
COMPLEMENT = 0.8
UNRELATED_DISCOUNT = 0.9  # different verticals, no complement: never over a floor above 0.9
TOPICAL_VERTICALS = frozenset({"me"})  # Media: a book can be about anything
# A topical product's topic: the narrowest taxonomy branch of TOPIC_LEVELS levels ("fb-1-3",
# coffee; else "fb-1", beverages) holding a majority of the cosines of its TOPIC_NEIGHBOURS
# nearest products in other stores (topical ones left out), with at least
# MIN_TOPIC_NEIGHBOURS of them there. One level says nothing ("hg": home and garden).
TOPIC_NEIGHBOURS = 10
MIN_TOPIC_NEIGHBOURS = 3
TOPIC_LEVELS = (3, 2)
# A book and the items beside it need at least this cosine whatever the taxonomy says (the
# RECOMMENDER_RELEVANCE_FLOOR below it asks of everything else), and so do the neighbours
# its topic is read from: a topic read from neighbours is weaker evidence than a category
# of the item's own. Measured on the demo network, at 0.15 a hiking book's neighbours
# (backpacks, which go with clothing) put a Breton top beside it.
TOPIC_MIN_COSINE = 0.2
# Where the topic says nothing of an item (no branch holds a majority, or the branch that
# does is only partly complemented by the item's category: a tea history book is near
# teapots, strainers and teas, so its topic is "kitchen and dining", and only parts of that
# go with a tea), a topical product is related to the item when more than
# NEIGHBOURS_AGREE of its neighbours' cosine is in categories related to the item's (all
# of the tea book's neighbours go with a tea): as closely as those neighbours are, on
# average. Two thirds, not a bare majority: relations chain (a book near mugs, plates and
# carafes is not about coffee because mugs go with coffee), and on the demo network a bare
# majority put a houseplant book beside coffee beans and a dog-training book beside a
# hydration pack, for no page more filled.
NEIGHBOURS_AGREE = 2 / 3

# What a dog is walked in and with: pet apparel, collars & harnesses, leashes, training aids.
_DOG_WALKING = ("ap-2-6", "ap-2-17", "ap-2-31", "ap-2-41")
# What cooks and holds a drink in camp: camping cookware & dinnerware, portable stoves.
_CAMP_KITCHEN = ("sg-4-2-2", "hg-11-7-38")
# Where a hiker sleeps, sits and walks: tents, sleeping bags, sleeping pads, camping lights,
# camp furniture, hiking poles.
_CAMP_AND_TRAIL = ("sg-4-2-17", "sg-4-2-14", "sg-4-2-15", "sg-4-2-3", "sg-4-2-1", "sg-4-2-8")
# What furnishes a room around its bed and sofa: rugs, cushion covers, throw pillows.
_ROOM_TEXTILES = ("hg-3-14", "hg-3-57", "hg-3-64")

# Category pairs that shoppers buy together, across branches of Shopify's standard product
# taxonomy (either order; a prefix covers its subcategories; the taxonomy keeps a category's
# id across its releases, checked against 2025-01). Documented judgement, not learned:
# clicks refine it.
COMPLEMENTS: frozenset[tuple[str, str]] = frozenset(
    {
        ("fb-1-3", "hg-11-7-4"),  # coffee: coffee makers & espresso machines
        ("fb-1-3", "hg-11-6-2"),  # coffee: coffee maker accessories (grinders, filters)
        ("fb-1-3", "hg-11-2-3-15"),  # coffee: stovetop kettles (pour-over)
        ("fb-1-3", "hg-11-7-11"),  # coffee: electric kettles
        ("fb-1-14", "hg-11-8-75"),  # tea: tea strainers
        ("fb-1-14", "hg-11-2-3-15"),  # tea: stovetop kettles
        ("fb-1-14", "hg-11-7-11"),  # tea: electric kettles
        ("fb-1-3", "hg-11-7-32"),  # coffee: milk frothers & steamers
        ("fb-1-14", "hg-11-7-45"),  # tea: tea makers
        ("fb-1-3", "hg-11-10-1"),  # coffee: coffee & tea sets
        ("fb-1-14", "hg-11-10-1"),  # tea: coffee & tea sets
        ("fb-1", "hg-11-10-2"),  # beverages: coffee servers & teapots
        ("fb-1", "hg-11-10-5"),  # beverages: drinkware (mugs, cups)
        ("fb-1", "hg-11-10-7"),  # beverages: serveware (carafes)
        ("sg-4-2", "aa-1-10"),  # camping & hiking: outerwear
        # A night in camp and a day on the trail: tents, sleeping bags and pads, lights,
        # camp furniture and hiking poles with hats (a beanie) and bandanas (sun, sweat,
        # dust). Not the camp kitchen: a mug is no match for a beanie.
        *((camp, "aa-2-17") for camp in _CAMP_AND_TRAIL),
        *((camp, "aa-2-4") for camp in _CAMP_AND_TRAIL),
        ("sg-4-2", "lb-1"),  # camping & hiking: backpacks
        ("aa", "lb"),  # clothing: bags
        # Coffee and tea on the trail: what brews and holds them in camp (camping cookware
        # and cups; portable stoves, which the taxonomy files under kitchen appliances)
        # with coffee, tea, grinders and stovetop kettles. Not a tent or a headlamp.
        *((camp, "fb-1-3") for camp in _CAMP_KITCHEN),
        *((camp, "fb-1-14") for camp in _CAMP_KITCHEN),
        *((camp, "hg-11-6-2-6") for camp in _CAMP_KITCHEN),
        *((camp, "hg-11-2-3-15") for camp in _CAMP_KITCHEN),
        ("hg-11-7-38", "sg-4-2"),  # portable stoves: camping & hiking
        # Bedding: the rugs, cushion covers and throw pillows of the same room.
        *(("hg-15-1", textile) for textile in _ROOM_TEXTILES),
        ("os-4-9-9", "me-1"),  # notebooks: books
        # Notebooks: what carries them (backpacks, totes). Not bags as a whole: a suitcase
        # is no match for a journal.
        ("os-4-9-9", "lb-1"),
        ("os-4-9-9", "lb-11"),
        ("os-4-9-9", "lb-13"),
        # Clothing and clothing accessories: bedding. Clothes and home textiles are chosen
        # for the same materials and look (a wool scarf and a wool throw, a linen dress and
        # linen bedding), and lifestyle shops sell both; not towels or napkins. Measured on
        # the demo network, 72-79 % of dress, top and accessory / home textile pairs are
        # more alike than 95 % of unrelated pairs are (5 % for unrelated categories, by
        # definition).
        ("aa-1", "hg-15-1"),
        ("aa-2", "hg-15-1"),
        # Dog walking gear: camping & hiking, outerwear, backpacks, hats and scarves. Dogs
        # are walked in every weather and come on hikes: the walker's rain shell, fleece,
        # daypack, winter beanie and scarf and trekking poles go with the dog's raincoat,
        # leash and treat pouch. Not dog food, toys or bowls; not the camp kitchen either
        # (NOT_COMPLEMENTS).
        *((walking, "sg-4-2") for walking in _DOG_WALKING),
        *((walking, "aa-1-10") for walking in _DOG_WALKING),
        *((walking, "lb-1") for walking in _DOG_WALKING),
        *((walking, "aa-2-17") for walking in _DOG_WALKING),
        *((walking, "aa-2-26") for walking in _DOG_WALKING),
        # Pet beds: blankets and throws (the sofa and the bed a dog or a cat shares); pet
        # shampoo: towels (a dog's bath); dog beds and cat furniture: rugs and cushions
        # (chosen to suit the room). Not pet supplies and linens as a whole: a bath towel or
        # a duvet cover is no match for cat bowls, kibble or a litter box. Not camping gear and
        # clothing beyond outerwear either: with that pair related, a camp stove page
        # showed a sweater dress.
        ("ap-2-9", "hg-15-1-4"),
        ("ap-2-26-7", "hg-15-4"),
        *(("ap-2-2-2", textile) for textile in _ROOM_TEXTILES),
        *(("ap-2-9", textile) for textile in _ROOM_TEXTILES),
    }
)

# Category pairs that a broader pair of COMPLEMENTS covers and that are not complements
# (either order, prefixes as there; checked first). Dog walking gear goes with camping &
# hiking, but not with its cookware: a camp mug's page showed a dog raincoat.
NOT_COMPLEMENTS: frozenset[tuple[str, str]] = frozenset(
    (walking, "sg-4-2-2") for walking in _DOG_WALKING
)

# Cosines of unrelated cross-store pairs at some percentiles, measured on the demo network
# (8 stores, 489 products, every one of its 66,078 unrelated cross-store pairs): the
# fallback table, kept at PERCENTILES.
_DEFAULT_PERCENTILES = np.array([0, 50, 80, 90, 95, 98, 99, 100], dtype=np.float32)
_DEFAULT_COSINES = np.array([-0.197, 0.107, 0.18, 0.218, 0.25, 0.287, 0.315, 0.53], np.float32)
PERCENTILES = np.linspace(0, 100, 201, dtype=np.float32)
DEFAULT_UNRELATED_COSINES = np.interp(PERCENTILES, _DEFAULT_PERCENTILES, _DEFAULT_COSINES)
# A network smaller than this uses the default table: its pairs are too few, and too
# alike in who chose to join, to say what an unrelated pair looks like.
MIN_CALIBRATION_PRODUCTS = 300
MIN_CALIBRATION_PAIRS = 5_000
CALIBRATION_SAMPLE = 200_000


def category_key(category_id: str) -> str:
    """'gid://shopify/TaxonomyCategory/hg-11-1-5' -> 'hg-11-1-5' ('' when unknown)."""
    return (category_id or "").rsplit("/", 1)[-1]


def _within(key: str, prefix: str) -> bool:
    return key == prefix or key.startswith(prefix + "-")


def is_topical(key: str) -> bool:
    """A category (key) whose products can be about anything: a book."""
    return key.split("-", 1)[0] in TOPICAL_VERTICALS if key else False


# (category key, cosine, ...): a neighbour as topic_neighbours takes and gives it back.
_Neighbour = TypeVar("_Neighbour", bound=tuple)


def topic_neighbours(neighbours: Iterable[_Neighbour]) -> tuple[_Neighbour, ...]:
    """The neighbours that speak for a topical product's topic, from its nearest products in
    other stores, nearest first as (category key, cosine, ...anything the caller keeps with
    them): the first ``TOPIC_NEIGHBOURS`` with a category that is not topical (another book
    says nothing of what a book is about) and a positive cosine."""
    nearest: list[_Neighbour] = []
    for neighbour in neighbours:
        key, cosine = neighbour[0], neighbour[1]
        if key and not is_topical(key) and cosine > 0:
            nearest.append(neighbour)
            if len(nearest) == TOPIC_NEIGHBOURS:
                break
    return tuple(nearest)


def inferred_topic(neighbours: Iterable[tuple[str, float]]) -> str | None:
    """What a topical product is about, from its nearest products in other stores, nearest
    first as (category key, cosine): the narrowest branch (``TOPIC_LEVELS``) holding a
    majority of its ``topic_neighbours``' cosine, or None when none does (a book about slow
    living is near candles, mugs and dog bowls alike) or too few are known."""
    nearest = topic_neighbours(neighbours)
    if len(nearest) < MIN_TOPIC_NEIGHBOURS:
        return None
    total = sum(cosine for _, cosine in nearest)
    for levels in TOPIC_LEVELS:
        weights: Counter[str] = Counter()
        for key, cosine in nearest:
            parts = key.split("-")
            if len(parts) >= levels:
                weights["-".join(parts[:levels])] += cosine
        if weights:
            branch, weight = max(weights.items(), key=lambda item: (item[1], item[0]))
            if weight > total / 2:
                return branch
    return None


@functools.lru_cache(maxsize=65_536)  # a network has few distinct category pairs
def affinity(a: str, b: str) -> float | None:
    """What the taxonomy says about two categories (keys): a strength in (0, 1], 0 for
    unrelated verticals, None when it says nothing (a category unknown, same vertical
    only, or a topical vertical)."""
    if not a or not b:
        return None
    pa, pb = a.split("-"), b.split("-")
    common = 0
    for x, y in zip(pa, pb, strict=False):
        if x != y:
            break
        common += 1
    if a == b or common >= 4:
        return SAME_CATEGORY_BRANCH
    if _paired(a, b, COMPLEMENTS) and not _paired(a, b, NOT_COMPLEMENTS):
        return COMPLEMENT
    if common >= 2:
        return SAME_DEPARTMENT
    if common == 1 or pa[0] in TOPICAL_VERTICALS or pb[0] in TOPICAL_VERTICALS:
        return None
    return 0.0


@functools.lru_cache(maxsize=65_536)  # asked per book and candidate: few distinct pairs
def topic_affinity(a: str, b: str) -> float | None:
    """``affinity`` where a key may be a book's inferred topic: a topic that names a whole
    branch ("hg-11", kitchen and dining) does not rule out an item that a part of that
    branch complements (a book near teapots and tea tins, with a tea's page): the taxonomy
    then says nothing, and content decides."""
    value = affinity(a, b)
    if value == 0 and (_complements_part_of(a, b) or _complements_part_of(b, a)):
        return None
    return value


def neighbours_affinity(nearest: Sequence[tuple[str, float]], key: str) -> float | None:
    """What a topical product's ``topic_neighbours`` say of an item in the category ``key``
    where its topic says nothing: when more than ``NEIGHBOURS_AGREE`` of their cosine is in
    categories related to it (the same branch or department, or a complement), the
    cosine-weighted mean of those relations; else None (content decides)."""
    if len(nearest) < MIN_TOPIC_NEIGHBOURS or not key or is_topical(key):
        return None
    weight = strength = 0.0
    for near, cosine in nearest:
        related = affinity(near, key) or 0.0
        if related > 0:
            weight += cosine
            strength += cosine * related
    if weight <= NEIGHBOURS_AGREE * sum(cosine for _, cosine in nearest):
        return None
    return strength / weight


def _paired(a: str, b: str, pairs: Iterable[tuple[str, str]]) -> bool:
    return any(
        (_within(a, x) and _within(b, y)) or (_within(a, y) and _within(b, x)) for x, y in pairs
    )


def _complements_part_of(branch: str, key: str) -> bool:
    return any(
        (_within(key, x) and _within(y, branch)) or (_within(key, y) and _within(x, branch))
        for x, y in COMPLEMENTS
    )


class Calibration:
    """Content evidence: the share of unrelated pairs less alike than a cosine."""

    def __init__(self, unrelated_cosines: Sequence[float] | None = None):
        table = DEFAULT_UNRELATED_COSINES if unrelated_cosines is None else unrelated_cosines
        # Strictly increasing, so interpolation is defined where many pairs tie (duplicates).
        rising = np.maximum.accumulate(np.asarray(table, dtype=np.float64))
        self.unrelated_cosines = rising + np.arange(len(rising)) * 1e-7

    def content(self, cosine: float) -> float:
        return float(np.interp(cosine, self.unrelated_cosines, PERCENTILES) / 100)

    def relevance(self, cosine: float, taxonomy: float | None) -> float:
        content = self.content(cosine)
        if taxonomy is None:
            return content
        if taxonomy == 0:
            return content * UNRELATED_DISCOUNT
        return 1 - (1 - content) * (1 - taxonomy)


def unrelated_cosines(
    vectors: np.ndarray, stores: np.ndarray, categories: Sequence[str], *, seed: int = 0
) -> np.ndarray | None:
    """The calibration table of a network: cosines of a sample of cross-store pairs the
    taxonomy calls unrelated (or of all cross-store pairs when too few categories are
    known), at ``PERCENTILES``; None when the network is too small to say."""
    count = len(vectors)
    if count < MIN_CALIBRATION_PRODUCTS or len(np.unique(stores)) < 3:
        return None
    rng = np.random.default_rng(seed)
    left = rng.integers(0, count, CALIBRATION_SAMPLE)
    right = rng.integers(0, count, CALIBRATION_SAMPLE)
    cross = stores[left] != stores[right]
    left, right = left[cross], right[cross]
    keys = [category_key(c) for c in categories]
    unrelated = np.array(
        [affinity(keys[i], keys[j]) == 0 for i, j in zip(left, right, strict=True)], bool
    )
    if unrelated.sum() >= MIN_CALIBRATION_PAIRS:
        left, right = left[unrelated], right[unrelated]
    elif len(left) < MIN_CALIBRATION_PAIRS or np.mean([bool(k) for k in keys]) > 0.5:
        return None  # too small, or categorised but too few unrelated pairs to measure
    cosines = np.einsum("ij,ij->i", vectors[left], vectors[right])
    return np.percentile(cosines, PERCENTILES).astype(np.float32)
