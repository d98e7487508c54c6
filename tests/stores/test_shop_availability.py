"""A shop Shopify freezes (unpaid bills: 402) or locks (423) leaves the exchange until it
answers again, and a shop that starts paying Shopify gets the starter grant then.
Through the real client over HTTP to the simulator."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone
from django_q.models import OrmQ

from recommender import tasks as recommender_tasks
from recommender.catalog import sync as catalog_sync
from recommender.exchange import ledger, rules
from recommender.models import Product, WidgetSettings
from recommender.ranking.network import network_state
from stores import services, shopify
from stores import tasks as store_tasks
from stores.models import Store

pytestmark = pytest.mark.django_db


@pytest.mark.parametrize(("status", "how"), [(402, "frozen"), (423, "locked")])
def test_a_frozen_or_locked_shop_leaves_the_exchange_until_it_answers_again(
    simulator, install, settings, task_queue, status, how
):
    settings.RECOMMENDER_STATE_TTL_SECONDS = 0
    store = install("alpha")
    services.after_install(store)
    simulator.control("alpha", "close", status=status)

    with pytest.raises(shopify.ShopUnavailable):
        services.admin_graphql(store, "query { shop { name } }")
    closed = Store.objects.get(pk=store.pk).status
    out = store.pk not in network_state().participating

    simulator.control("alpha", "reopen")
    task_queue.mark()
    services.reconcile_installs()

    assert (closed, out) == (Store.Status.FROZEN, True)
    assert Store.objects.get(pk=store.pk).status == Store.Status.ACTIVE
    assert store.pk in network_state().participating
    # Its details and catalog read afresh: its webhooks may not have come meanwhile.
    assert ("stores.tasks.after_install", (store.pk,)) in task_queue.new()


def test_a_shop_frozen_longer_than_its_access_token_lives_is_found_open_again(simulator, install):
    store = install("alpha")
    simulator.control("alpha", "close", status=402)
    services.reconcile_installs()
    simulator.control("alpha", "expire-tokens")  # days frozen: the hour-long token is gone
    simulator.control("alpha", "reopen")

    services.reconcile_installs()

    assert Store.objects.get(pk=store.pk).status == Store.Status.ACTIVE


def test_a_frozen_shop_whose_credentials_are_refused_needs_the_merchant(simulator, install):
    """Uninstalled while frozen, its uninstall webhook lost: it cannot come back by itself,
    and must not stay frozen (waiting) for ever."""
    store = install("alpha")
    simulator.control("alpha", "close", status=402)
    services.reconcile_installs()
    simulator.world.app.app_url = "http://127.0.0.1:9"  # the webhook goes nowhere
    simulator.world.webhooks.retries = 0
    simulator.world.uninstall(simulator.shop("alpha"))

    services.reconcile_installs()

    assert Store.objects.get(pk=store.pk).status == Store.Status.NEEDS_REAUTH


def test_reconciliation_finds_a_shop_frozen_while_nothing_asked(simulator, install):
    store = install("alpha")
    simulator.control("alpha", "close", status=402)

    services.reconcile_installs()

    assert Store.objects.get(pk=store.pk).status == Store.Status.FROZEN


def test_a_shop_that_starts_paying_shopify_gets_the_starter_grant_then(simulator, install):
    simulator.shop("alpha").plan = "Development"
    store = install("alpha")
    services.after_install(store)
    assert ledger.balance(store) == 0  # a development store gets no grant

    simulator.shop("alpha").plan = "Basic"
    services.reconcile_installs()  # its details read a moment ago: not read again yet
    unchanged = ledger.balance(store)
    a_day_later = timezone.now() - services.DETAILS_FRESH_FOR - timedelta(minutes=1)
    Store.objects.filter(pk=store.pk).update(details_synced_at=a_day_later)
    services.reconcile_installs()

    assert unchanged == 0
    assert Store.objects.get(pk=store.pk).plan_name == "Basic"
    assert ledger.balance(store) == rules.STARTER_GRANT


def test_a_reopened_shop_has_its_catalog_read_even_when_its_details_fail_then(
    simulator, install, task_queue, django_capture_on_commit_callbacks
):
    """Its webhooks were turned away while it was frozen: the catalog read after it opens
    again is the only way its changes come in. The catalog had been synced before, so
    nothing else (reconciliation's stalled syncs) would ever read it again."""
    store = install("alpha")
    catalog_sync.sync_catalog(store)
    simulator.control("alpha", "close", status=402)
    services.reconcile_installs()
    simulator.control("alpha", "reopen")
    services.reconcile_installs()  # queues after_install
    simulator.fault("alpha", "graphql", "500")  # Shopify fails the shop's details once
    task_queue.mark()

    with django_capture_on_commit_callbacks(execute=True):
        store_tasks.after_install(store.pk)

    assert ("recommender.tasks.sync_catalog", (store.pk,)) in task_queue.new()


def test_a_shop_name_no_column_can_hold_is_kept_replaced_and_reconciliation_goes_on(
    simulator, install
):
    # A NUL in the shop's name (the merchant's text) failed the details' save outside the
    # Shopify errors the install and reconciliation catch: the install stopped before its
    # widget settings and catalog sync, and reconciliation stopped at that store each run.
    simulator.shop("alpha").name = "Alpha\x00 Store \ud800"
    alpha, beta = install("alpha"), install("beta")
    services.after_install(alpha)
    services.after_install(beta)
    stale = timezone.now() - services.DETAILS_FRESH_FOR - timedelta(minutes=1)
    Store.objects.update(details_synced_at=stale)
    simulator.shop("beta").name = "Beta renamed"

    services.reconcile_installs()

    assert Store.objects.get(pk=alpha.pk).name == "Alpha\ufffd Store \ufffd"
    assert Store.objects.get(pk=beta.pk).name == "Beta renamed"
    assert WidgetSettings.objects.filter(store=alpha).exists()  # the install went on


def _lose_the_queued_tasks() -> None:
    """A worker killed while it ran them: Redis hands a task over without waiting for it
    to finish, so it is gone from the broker (here the ORM broker's rows)."""
    OrmQ.objects.all().delete()


@pytest.mark.parametrize("how", ["reinstalled", "open again"])
def test_a_lost_after_install_is_queued_again_and_reads_the_catalog_afresh(
    client, simulator, install, task_queue, django_capture_on_commit_callbacks, how
):
    """What follows an activation (shop details, the welcome and the catalog read afresh:
    the only repair for the webhooks turned away while the store was out) runs in the
    worker. A worker killed with that task lost it for good: the store was already active,
    so nothing asked again, and a product deleted meanwhile stayed in every partner's
    widget. The activation leaves a mark in its own transaction; reconciliation queues
    the task again while the mark stays."""
    store = install("alpha")
    catalog_sync.sync_catalog(store)
    if how == "reinstalled":
        simulator.world.uninstall(simulator.shop("alpha"))
        services.uninstall_store(shop_domain=store.shop_domain, triggered_at=timezone.now())
    else:
        simulator.control("alpha", "close", status=402)
        services.reconcile_installs()
    simulator.world.delete_product("alpha", 1001)  # its webhook is turned away meanwhile
    with django_capture_on_commit_callbacks(execute=True):
        if how == "reinstalled":
            install("alpha")
        else:
            simulator.control("alpha", "reopen")
            services.reconcile_installs()
    assert ("stores.tasks.after_install", (store.pk,)) in task_queue.new()
    _lose_the_queued_tasks()

    task_queue.mark()
    services.reconcile_installs()  # at once: the task may be waiting its turn, not lost
    assert task_queue.new() == []
    lost_since = timezone.now() - services.AFTER_INSTALL_LOST_AFTER - timedelta(minutes=1)
    Store.objects.filter(pk=store.pk).update(after_install_due_since=lost_since)
    services.reconcile_installs()
    [(func, args)] = task_queue.new()
    assert (func, args[0]) == ("stores.tasks.after_install", store.pk)

    with django_capture_on_commit_callbacks(execute=True):
        store_tasks.after_install(*args)
    recommender_tasks.sync_catalog(store.pk)

    assert not Product.objects.filter(store=store, shopify_id=1001).exists()
    assert Store.objects.get(pk=store.pk).after_install_due_since is None  # done: no more
    task_queue.mark()
    Store.objects.filter(pk=store.pk).update(updated_at=lost_since)
    services.reconcile_installs()
    assert [func for func, _ in task_queue.new()] == []
    # A copy queued again while the first was only waiting does nothing once that one ran.
    with django_capture_on_commit_callbacks(execute=True):
        store_tasks.after_install(*args)
    assert task_queue.new() == []  # no second catalog read


def test_after_install_clears_the_mark_of_the_activation_it_follows(simulator, install):
    """Called with a copy of the store read before the activation's mark was written (the
    demo, the benchmarks, an operator's shell), it still clears it: else reconciliation
    would take the task for lost and read the whole catalog again ten minutes later."""
    store = install("alpha")
    stale = Store.objects.get(pk=store.pk)
    stale.after_install_due_since = None  # the copy knows of no mark
    assert Store.objects.get(pk=store.pk).after_install_due_since is not None

    services.after_install(stale)

    assert Store.objects.get(pk=store.pk).after_install_due_since is None
