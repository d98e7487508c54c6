"""Learning from clicks: the learner's update from impressions and billable clicks, the
fallback to content ranking, the bounded exploration, and every exchange rule kept under
learned ranking, on a real FAISS index."""

from __future__ import annotations

from datetime import timedelta

import numpy as np
import pytest
from django.utils import timezone

from recommender import runtime
from recommender.catalog import index_events
from recommender.exchange import ledger
from recommender.models import Click, Impression, ItemFeedback, WidgetSettings
from recommender.ranking import learning, live_index, recommendations
from tests.factories import make_product, make_store, topic_vector, toward

pytestmark = pytest.mark.django_db


@pytest.fixture
def network(private_index, settings):
    """A host page and three partner stores; partner "a" has a content favourite (0.80)
    and a runner-up (0.72) that shoppers will turn out to prefer."""
    settings.RECOMMENDER_LEARNING = True
    settings.RECOMMENDER_EXPLORE_SHARE = 0.0
    settings.RECOMMENDER_RELEVANCE_FLOOR = 0.3
    host = make_store("host")
    vector = topic_vector("coffee", seed=1)
    viewed = make_product(host, "Hand Grinder", vector)
    stores, items = {}, {}
    for n, name in enumerate(("a", "b", "c")):
        store = stores[name] = make_store(name)
        items[name] = make_product(
            store,
            f"{name} favourite",
            toward(vector, topic_vector("tea", seed=9 + n), 0.80 - n / 50),
        )
    items["runner-up"] = make_product(
        stores["a"], "a runner-up", toward(vector, topic_vector("books", seed=2), 0.72)
    )
    for store in (host, *stores.values()):
        ledger.grant_starter_credits(store)
    WidgetSettings.objects.filter(store=host).update(items=2, own_share=0, avoid_competitors=False)
    index_events.rebuild_index()
    runtime.reset()
    live_index.current(refresh=True)
    return host, viewed, stores, items


def widget(host, viewed):
    return recommendations.recommendations_for(host, product_id=viewed.shopify_id)


def history(
    host, viewed, product, *, shown: int, clicked: int, billable=True, reason="billable", age=None
):
    """Viewable impressions of a page that showed ``product``, and clicks on it there."""
    created = timezone.now() - (age or timedelta(0))
    cluster = learning.page_cluster(host, viewed)
    for n in range(shown):
        impression_id = f"{product.pk}-{n}-{billable}-{reason}-{age}"
        Impression.objects.create(
            store=host, impression_id=impression_id, visitor_hash=f"v{n}", items=2,
            partner_items=2, page_cluster=cluster, shown=[[product.store_id, product.shopify_id]],
            created_at=created,
        )  # fmt: skip
        if n < clicked:
            Click.objects.create(
                source_store=host, target_store=product.store, target_product_id=product.shopify_id,
                impression_id=impression_id, token_id=impression_id, visitor_hash=f"v{n}",
                billable=billable, reason=reason if billable else "bot", created_at=created,
            )  # fmt: skip


def test_the_learner_counts_viewable_impressions_and_billable_clicks_per_page_kind(network):
    host, viewed, _stores, items = network
    history(host, viewed, items["runner-up"], shown=40, clicked=12)
    history(host, viewed, items["runner-up"], shown=10, clicked=10, billable=False)  # bots
    history(host, viewed, items["runner-up"], shown=5, clicked=5, reason="held for review")
    history(host, viewed, items["b"], shown=30, clicked=1, age=timedelta(days=31))  # too old

    rows = learning.learn_from_clicks()

    (row,) = ItemFeedback.objects.all()
    assert rows == 1
    assert (row.page_cluster, row.product_id) == (
        learning.page_cluster(host, viewed),
        items["runner-up"].pk,
    )
    assert (row.impressions, row.clicks) == (55, 12)  # held clicks are not evidence yet


def test_the_learner_recounts_only_the_last_two_days_and_ranks_on_the_whole_window(network):
    host, viewed, _stores, items = network
    item = items["runner-up"]
    history(host, viewed, item, shown=40, clicked=4, age=timedelta(days=10))
    history(host, viewed, item, shown=20, clicked=2)
    assert learning.learn_from_clicks() == 2  # the window counted once, per day

    # Late rows for a final day are not read again (a run costs two days of traffic); new
    # ones for today are.
    history(host, viewed, item, shown=7, clicked=7, age=timedelta(days=10, minutes=1))
    now = timezone.now()
    since_midnight = now - now.replace(hour=0, minute=0, second=0, microsecond=0)
    earlier_today = min(timedelta(minutes=1), since_midnight)  # today, even just after midnight
    history(host, viewed, item, shown=5, clicked=1, age=earlier_today)
    learning.learn_from_clicks()
    runtime.reset()

    by_day = dict(ItemFeedback.objects.values_list("day", "impressions"))
    today = timezone.now().date()
    assert by_day == {today - timedelta(days=10): 40, today: 25}
    cluster = learning.page_cluster(host, viewed)
    assert learning.feedback().history(cluster, item.pk) == (65, 7)


def test_a_day_that_leaves_the_window_leaves_the_ranking(network):
    host, viewed, _stores, items = network
    history(host, viewed, items["runner-up"], shown=40, clicked=4, age=timedelta(days=29))
    assert learning.learn_from_clicks() == 1  # the window's first day

    learning.learn_from_clicks(now=timezone.now() + timedelta(days=1))  # a day later
    runtime.reset()

    assert not ItemFeedback.objects.exists()
    cluster = learning.page_cluster(host, viewed)
    assert learning.feedback().history(cluster, items["runner-up"].pk) == (0, 0)


def test_without_click_history_the_widget_is_the_content_ranking(network, settings):
    host, viewed, _stores, items = network

    learned = [item.product.pk for item in widget(host, viewed)]
    settings.RECOMMENDER_LEARNING = False
    runtime.reset()
    static = [item.product.pk for item in widget(host, viewed)]

    assert learned == static == [items["a"].pk, items["b"].pk]


def test_a_click_history_moves_the_item_shoppers_prefer_and_explains_why(network):
    host, viewed, _stores, items = network
    history(host, viewed, items["runner-up"], shown=200, clicked=30)
    history(host, viewed, items["a"], shown=200, clicked=0)
    learning.learn_from_clicks()

    shown = widget(host, viewed)

    assert shown[0].product.pk == items["runner-up"].pk  # store a's item, now the clicked one
    assert "clicked 30 of 200 times on such pages" in shown[0].reason
    assert [item.product.store_id for item in shown].count(items["a"].store_id) == 1


def test_few_clicks_move_little(network):
    host, viewed, _stores, items = network
    history(host, viewed, items["runner-up"], shown=3, clicked=1)
    learning.learn_from_clicks()

    shown = widget(host, viewed)

    assert shown[0].product.pk == items["a"].pk  # 1 of 3 is not enough to overturn content


def test_what_one_store_pages_teach_moves_only_that_stores_widgets(network):
    host, viewed, _stores, items = network
    other_host = make_store("other-host")
    ledger.grant_starter_credits(other_host)
    WidgetSettings.objects.get(store=other_host).blocked_stores.set([host])  # twin catalogs
    other_page = make_product(other_host, "Burr Grinder", topic_vector("coffee", seed=1))
    WidgetSettings.objects.filter(store=other_host).update(
        items=2, own_share=0, avoid_competitors=False
    )
    index_events.rebuild_index()
    runtime.reset()
    live_index.current(refresh=True)
    # Padded beacons on the other store's own pages: the runner-up "wins" there.
    history(other_host, other_page, items["runner-up"], shown=300, clicked=60)
    history(other_host, other_page, items["a"], shown=300, clicked=0)
    learning.learn_from_clicks()

    assert widget(other_host, other_page)[0].product.pk == items["runner-up"].pk
    assert widget(host, viewed)[0].product.pk == items["a"].pk  # the host's pages: unmoved
    assert learning.page_cluster(host, viewed) != learning.page_cluster(other_host, other_page)


def test_exploration_only_ever_changes_the_last_slot_and_keeps_every_rule(network, settings):
    host, viewed, stores, items = network
    vector = np.frombuffer(viewed.vector, dtype=np.float32)
    for n, name in enumerate(("d", "e")):  # partners about as close as b, no history
        store = make_store(name)
        ledger.grant_starter_credits(store)
        items[name] = make_product(
            store,
            f"{name} item",
            toward(vector, topic_vector("dogs", seed=20 + n), 0.779 - n / 1000),
        )
    index_events.rebuild_index()
    live_index.current(refresh=True)
    WidgetSettings.objects.get(store=host).blocked_stores.set([stores["c"]])
    history(host, viewed, items["c"], shown=100, clicked=60)  # a blocked store shoppers love
    learning.learn_from_clicks()
    runtime.reset()
    settings.RECOMMENDER_EXPLORE_SHARE = 1.0

    widgets = [widget(host, viewed) for _ in range(60)]

    firsts = {w[0].product.pk for w in widgets}
    lasts = {w[-1].product.pk for w in widgets}
    assert firsts == {items["a"].pk}
    assert all(w[-1].reason.endswith("explored") for w in widgets)
    assert lasts <= {items["b"].pk, items["d"].pk, items["e"].pk}  # never store a again
    assert len(lasts) >= 2  # a sample, not the greedy choice every time
    for shown in widgets:
        stores_shown = [item.product.store_id for item in shown]
        assert len(set(stores_shown)) == len(stores_shown) == 2  # one slot per partner
        assert host.pk not in stores_shown and stores["c"].pk not in stores_shown
        assert all(item.similarity >= settings.RECOMMENDER_RELEVANCE_FLOOR for item in shown)
