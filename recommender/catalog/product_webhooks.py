"""products/create|update|delete webhooks: re-read the product, write what Shopify has now."""

from __future__ import annotations

from typing import Any

from recommender.catalog.embedding_pass import request_embedding
from recommender.catalog.index_events import delete_products
from recommender.catalog.pacer import Pacer
from recommender.catalog.products import PRODUCT_QUERY, upsert_products
from recommender.models import CatalogSync, PendingOptOut, Product
from stores.models import Store, WebhookDelivery
from stores.webhooks import parse_time


def handle_product_webhook(delivery: WebhookDelivery) -> str:
    """The handler registered for the products/* topics."""
    return apply_product_webhook(
        shop_domain=delivery.shop_domain,
        topic=delivery.topic,
        payload=delivery.payload,
    )


def apply_product_webhook(*, shop_domain: str, topic: str, payload: dict[str, Any]) -> str:
    """products/create|update|delete. Creates and updates re-read the product through the
    Admin API, so a late or out-of-order delivery can only ever write Shopify's current
    state; a deleted product reads as null and is removed."""
    store = Store.objects.filter(shop_domain=shop_domain, status=Store.Status.ACTIVE).first()
    if store is None:
        return "store not active"
    try:
        product_id = int(payload["id"])
    except (KeyError, TypeError, ValueError):
        return "payload without a product id"
    if topic == "products/delete":
        return "deleted" if _gone(store, product_id) else "already gone"
    stored = Product.objects.filter(store=store, shopify_id=product_id).first()
    # Judged on Shopify's clock alone: the product's updated_at the (signed) payload carries
    # against the one stored. The delivery's arrival time is on ours, which may be behind.
    carried = parse_time(payload.get("updated_at"))
    if stored and stored.shopify_updated_at and carried and carried < stored.shopify_updated_at:
        return "stale: stored product is newer"
    node = (
        Pacer(store)
        .call(PRODUCT_QUERY, {"id": f"gid://shopify/Product/{product_id}"})
        .data.get("product")
    )
    if node is None:
        _gone(store, product_id)
        return "product no longer exists"
    sync, _ = CatalogSync.objects.get_or_create(store=store)
    changed = upsert_products(store, sync, [node])
    if changed:
        request_embedding(store)
    return "updated" if changed else "unchanged"


def _gone(store: Store, product_id: int) -> int:
    """A product deleted in the shop: out of the catalog and the index, and a choice to keep
    it off made before any sync read it has nothing left to wait for."""
    PendingOptOut.objects.filter(store=store, shopify_id=product_id).delete()
    return delete_products(Product.objects.filter(store=store, shopify_id=product_id))
