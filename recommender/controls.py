"""The merchant's controls: widget settings, blocks, exclusions and product opt-outs, each
change recorded in the audit trail."""

from __future__ import annotations

from typing import Any, NamedTuple

from django.db import transaction
from django.db.models import Q

from interlayer.queue import enqueue
from recommender.catalog.index_events import emit_index_events
from recommender.catalog.products import hold_opt_out_choices
from recommender.models import (
    IndexEvent,
    PendingOptOut,
    Product,
    SettingsChange,
    WidgetSettings,
)
from stores import services as store_services
from stores.models import Store


def widget_settings_for(store: Store) -> WidgetSettings:
    settings_row, _ = WidgetSettings.objects.get_or_create(store=store)
    return settings_row


def update_widget_settings(*, store: Store, actor: str, cleaned: dict[str, Any]) -> WidgetSettings:
    """Apply a validated settings form and record what changed, by whom."""
    with transaction.atomic():
        widget = WidgetSettings.objects.select_for_update().get_or_create(store=store)[0]
        changes: dict[str, list[Any]] = {}
        for field in WidgetSettings.MERCHANT_FIELDS:
            old, new = getattr(widget, field), cleaned[field]
            if old != new:
                changes[field] = [old, new]
                setattr(widget, field, new)
        blocked_before = set(widget.blocked_stores.values_list("shop_domain", flat=True))
        blocked_after = {s.shop_domain for s in cleaned["blocked_stores"]}
        if blocked_before != blocked_after:
            widget.blocked_stores.set(cleaned["blocked_stores"])
            changes["blocked_stores"] = [
                sorted(blocked_before - blocked_after),
                sorted(blocked_after - blocked_before),
            ]
        if changes:
            widget.save(update_fields=[*WidgetSettings.MERCHANT_FIELDS, "updated_at"])
            SettingsChange.objects.create(store=store, actor=actor, changes=changes)
        if _theme_needs_telling(widget.enabled, widget.enabled_in_theme):
            # The theme app extension reads it too, and renders nothing while it is off.
            transaction.on_commit(lambda: request_widget_switch_publish(store))
    return widget


def _theme_needs_telling(enabled: bool, told: bool | None) -> bool:
    """Whether the theme must be told the switch: an untold theme shows the widget (no
    metafield), so "on" needs telling only where "off" was told."""
    return told is False if enabled else told is not False


def request_widget_switch_publish(store: Store) -> None:
    enqueue("recommender.tasks.publish_widget_switch", store.pk,
            task_name=f"widget-switch:{store.pk}")  # fmt: skip


def publish_widget_switch(store: Store) -> bool:
    """Tell the store's theme whether the widget is on (the app-data metafield
    ``interlayer.widget_enabled``): while it is off, the theme app extension's blocks render
    nothing, so no space is reserved on the storefront for a row that never comes. The
    value is read as this runs, and read again after: a switch made meanwhile is told too,
    whatever order two of these run in. What was told is recorded (``enabled_in_theme``),
    and reconciliation tells again where it differs (a refusal, a store out for a while).
    Returns the value told; raises ShopifyError when Shopify refuses."""
    while True:
        enabled = widget_settings_for(store).enabled
        store_services.set_app_metafields(
            store, {"widget_enabled": ("boolean", "true" if enabled else "false")}
        )
        told = WidgetSettings.objects.filter(store=store, enabled=enabled).update(
            enabled_in_theme=enabled
        )
        if told:
            return enabled


def widget_switches_to_tell() -> list[Store]:
    """Active stores whose theme was not told their widget's switch as it stands: off but
    not told so, or on but told off (reconciliation; a store that never switched its
    widget off needs nothing, since an untold theme shows the widget)."""
    return list(
        Store.objects.filter(status=Store.Status.ACTIVE).filter(
            Q(widget_settings__enabled=False, widget_settings__enabled_in_theme__isnull=True)
            | Q(widget_settings__enabled=False, widget_settings__enabled_in_theme=True)
            | Q(widget_settings__enabled=True, widget_settings__enabled_in_theme=False)
        )
    )


# Products kept off before the sync read them, per store: the ids come from the merchant's
# resource picker, and nothing says the shop has them, so what waits is bounded.
MAX_WAITING_OPT_OUTS = 1_000


class TooManyWaiting(ValueError):
    """More products would wait for the sync than MAX_WAITING_OPT_OUTS."""


class OptOutsSet(NamedTuple):
    changed: int  # read products whose choice changed
    not_synced: list[int]  # the ids the catalog has not read: kept off (or not) once it has


def set_products_opted_out(
    *,
    store: Store,
    actor: str,
    shopify_ids: list[int],
    opted_out: bool,
    titles: dict[int, str] | None = None,
) -> OptOutsSet:
    """Take products out of the network (or back in); the index follows at once. Products
    the catalog has not read yet are kept off as the sync reads them (PendingOptOut, shown
    by their ``titles`` meanwhile), or no longer, when put back first. Raises
    TooManyWaiting (and changes nothing) past the bound."""
    with transaction.atomic():
        hold_opt_out_choices(store)  # a batch being stored is read once it is committed
        products = Product.objects.filter(store=store, shopify_id__in=shopify_ids)
        changed = list(products.exclude(opted_out=opted_out).values_list("pk", "shopify_id"))
        read = set(products.values_list("shopify_id", flat=True))
        unread = set(shopify_ids) - read
        waiting = PendingOptOut.objects.filter(store=store)
        # A choice about a read product is made on the product: none waits for it any more
        # (one left waiting would take it off again at the next sync after a return).
        waiting.filter(shopify_id__in=read).delete()
        audit: dict[str, list[int]] = {}
        if opted_out and unread:
            new = unread - set(
                waiting.filter(shopify_id__in=unread).values_list("shopify_id", flat=True)
            )
            if new and waiting.count() + len(new) > MAX_WAITING_OPT_OUTS:
                raise TooManyWaiting(MAX_WAITING_OPT_OUTS)
            PendingOptOut.objects.bulk_create(
                [PendingOptOut(store=store, shopify_id=i, title=(titles or {}).get(i, "")[:255])
                 for i in sorted(new)],
                ignore_conflicts=True,
            )  # fmt: skip
            if new:
                audit["opted_out_once_synced"] = sorted(new)
        elif not opted_out and unread:
            dropped = sorted(
                waiting.filter(shopify_id__in=unread).values_list("shopify_id", flat=True)
            )
            waiting.filter(shopify_id__in=dropped).delete()
            if dropped:
                audit["no_longer_opted_out_once_synced"] = dropped
        if changed:
            Product.objects.filter(pk__in=[pk for pk, _ in changed]).update(opted_out=opted_out)
            kind = IndexEvent.Kind.REMOVE if opted_out else IndexEvent.Kind.UPSERT
            emit_index_events(kind, [(pk, store.pk) for pk, _ in changed])
            audit["opted_out" if opted_out else "opted_in"] = sorted(sid for _, sid in changed)
        if audit:
            SettingsChange.objects.create(store=store, actor=actor, changes=audit)
    return OptOutsSet(len(changed), sorted(unread))
