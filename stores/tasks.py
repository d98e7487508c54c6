"""Background tasks: take an id, fetch, log and return if gone, then delegate."""

from __future__ import annotations

import logging

from interlayer.logs import bind_shop
from stores import services
from stores.models import Store

log = logging.getLogger(__name__)


def after_install(store_id: int) -> None:
    store = Store.objects.filter(pk=store_id, status=Store.Status.ACTIVE).first()
    if store is None:
        log.info("after_install skipped: store %s is gone or inactive", store_id)
        return
    bind_shop(store.shop_domain)
    services.after_install(store)


def process_webhook(delivery_id: int) -> None:
    from stores import webhooks

    webhooks.process(delivery_id)


def reconcile() -> None:
    """The safety net for missed webhooks: retry failed deliveries, check install state."""
    from datetime import timedelta

    from recommender import catalog
    from stores import webhooks

    retried = webhooks.retry_due()
    checked = services.reconcile_installs()
    resumed = catalog.resume_stalled_syncs(older_than=timedelta(minutes=30))
    log.info(
        "reconcile retried=%s deliveries checked=%s stores resumed=%s syncs",
        retried, checked, resumed,
    )  # fmt: skip
