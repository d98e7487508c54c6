"""What the recommender does at the moments of a store's life that stores/ announces
(connected in RecommenderConfig.ready())."""

from __future__ import annotations

from datetime import UTC, datetime, time, timedelta
from typing import Any

from django.db import transaction
from django.db.models import CharField, OuterRef, Q, Value
from django.db.models.functions import Cast, Concat
from django.utils import timezone

from recommender.catalog import index_events, sync
from recommender.catalog.index_events import delete_products
from recommender.controls import (
    request_widget_switch_publish,
    widget_settings_for,
    widget_switches_to_tell,
)
from recommender.exchange import attribution, ledger, rules
from recommender.models import (
    AttributedOrder,
    CatalogSync,
    Click,
    Impression,
    IndexEvent,
    PendingOptOut,
    Product,
    SettingsChange,
    WidgetSettings,
)
from stores.models import Store

# A sync not finished after this long was lost (a worker died) and is requested again.
STALLED_SYNC_AFTER = timedelta(minutes=30)


def welcome(sender: Any, *, store: Store, **kwargs: Any) -> None:
    """store_installed: default widget settings and the starter grant."""
    widget = widget_settings_for(store)
    ledger.grant_starter_credits(store)
    if not widget.enabled or widget.enabled_in_theme is False:
        # Told again on every (re)activation: an uninstall took the app's metafields with
        # it (a theme told "off" that forgot would reserve space for a row that never
        # comes), and a store back from re-authorisation may have missed a switch.
        request_widget_switch_publish(store)


def grant_if_now_paying(sender: Any, *, store: Store, **kwargs: Any) -> None:
    """store_details_changed: a shop installed on a trial or development plan that now pays
    Shopify gets the starter grant (once per shop domain ever, as at install)."""
    ledger.grant_starter_credits(store)


def start_catalog_sync(sender: Any, *, store: Store, **kwargs: Any) -> None:
    """store_installed (an install, a reinstall, a shop open again after a freeze): read
    the whole catalog from its first page, even if a sync looks queued (one left waiting
    when the store was uninstalled found it gone and never ran)."""
    sync.request_sync(store, requeue=True, afresh=True)


def back_in_the_index(sender: Any, *, store: Store, **kwargs: Any) -> None:
    """store_installed: the store's products in the exchange announced to the index again.
    The nightly rebuild indexes active stores only, so a store that was out across one
    (uninstalled, frozen, waiting for re-authorisation) is missing from it, and its catalog
    read afresh announces only what changed. (Announcing what the index holds already
    changes nothing: the index applies each product's current state.)"""
    offered = Product.objects.filter(Product.OFFERED, store=store, vector__isnull=False)
    index_events.emit_index_events(
        IndexEvent.Kind.UPSERT, [(pk, store.pk) for pk in offered.values_list("pk", flat=True)]
    )


# What a click keeps of the shopper who made it: blanked where it must be forgotten, while
# the click itself stays for the ledgers that point at it.
_NO_SHOPPER = {
    "user_agent": "", "visitor_hash": "", "previous_visitor_hash": "", "ip_hash": "",
    "previous_ip_hash": "", "site_hash": "", "previous_site_hash": "",
}  # fmt: skip


def purge_store_data(sender: Any, *, store: Store, **kwargs: Any) -> None:
    """store_redacted: delete everything of the store but what its partners need to audit
    their ledgers (their entries, and the clicks those point to, stripped of anything about
    the shopper). Once the redaction commits, the index is rebuilt without the store and
    every older version on disk, which still holds its vectors, is deleted.
    https://shopify.dev/docs/apps/build/compliance/privacy-law-compliance#shop-redact"""
    delete_products(Product.objects.filter(store=store))
    CatalogSync.objects.filter(store=store).delete()
    WidgetSettings.objects.filter(store=store).delete()
    Impression.objects.filter(store=store).delete()
    AttributedOrder.objects.filter(store=store).delete()  # its orders, as its pixel saw them
    SettingsChange.objects.filter(store=store).delete()  # staff ids, titles, what changed
    PendingOptOut.objects.filter(store=store).delete()  # titles of products to come
    Click.objects.filter(Q(source_store=store) | Q(target_store=store)).update(**_NO_SHOPPER)
    transaction.on_commit(lambda: _forget_in_the_index(store.pk))


def forget_old_shoppers(*, now: datetime | None = None) -> dict[str, int]:
    """Daily: clicks and viewable impressions older than rules.SHOPPER_DATA_RETENTION lose the
    shopper's agent and visitor and address hashes; counts, ledgers and figures stay. In
    batches of FORGET_BATCH rows, each its own short transaction (the first run after a
    deploy has months of rows to go through, on the exchange's busiest tables)."""
    before = (now or timezone.now()) - rules.SHOPPER_DATA_RETENTION
    forgotten = {"clicks": 0, "impressions": 0}
    # Store by store, so each batch reads the (store, created_at) indexes the tables keep
    # rather than the whole table (the clicks table keeps no index on the time alone).
    for store_id in Store.objects.values_list("pk", flat=True).iterator():
        clicks = Click.objects.filter(source_store_id=store_id, created_at__lt=before)
        forgotten["clicks"] += _in_batches(clicks.exclude(**_NO_SHOPPER), _NO_SHOPPER)
        views = Impression.objects.filter(store_id=store_id, created_at__lt=before)
        forgotten["impressions"] += _in_batches(
            views.exclude(visitor_hash="", ip_hash=""), {"visitor_hash": "", "ip_hash": ""}
        )
    return forgotten


FORGET_BATCH = 5_000


def _in_batches(rows, blank: dict[str, str]) -> int:
    changed = 0
    while batch := list(rows.values_list("pk", flat=True)[:FORGET_BATCH]):
        changed += rows.model.objects.filter(pk__in=batch).update(**blank)
    return changed


def redact_customer_orders(
    sender: Any, *, store: Store, order_ids: list[str], **kwargs: Any
) -> int:
    """customer_redacted: the store's confirmed attributed orders among ``order_ids`` stay in
    its figures, as a sale of that total on that day, but lose what ties them to the
    customer: Shopify's order id, their time of day (each is put at noon of its day in the
    shop's time zone) and the click that brought them. That
    click keeps what its partners' ledgers need, stripped of anything about the shopper
    (as on shop/redact) and of the view it came from, whose hashes go too. Unconfirmed
    orders among them, in no figure yet, are deleted, and their clicks stripped the same
    way. Returns the records changed.
    https://shopify.dev/docs/apps/build/compliance/privacy-law-compliance#customers-redact"""
    listed = AttributedOrder.objects.filter(store=store, order_id__in=order_ids)
    click_ids = set(listed.exclude(click=None).values_list("click_id", flat=True))
    unconfirmed, _ = listed.filter(verified_at__isnull=True).delete()
    orders = list(listed)
    clicks = list(Click.objects.filter(pk__in=click_ids))
    for order in orders:
        # Noon of its day where the shop is: the day its figures count it on, and no hour.
        local = order.created_at.astimezone(store.zone)
        day = datetime.combine(local.date(), time(12), tzinfo=store.zone).astimezone(UTC)
        AttributedOrder.objects.filter(pk=order.pk).update(
            order_id=f"redacted-{order.pk}", click=None, created_at=day, clicked_at=day,
            verified_at=day, asked_at=None,
        )  # fmt: skip
    for click in clicks:
        Impression.objects.filter(
            store_id=click.source_store_id, impression_id=click.impression_id
        ).update(visitor_hash="", ip_hash="")
    Click.objects.filter(pk__in=[c.pk for c in clicks]).update(
        **_NO_SHOPPER, impression_id="", landed_at=None
    )
    # The view it billed is named apart from the view's id, which would lead back to it.
    Click.objects.filter(pk__in=[c.pk for c in clicks], billed_impression__isnull=False).update(
        billed_impression=Concat(Value("redacted-"), Cast("pk", CharField()))
    )
    return unconfirmed + len(orders) + len(clicks)


def customer_order_data(
    sender: Any, *, store: Store, order_ids: list[str], **kwargs: Any
) -> list[dict[str, Any]]:
    """customer_data_requested: what is held of the store's orders among ``order_ids``:
    each attributed order as its pixel reported it, the partner store whose widget sent
    the shopper, and the click (its time, the product it led to, the landing, whether it
    was billed, the browser's user agent, and when the widget it came from was viewed; the
    visitor and address only as salted hashes, which are not given: they identify no one)."""
    orders = list(
        AttributedOrder.objects.filter(store=store, order_id__in=order_ids)
        .select_related("source_store", "click")
        .annotate(click_held=ledger.still_held(OuterRef("click_id")))
        .order_by("created_at", "pk")
    )
    views = dict(
        Impression.objects.filter(
            impression_id__in=[o.click.impression_id for o in orders if o.click is not None]
        ).values_list("impression_id", "created_at")
    )

    def _time(value: Any) -> str | None:
        return value.isoformat() if value else None

    def _billed(order: AttributedOrder) -> str:
        if order.click.billable:
            return "held for review" if order.click_held else "billed"
        return f"not billed ({order.click.reason})"

    return [
        {
            "order_id": order.order_id,
            "recorded_at": order.created_at.isoformat(),
            "status": (
                "confirmed by Shopify"
                if order.verified_at
                else "not an order Shopify confirmed"
                if order.rejected_at
                else "waiting for Shopify's confirmation"
            ),
            "total": str(order.total),
            "currency": order.currency,
            "items": order.line_count,
            "refunded_at": order.refunded_at.isoformat() if order.refunded_at else None,
            "referred_by": order.source_store.name or order.source_store.shop_domain,
            "clicked_at": order.clicked_at.isoformat(),
            "browser": order.click.user_agent if order.click is not None else "",
            **(
                {
                    "clicked_product_id": str(order.click.target_product_id),
                    "landed_at": _time(order.click.landed_at),
                    "click_billed": _billed(order),
                    "widget_viewed_at": _time(views.get(order.click.impression_id)),
                }
                if order.click is not None
                else {}
            ),
        }
        for order in orders
    ]


def _forget_in_the_index(store_id: int) -> None:
    index_events.rebuild_index(keep_old_versions=False)
    # Serving processes applied the removal events within seconds of the redaction and load
    # the new version (built after any build already running: rebuild_index's lock) on
    # their next poll; the events that named the store's products can go.
    IndexEvent.objects.filter(store_id=store_id).delete()


def resume_stalled_work(sender: Any, **kwargs: Any) -> str:
    """reconciliation_due: syncs and embedding passes lost with a worker, catalogs a week
    unread (sync.reread_old_catalogs), and reported orders Shopify has not confirmed yet
    (a lost task, Shopify away)."""
    syncs = sync.resume_stalled_syncs(older_than=STALLED_SYNC_AFTER)
    reread = sync.reread_old_catalogs()
    orders = attribution.confirm_pending_orders()
    switches = widget_switches_to_tell()
    for store in switches:
        request_widget_switch_publish(store)
    return (
        f"resumed={syncs} syncs, reread={reread} catalogs, {orders} order confirmations, "
        f"{len(switches)} widget switches"
    )
