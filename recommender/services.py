"""Recommender services: what writes catalog, vector and exchange state."""

from __future__ import annotations

from recommender.models import CatalogSync, Product
from stores.models import Store


def purge_store_data(store: Store) -> None:
    """Delete everything of a redacted store but its partners' ledger entries."""
    Product.objects.filter(store=store).delete()
    CatalogSync.objects.filter(store=store).delete()
