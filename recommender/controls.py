"""The merchant's controls: widget settings, blocks, exclusions and product opt-outs, each
change recorded in the audit trail."""

from __future__ import annotations

from typing import Any

from django.db import transaction

from recommender.catalog.index_events import emit_index_events
from recommender.models import IndexEvent, Product, SettingsChange, WidgetSettings
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
    return widget


def set_products_opted_out(
    *, store: Store, actor: str, shopify_ids: list[int], opted_out: bool
) -> int:
    """Take products out of the network (or back in); the index follows at once."""
    with transaction.atomic():
        products = Product.objects.filter(store=store, shopify_id__in=shopify_ids).exclude(
            opted_out=opted_out
        )
        changed = list(products.values_list("pk", "shopify_id"))
        if not changed:
            return 0
        Product.objects.filter(pk__in=[pk for pk, _ in changed]).update(opted_out=opted_out)
        kind = IndexEvent.Kind.REMOVE if opted_out else IndexEvent.Kind.UPSERT
        emit_index_events(kind, [(pk, store.pk) for pk, _ in changed])
        SettingsChange.objects.create(
            store=store,
            actor=actor,
            changes={"opted_out" if opted_out else "opted_in": sorted(sid for _, sid in changed)},
        )
    return len(changed)
