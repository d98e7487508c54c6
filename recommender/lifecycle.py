"""What the recommender does at the moments of a store's life that stores/ announces
(connected in RecommenderConfig.ready())."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from recommender.catalog import sync
from recommender.catalog.index_events import delete_products
from recommender.controls import widget_settings_for
from recommender.exchange import ledger
from recommender.models import CatalogSync, Impression, Product, WidgetSettings
from stores.models import Store

# A sync not finished after this long was lost (a worker died) and is requested again.
STALLED_SYNC_AFTER = timedelta(minutes=30)


def welcome(sender: Any, *, store: Store, **kwargs: Any) -> None:
    """store_installed: default widget settings and the starter grant."""
    widget_settings_for(store)
    ledger.grant_starter_credits(store)


def start_catalog_sync(sender: Any, *, store: Store, **kwargs: Any) -> None:
    """store_installed: read the catalog."""
    sync.request_sync(store)


def purge_store_data(sender: Any, *, store: Store, **kwargs: Any) -> None:
    """store_redacted: delete everything of the store but its partners' ledger entries
    (and the clicks those entries point to, which hold only hashed visitors and ids)."""
    delete_products(Product.objects.filter(store=store))
    CatalogSync.objects.filter(store=store).delete()
    WidgetSettings.objects.filter(store=store).delete()
    Impression.objects.filter(store=store).delete()


def resume_stalled_work(sender: Any, **kwargs: Any) -> str:
    """reconciliation_due: syncs and embedding passes lost with a worker."""
    return f"resumed={sync.resume_stalled_syncs(older_than=STALLED_SYNC_AFTER)} syncs"
