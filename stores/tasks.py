"""Background tasks: take an id, fetch, log and return if gone, then delegate."""

from __future__ import annotations

import logging

from interlayer.logs import bind_shop
from stores import services, webhooks
from stores.hooks import reconciliation_due
from stores.models import Store

log = logging.getLogger(__name__)


def after_install(store_id: int, requeued_at: str | None = None) -> None:
    """``requeued_at``: queued again by reconciliation with the mark it left; skipped when
    the mark changed since (the task it was queued for ran after all, or a newer one)."""
    store = Store.objects.filter(pk=store_id, status=Store.Status.ACTIVE).first()
    if store is None:
        log.info("after_install skipped: store %s is gone or inactive", store_id)
        return
    mark = store.after_install_due_since
    if requeued_at is not None and (mark is None or mark.isoformat() != requeued_at):
        log.info("after_install skipped: done since it was queued again store=%s", store_id)
        return
    bind_shop(store.shop_domain)
    services.after_install(store)


def process_webhook(delivery_id: int) -> None:
    webhooks.process(delivery_id)


def prune_records() -> None:
    log.info("pruned %s", services.prune_records())


def reconcile() -> None:
    """The safety net for missed webhooks: retry failed deliveries, check install state,
    then let the apps built on stores/ repair what they own."""
    retried = webhooks.retry_due()
    checked = services.reconcile_installs()
    summaries = [str(summary) for _, summary in reconciliation_due.send(sender=Store) if summary]
    log.info(
        "reconcile retried=%s deliveries checked=%s stores %s",
        retried, checked, " ".join(summaries),
    )  # fmt: skip
