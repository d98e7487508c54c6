"""Background tasks: take an id, fetch, log and return if gone, then delegate."""

from __future__ import annotations

import logging

from interlayer.logs import bind_shop
from recommender import controls, lifecycle
from recommender.catalog import embedding_pass, index_events, sync
from recommender.exchange import attribution, click_journal, clicks, rules
from recommender.models import AttributedOrder
from recommender.ranking import learning
from stores.models import Store

log = logging.getLogger(__name__)


def _active_store(store_id: int) -> Store | None:
    store = Store.objects.filter(pk=store_id, status=Store.Status.ACTIVE).first()
    if store is None:
        log.info("task skipped: store %s is gone or inactive", store_id)
    bind_shop(store.shop_domain if store else None)
    return store


def sync_catalog(store_id: int) -> None:
    store = _active_store(store_id)
    if store is not None:
        sync.sync_catalog(store)


def embed_store(store_id: int) -> None:
    store = _active_store(store_id)
    if store is not None:
        embedding_pass.wait_for_quiet(store)
        embedding_pass.embed_store(store)


def publish_widget_switch(store_id: int) -> None:
    store = _active_store(store_id)
    if store is not None:
        log.info("widget switch published enabled=%s", controls.publish_widget_switch(store))


def rebuild_index() -> None:
    index_events.rebuild_index()


def prune_index_events() -> None:
    log.info("pruned %s applied index events", index_events.prune_applied_events())


def forget_old_shoppers() -> None:
    log.info("forgot old shoppers %s", lifecycle.forget_old_shoppers())


def forget_old_salts() -> None:
    # Its own task, hourly: the salts go whatever happens to the slower pass above.
    log.info("deleted %s visitor salts", rules.forget_old_salts())


def learn_from_clicks() -> None:
    rows = learning.learn_from_clicks()
    log.info("learned from clicks rows=%s", rows)


def settle_clicks() -> None:
    # Normally a web process settles its clicks right behind their redirects; the sweep
    # finds those whose process died first (or whose settling failed), and the click
    # journals dead processes left on this machine.
    click_journal.recover_orphans()
    log.info("settled clicks count=%s", clicks.settle_clicks())


def verify_order(order_pk: int) -> None:
    """An order a pixel reported, confirmed with Shopify (exchange.attribution)."""
    order = AttributedOrder.objects.select_related("store").filter(pk=order_pk).first()
    if order is None:
        log.info("order confirmation skipped: order %s is gone", order_pk)
        return
    bind_shop(order.store.shop_domain)
    log.info("attributed order %s: %s", order_pk, attribution.verify_order(order))
