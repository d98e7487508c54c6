"""The ranking rules at their boundaries, each test written to fail when its rule is
switched off (scripts/mutation.py checks that they do)."""

from __future__ import annotations

import math
from decimal import Decimal

import pytest

from recommender import runtime
from recommender.catalog import index_events
from recommender.exchange import ledger, rules
from recommender.models import Product, WidgetSettings
from recommender.ranking import competitors, live_index, network, recommendations
from tests.factories import make_product, make_store, topic_vector, toward

pytestmark = pytest.mark.django_db


@pytest.fixture
def host(private_index):
    store = make_store("host")
    ledger.grant_starter_credits(store)
    return store


@pytest.fixture
def query(host):
    vector = topic_vector("coffee", seed=1)
    viewed = make_product(host, "Hand Grinder", vector)
    return viewed, vector


def partner(name: str) -> object:
    store = make_store(name)
    ledger.grant_starter_credits(store)
    return store


def show(host, viewed, **widget) -> list:
    index_events.rebuild_index()
    runtime.reset()
    live_index.current(refresh=True)
    WidgetSettings.objects.filter(store=host).update(**widget)
    return recommendations.recommendations_for(host, product_id=viewed.shopify_id)


def test_each_partner_is_represented_by_its_most_similar_product(host, query):
    viewed, vector = query
    other = topic_vector("books", seed=3)
    shop = partner("shop")
    weaker = make_product(shop, "Weaker match", toward(vector, other, 0.70))
    stronger = make_product(shop, "Stronger match", toward(vector, other, 0.80))

    items = show(host, viewed, own_share=0, avoid_competitors=False)

    (item,) = [i for i in items if i.slot == "partner"]
    assert item.product.pk == stronger.pk != weaker.pk
    assert item.similarity == pytest.approx(0.80, abs=1e-4)


def test_an_item_exactly_at_the_floor_is_shown_and_one_just_below_is_not(host, query, settings):
    viewed, vector = query
    other = topic_vector("dogs", seed=4)
    at, below = partner("at"), partner("below")
    make_product(at, "At the floor", toward(vector, other, 0.50))
    make_product(below, "Just below", toward(vector, other, 0.49))
    index_events.rebuild_index()
    exact = live_index.current(refresh=True).search(vector, 5)
    settings.RECOMMENDER_RELEVANCE_FLOOR = next(h.score for h in exact if h.store_id == at.pk)

    shown = {i.product.store_id for i in show(host, viewed, own_share=0, avoid_competitors=False)}

    assert shown == {at.pk}


def test_own_products_stop_at_the_floor_and_never_repeat_the_viewed_one(host, query, settings):
    viewed, vector = query
    other = topic_vector("tea", seed=5)
    close = make_product(host, "Close", toward(vector, other, 0.9))
    make_product(host, "Far", toward(vector, other, 0.2))
    settings.RECOMMENDER_RELEVANCE_FLOOR = 0.5

    items = show(host, viewed, own_share=100, items=3)

    assert [i.product.pk for i in items if i.slot == "own"] == [close.pk]


@pytest.mark.parametrize(
    ("items", "own_share", "own_slots"),
    [
        (4, 25, 1), (4, 50, 2), (4, 0, 0), (3, 100, 3), (10, 15, 2),
        # A share below 100 % leaves a partner slot, one above 0 % an own slot where two or
        # more items leave room for both; halves round up (Python's round() made 2 items at
        # 25 % no own slot, 2 at 75 % and 4 at 90 % no partner slot).
        (2, 75, 1), (4, 90, 3), (1, 60, 0), (2, 25, 1), (3, 50, 2), (5, 50, 3), (2, 99, 1),
        (3, 1, 1),
    ],
)  # fmt: skip
def test_the_own_products_share_sets_how_many_slots_are_the_hosts(
    host, query, settings, items, own_share, own_slots
):
    viewed, _vector = query
    settings.RECOMMENDER_RELEVANCE_FLOOR = -1.0
    for n in range(10):
        make_product(host, f"Own {n}", topic_vector("coffee", seed=10 + n))
        make_product(partner(f"p{n}"), f"Partner {n}", topic_vector("coffee", seed=30 + n))

    shown = show(host, viewed, items=items, own_share=own_share, avoid_competitors=False)

    assert sum(i.slot == "own" for i in shown) == own_slots
    assert sum(i.slot == "partner" for i in shown) == items - own_slots


def test_an_excluded_category_is_never_shown_among_the_hosts_own_products_either(host, query):
    """ "Product categories you never show": the merchant's own products of such a category
    were still shown in the widget's own slots; the next nearest take their place."""
    viewed, vector = query
    other = topic_vector("tea", seed=5)
    excluded = "gid://shopify/TaxonomyCategory/fb-1-14"
    nearest = make_product(host, "Nearest", toward(vector, other, 0.95))
    Product.objects.filter(pk=nearest.pk).update(category_id=excluded + "-2")  # a subcategory
    next_nearest = make_product(host, "Next", toward(vector, other, 0.85))

    items = show(host, viewed, own_share=100, items=1, excluded_categories=[excluded])

    assert [i.product.pk for i in items] == [next_nearest.pk]


@pytest.mark.parametrize(
    ("category", "excluded", "hidden"),
    [
        ("gid://shopify/TaxonomyCategory/fb-1-14", "gid://shopify/TaxonomyCategory/fb-1-14", True),
        ("gid://shopify/TaxonomyCategory/fb-1-14-2", "gid://shopify/TaxonomyCategory/fb-1", True),
        ("gid://shopify/TaxonomyCategory/fb-1", "gid://shopify/TaxonomyCategory/fb-1-14", False),
        ("gid://shopify/TaxonomyCategory/fb-11", "gid://shopify/TaxonomyCategory/fb-1", False),
        ("", "gid://shopify/TaxonomyCategory/fb-1", False),
    ],
)
def test_an_excluded_category_hides_itself_and_its_subcategories_only(category, excluded, hidden):
    product = Product(category_id=category)

    assert recommendations.in_categories(product, {excluded}) is hidden
    assert recommendations.in_categories(product, set()) is False


@pytest.mark.parametrize(
    ("balance", "catalog", "expected"),
    [
        (rules.STARTER_GRANT, 1, 0.5),  # no standing, the smallest catalog
        (rules.STARTER_GRANT, 1000, 0.0),
        (rules.STARTER_GRANT + 20, 1000, 0.5 * math.tanh(1)),
        (rules.STARTER_GRANT - 20, 10, 0.5 * math.tanh(-1) + 0.5 * (1 - 1 / 3)),
    ],
)
def test_fairness_is_the_published_blend_of_standing_and_smallness(balance, catalog, expected):
    assert network.fairness_of(balance=Decimal(balance), catalog_size=catalog) == pytest.approx(
        expected
    )


@pytest.mark.parametrize(
    ("a", "b", "same"),
    [
        (("Acme Grinder EZX-88", "Acme"), ("Other brand EZX-88 grinder", "Other"), True),
        (("Burr Grinder Deluxe", "A"), ("Burr Grinder Deluxe", "B"), True),  # identical titles
        (("Burr Grinder", "Acme"), ("Burr Grinder Pro Max", "Acme"), True),  # brand, alike
        (("Burr Grinder", "Acme"), ("Burr Grinder Pro Max", "Other"), False),  # alike, no brand
        (("Burr Grinder", "Acme"), ("Linen Dress", "Acme"), False),  # brand, unlike
        # A size is no model number: two 32GB kits of two makes are two items.
        (("Vengeance LPX 32GB Kit", "Corsair"), ("Fury Beast 32GB Memory", "Kingston"), False),
        # A reference of digits alone, written two ways, and its sibling.
        (("Seamaster Diver blue dial 2541.80.00", "A"), ("Mens automatic Ref 25418000", "B"), True),
        (("Seamaster Diver blue dial 2541.80.00", "A"), ("Seamaster Diver 2531.80.00", "B"), False),
    ],
)
def test_the_same_item_is_told_by_model_numbers_titles_and_brand(a, b, same):
    first = Product(title=a[0], vendor=a[1])
    second = Product(title=b[0], vendor=b[1])

    assert competitors.same_item(first, second) is same
    assert competitors.same_item(second, first) is same


def test_a_store_is_the_same_niche_only_at_the_published_profile_similarity(host, query):
    _viewed, vector = query
    other = topic_vector("dresses", seed=6)
    twin, cousin = partner("twin"), partner("cousin")
    make_product(twin, "Twin", toward(vector, other, 0.95))
    make_product(cousin, "Cousin", toward(vector, other, 0.85))
    index_events.rebuild_index()
    index = live_index.current(refresh=True)

    same = competitors.same_niche_stores(index, host_id=host.pk)

    host_profile = index.store_profile(host.pk)
    for store, expected in ((twin, True), (cousin, False)):
        similarity = float(host_profile @ index.store_profile(store.pk))
        assert (similarity >= competitors.SAME_NICHE_PROFILE_SIMILARITY) is expected
        assert (store.pk in same) is expected


def test_an_own_product_exactly_at_the_floor_is_shown(host, query, settings):
    viewed, vector = query
    at = make_product(host, "At the floor", toward(vector, topic_vector("tea", seed=7), 0.6))
    index_events.rebuild_index()
    product_ids, vectors = live_index.current(refresh=True).store_vectors(host.pk)
    settings.RECOMMENDER_RELEVANCE_FLOOR = float((vectors @ vector)[product_ids.index(at.pk)])

    items = show(host, viewed, own_share=100, items=3)

    assert [i.product.pk for i in items if i.slot == "own"] == [at.pk]


def test_own_products_need_more_than_the_partner_floor_at_the_defaults(host, query):
    # No category speaks for them: a partner's item at this cosine is shown only in a
    # category related to the page's.
    viewed, vector = query
    other = topic_vector("tea", seed=7)
    kept = make_product(host, "Alike", toward(vector, other, 0.21))
    make_product(host, "Less alike", toward(vector, other, 0.18))

    items = show(host, viewed, own_share=100, items=3)

    assert [i.product.pk for i in items if i.slot == "own"] == [kept.pk]


@pytest.mark.parametrize(
    ("page", "complement", "unrelated"),
    [
        ("aa-1-4", "hg-15-1-5", "ap-2-2-4-3"),  # a dress: a duvet cover, never a litter box
        ("aa-2-26", "hg-15-1-4", "sg-4-2-17"),  # a scarf: a throw, never a tent
        ("ap-2-31-5", "aa-1-10-2-10", "aa-1-4"),  # a leash: the walker's shell, never a dress
    ],
)
def test_a_documented_complement_fills_a_slot_that_a_closer_unrelated_item_cannot(
    host, settings, page, complement, unrelated
):
    settings.RECOMMENDER_RELEVANCE_FLOOR = 0.2
    taxonomy = "gid://shopify/TaxonomyCategory/"
    vector = topic_vector("dresses", seed=8)
    viewed = make_product(host, "Viewed", vector, category_id=taxonomy + page)
    other = topic_vector("dogs", seed=9)
    fits, alike = partner("fits"), partner("alike")
    # Below what content alone passes on (about the 92nd percentile of unrelated pairs)...
    make_product(fits, "Complement", toward(vector, other, 0.24), category_id=taxonomy + complement)
    # ...while the unrelated item is more alike (about the 98th): the taxonomy decides.
    make_product(alike, "Unrelated", toward(vector, other, 0.30), category_id=taxonomy + unrelated)

    items = show(host, viewed, own_share=0, avoid_competitors=False)

    assert {i.product.store_id for i in items if i.slot == "partner"} == {fits.pk}


LITTER_BOXES = "gid://shopify/TaxonomyCategory/ap-2-2-4-3"  # related to nothing on a dress page
DUVET_COVERS = "gid://shopify/TaxonomyCategory/hg-15-1-5"  # a complement of dresses


def _dress_page(host):
    """A dress's page: (the product, its vector, a dog-toy direction to place others by)."""
    vector = topic_vector("dresses", seed=8)
    viewed = make_product(
        host, "Viewed", vector, category_id="gid://shopify/TaxonomyCategory/aa-1-4"
    )
    return viewed, vector, topic_vector("dogs", seed=9)


def test_a_complement_farther_than_the_nearest_candidates_still_fills_a_slot(host, settings):
    """The nearest candidates can all be one partner's unrelated items (a notebook's page
    reads a hundred kitchen items before a tote bag): the slots they leave are filled from
    farther items of the stores that hold none yet."""
    settings.RECOMMENDER_RELEVANCE_FLOOR = 0.2
    viewed, vector, other = _dress_page(host)
    slots = 2
    alike, fits = partner("alike"), partner("fits")
    nearer = slots * recommendations.CANDIDATES_PER_SLOT + 10
    for n in range(nearer):  # litter boxes, all more alike than the duvet cover
        cosine = 0.40 - 0.1 * n / nearer
        make_product(alike, f"Unrelated {n}", toward(vector, other, cosine),
                     category_id=LITTER_BOXES)  # fmt: skip
    duvet = make_product(fits, "Complement", toward(vector, other, 0.24), category_id=DUVET_COVERS)

    items = show(host, viewed, items=slots, own_share=0, avoid_competitors=False)

    assert [i.product.pk for i in items if i.slot == "partner"] == [duvet.pk]


def test_farther_reads_leave_out_the_stores_that_already_hold_a_slot(host, settings):
    # One partner's items crowd every read: its best one takes a slot, its others (litter
    # boxes) fit nothing, and only a read without that store reaches the duvet cover.
    settings.RECOMMENDER_RELEVANCE_FLOOR = 0.2
    viewed, vector, other = _dress_page(host)
    slots = 2
    crowd, far = partner("crowd"), partner("far")
    throw = make_product(crowd, "Throw", toward(vector, other, 0.5), category_id=DUVET_COVERS)
    many = (1 + recommendations.FARTHER_ROUNDS) * slots * recommendations.CANDIDATES_PER_SLOT
    for n in range(many):
        make_product(crowd, f"Unrelated {n}", toward(vector, other, 0.45 - 0.15 * n / many),
                     category_id=LITTER_BOXES)  # fmt: skip
    duvet = make_product(far, "Duvet", toward(vector, other, 0.24), category_id=DUVET_COVERS)

    items = show(host, viewed, items=slots, own_share=0, avoid_competitors=False)

    assert [i.product.pk for i in items if i.slot == "partner"] == [throw.pk, duvet.pk]


def test_a_books_topic_is_read_from_neighbours_a_book_could_be_shown_beside(host, settings):
    # Below relevance.TOPIC_MIN_COSINE, neighbours say nothing of what a book is about,
    # however many: seven dog toys just under it would outweigh three coffees.
    settings.RECOMMENDER_RELEVANCE_FLOOR = 0.15
    vector = topic_vector("coffee", seed=13)
    grinders = "gid://shopify/TaxonomyCategory/hg-11-6-2-6"
    viewed = make_product(host, "Hand Grinder", vector, category_id=grinders)
    bookshop = _coffee_book(vector, 0.26, beans=0.25, dog_toys=(7, 0.19))

    items = show(host, viewed, own_share=0, avoid_competitors=False)

    (shown,) = [i for i in items if i.product.store_id == bookshop.pk]
    assert "by a book's topic" in shown.reason


def _coffee_book(
    page_vector, cosine: float, *, beans: float = 0.8, dog_toys: tuple[int, float] = (0, 0.0)
) -> object:
    """A book at ``cosine`` to the page, whose nearest products elsewhere are three coffees
    at ``beans`` to it (and ``dog_toys``: so many dog toys at that cosine to it)."""
    taxonomy = "gid://shopify/TaxonomyCategory/"
    book = toward(page_vector, topic_vector("books", seed=11), cosine)
    roaster = partner("roaster")
    for seed in range(3):
        near = toward(book, topic_vector("coffee", seed=20 + seed), beans)
        make_product(roaster, f"Beans {seed}", near, category_id=taxonomy + "fb-1-3-1")
    toys, toy_cosine = dog_toys
    if toys:
        pets = partner("pets")
        for seed in range(toys):
            toy = toward(book, topic_vector("dogs", seed=40 + seed), toy_cosine)
            make_product(pets, f"Toy {seed}", toy, category_id=taxonomy + "ap-2-3-7")
    shop = partner("bookshop")
    make_product(shop, "Coffee Book", book, category_id=taxonomy + "me-1-3")
    return shop


def test_a_book_is_not_shown_where_its_topic_is_unrelated_however_alike(host, settings):
    settings.RECOMMENDER_RELEVANCE_FLOOR = 0.2
    vector = topic_vector("dogs", seed=12)
    cats = "gid://shopify/TaxonomyCategory/ap-2-2-2-6"
    viewed = make_product(host, "Cat Window Perch", vector, category_id=cats)
    # More alike than about 98 % of unrelated pairs: content alone would show it.
    bookshop = _coffee_book(vector, 0.30)

    items = show(host, viewed, own_share=0, avoid_competitors=False)

    assert bookshop.pk not in {i.product.store_id for i in items}


def test_at_the_default_floors_a_complement_can_be_less_alike_than_a_book_must_be(host):
    vector = topic_vector("coffee", seed=13)
    grinders = "gid://shopify/TaxonomyCategory/hg-11-6-2-6"
    viewed = make_product(host, "Hand Grinder", vector, category_id=grinders)
    # About the 80th percentile of unrelated pairs: with a complement's 0.8, relevance 0.96.
    # A book whose topic is coffee is no less related, but its topic is read from its
    # neighbours: it needs relevance.TOPIC_MIN_COSINE.
    bookshop = _coffee_book(vector, 0.18)
    beanshop = partner("beanshop")
    beans = toward(vector, topic_vector("tea", seed=30), 0.18)
    make_product(beanshop, "Beans", beans, category_id="gid://shopify/TaxonomyCategory/fb-1-3-1")

    items = show(host, viewed, own_share=0, avoid_competitors=False)

    shown = {i.product.store_id for i in items if i.slot == "partner"}
    assert beanshop.pk in shown
    assert bookshop.pk not in shown


def test_a_book_fills_a_slot_where_its_topic_is_a_complement(host, settings):
    settings.RECOMMENDER_RELEVANCE_FLOOR = 0.2
    vector = topic_vector("coffee", seed=13)
    grinders = "gid://shopify/TaxonomyCategory/hg-11-6-2-6"
    viewed = make_product(host, "Hand Grinder", vector, category_id=grinders)
    # Less alike than content alone passes (about the 90th percentile of unrelated pairs).
    bookshop = _coffee_book(vector, 0.22)

    items = show(host, viewed, own_share=0, avoid_competitors=False)

    (book,) = [i for i in items if i.product.store_id == bookshop.pk]
    assert "related categories 0.8 by a book's topic" in book.reason


def test_a_book_fills_a_slot_where_its_neighbours_go_with_the_page(host, settings):
    settings.RECOMMENDER_RELEVANCE_FLOOR = 0.2
    taxonomy = "gid://shopify/TaxonomyCategory/"
    vector = topic_vector("tea", seed=14)
    viewed = make_product(host, "Sencha", vector, category_id=taxonomy + "fb-1-14-2")
    # A tea history book, nearest to teapots and strainers: its topic is kitchen and
    # dining, which says nothing of a tea; each of its neighbours goes with one.
    book = toward(vector, topic_vector("books", seed=15), 0.22)
    teaware = partner("teaware")
    for seed, category in enumerate(["hg-11-10-2", "hg-11-8-75", "hg-11-10-2", "hg-11-8-75"]):
        near = toward(book, topic_vector("dresses", seed=40 + seed), 0.8)
        make_product(teaware, f"Teaware {seed}", near, category_id=taxonomy + category)
    bookshop = partner("bookshop")
    make_product(bookshop, "A History of Tea", book, category_id=taxonomy + "me-1-3")

    items = show(host, viewed, own_share=0, avoid_competitors=False)

    (shown,) = [i for i in items if i.product.store_id == bookshop.pk]
    assert "related categories 0.8 by a book's neighbours" in shown.reason


@pytest.mark.parametrize("book_is_the_page", [False, True])
def test_an_item_is_no_evidence_of_its_own_relation_to_a_book(host, settings, book_is_the_page):
    # The item beside a book is often among the book's nearest products itself: its vote
    # for itself (its own category, 0.8) would count its cosine twice, once as content and
    # once as the taxonomy's word, and content and taxonomy are combined as independent.
    settings.RECOMMENDER_RELEVANCE_FLOOR = 0.1
    taxonomy = "gid://shopify/TaxonomyCategory/"
    tea_vector = topic_vector("tea", seed=16)
    # Less alike than content alone passes (about the 93rd percentile of unrelated pairs).
    book_vector = toward(tea_vector, topic_vector("books", seed=17), 0.24)
    bookshop = host if book_is_the_page else partner("bookshop")
    teashop = partner("teashop") if book_is_the_page else host
    tea = make_product(teashop, "Sencha", tea_vector, category_id=taxonomy + "fb-1-14-2")
    book = make_product(bookshop, "Slow Mornings", book_vector, category_id=taxonomy + "me-1-3")
    # The book's other neighbours: one teapot (goes with a tea), two dog toys (do not). Without
    # the tea's own vote, a third of their cosine goes with a tea: no majority.
    others = partner("others")
    for seed, category in enumerate(["hg-11-10-2", "ap-2-3-7", "ap-2-3-7"]):
        near = toward(book_vector, topic_vector("dresses", seed=50 + seed), 0.15)
        make_product(others, f"Neighbour {seed}", near, category_id=taxonomy + category)

    items = show(host, book if book_is_the_page else tea, own_share=0, avoid_competitors=False)

    shown = {i.product.pk: i for i in items}
    item = tea if book_is_the_page else book
    assert item.pk not in shown, shown[item.pk].reason
