"""Catalog products: the Admin API's Product as our rows, the one eligibility rule, and
writing batches of them (only what changed; index events for what enters or leaves)."""

from __future__ import annotations

import logging
from decimal import Decimal, InvalidOperation
from typing import Any

from django.db import transaction
from django.utils import timezone

from interlayer.text import made_storable
from recommender.catalog.index_events import emit_index_events
from recommender.exchange.locks import lock_for_transaction
from recommender.models import CatalogSync, IndexEvent, PendingOptOut, Product
from recommender.ranking import embedding
from stores.models import Store
from stores.webhooks import parse_time

log = logging.getLogger(__name__)

# Selected once, used by the page query, the bulk query and the single-product query.
PRODUCT_FIELDS = """
    id legacyResourceId handle title description(truncateAt: 2000) vendor productType tags
    status isGiftCard onlineStoreUrl totalInventory tracksInventory updatedAt
    category { id name fullName }
    priceRangeV2 { minVariantPrice { amount currencyCode } maxVariantPrice { amount currencyCode } }
    featuredMedia { preview { image { url } } }
"""
PRODUCT_QUERY = "query OneProduct($id: ID!) { product(id: $id) {" + PRODUCT_FIELDS + "} }"
# Per node: Product, category, priceRangeV2 (+2 MoneyV2), featuredMedia, preview, image.
NODE_COST = 8


# The price columns hold up to this (numeric(12, 2)).
MAX_PRICE = Decimal("9999999999.99")
# A price that is not one (NaN, infinite, negative) or more than the columns hold, as it is
# stored: the product is kept, out of the exchange ("price out of range").
NO_PRICE = Decimal("-1")


def _decimal(value: Any) -> Decimal:
    """An amount as Shopify writes it: 0 when missing or unreadable ("free"), NO_PRICE
    when it is no amount the columns hold."""
    try:
        amount = Decimal(str(value))
    except (InvalidOperation, ValueError):
        return Decimal("0")
    if not amount.is_finite() or not Decimal("0") <= amount <= MAX_PRICE:
        return NO_PRICE
    return amount.quantize(Decimal("0.01"))


def ineligibility(fields: dict[str, Any]) -> str:
    """Why a product must not be recommended ("" when it may be). The one place for it."""
    if not fields["title"].strip():
        return "no title"
    if fields["status"] != "ACTIVE":
        return fields["status"].lower()
    if not fields["published"]:
        return "unpublished"
    if fields["is_gift_card"]:
        return "gift card"
    if fields["price_min"] == NO_PRICE:
        return "price out of range"
    if fields["price_max"] <= 0:
        return "free"
    if not fields["available"]:
        return "out of stock"
    return ""


def product_fields(node: dict[str, Any]) -> dict[str, Any]:
    """An Admin API Product node as Product columns (text cleaned, lengths bounded)."""
    # A NUL or a lone surrogate (JSON carries both) as U+FFFD: PostgreSQL takes neither,
    # and the product would be skipped at every sync.
    node = made_storable(node)
    category = node.get("category") or {}
    prices = node.get("priceRangeV2") or {}
    low = (prices.get("minVariantPrice") or {}).get("amount")
    high = (prices.get("maxVariantPrice") or {}).get("amount")
    media = ((node.get("featuredMedia") or {}).get("preview") or {}).get("image") or {}
    tags = [str(tag)[:100] for tag in (node.get("tags") or []) if str(tag).strip()][:50]
    updated = parse_time(node.get("updatedAt"))  # None where no column holds it
    # A variant past what the columns hold (a placeholder) leaves the product its lowest
    # price, the one shown.
    highest = _decimal(high)
    highest = MAX_PRICE if highest == NO_PRICE else highest
    fields = {
        "handle": str(node.get("handle") or "")[:255],
        "title": str(node.get("title") or "").strip()[:500],
        "description": embedding.product_text(title="", description=node.get("description") or "")[
            :5000
        ],
        "vendor": str(node.get("vendor") or "")[:255],
        "product_type": str(node.get("productType") or "")[:255],
        "tags": tags,
        "category_id": str(category.get("id") or "")[:100],
        "category_name": str(category.get("name") or "")[:255],
        "category_full_name": str(category.get("fullName") or "")[:500],
        "status": str(node.get("status") or "").upper()[:20],
        "published": bool(node.get("onlineStoreUrl")),
        "available": not node.get("tracksInventory") or int(node.get("totalInventory") or 0) > 0,
        "is_gift_card": bool(node.get("isGiftCard")),
        "price_min": _decimal(low),
        "price_max": highest,
        "currency": str((prices.get("minVariantPrice") or {}).get("currencyCode") or "")[:3],
        "image_url": str(media.get("url") or "")[:1000],
        "url": str(node.get("onlineStoreUrl") or "")[:1000],
        "shopify_updated_at": updated,
    }
    fields["ineligible_reason"] = ineligibility(fields)
    fields["eligible"] = not fields["ineligible_reason"]
    fields["content_hash"] = embedding.content_hash(embedding_text(fields))
    return fields


def embedding_text(fields: dict[str, Any]) -> str:
    return embedding.product_text(
        title=fields["title"],
        product_type=fields["product_type"],
        category=fields["category_full_name"],
        tags=fields["tags"],
        vendor=fields["vendor"],
        description=fields["description"],
    )


def shopify_id(gid: str) -> int:
    """The number at the end of a global id; ValueError when it is no id (a bigint column
    holds 1 to 2**63 - 1)."""
    number = int(str(gid).rsplit("/", 1)[-1])
    if not 0 < number < 2**63:
        raise ValueError(f"product id out of range: {number}")
    return number


def upsert_products(store: Store, sync: CatalogSync, nodes: list[dict[str, Any]]) -> int:
    """Insert or update a batch of product nodes; returns how many changed content."""
    if not nodes:
        return 0
    incoming = {}
    for node in nodes:
        # One odd node is skipped, not the batch: a batch that fails fails every sync of
        # the store at the same place.
        try:
            incoming[shopify_id(node["id"])] = product_fields(node)
        except (KeyError, ValueError, TypeError, ArithmeticError, AttributeError):
            log.warning("skipped malformed product node shop=%s", store.shop_domain)
    existing = {
        p.shopify_id: p for p in Product.objects.filter(store=store, shopify_id__in=list(incoming))
    }
    existing_hashes = {pid: p.content_hash for pid, p in existing.items()}
    to_create, to_update = [], []
    index_changes: list[tuple[str, int]] = []
    now = timezone.now()
    for product_id, fields in incoming.items():
        product = existing.get(product_id)
        if product is None:
            to_create.append(
                Product(
                    store=store, shopify_id=product_id, sync_generation=sync.generation, **fields
                )
            )
        elif _older_than_stored(fields, product):
            # A bulk operation's file is a snapshot taken minutes ago: a webhook may have
            # stored a later edit of this product since. Still seen (the UPDATE below).
            continue
        elif any(getattr(product, name) != value for name, value in fields.items()):
            if product.eligible != fields["eligible"]:
                # Out of the index at once; back in when its (current) vector is there.
                current = product.embedded_hash == fields["content_hash"]
                if not fields["eligible"]:
                    index_changes.append((IndexEvent.Kind.REMOVE, product.pk))
                elif current:
                    index_changes.append((IndexEvent.Kind.UPSERT, product.pk))
            for name, value in fields.items():
                setattr(product, name, value)
            product.sync_generation = max(product.sync_generation, sync.generation)
            product.updated_at = now  # bulk_update skips auto_now
            to_update.append(product)
    with transaction.atomic():
        hold_opt_out_choices(store)  # first: before this batch locks any product's row
        Product.objects.bulk_create(to_create, ignore_conflicts=True)
        if to_update:
            Product.objects.bulk_update(
                to_update, [*_FIELD_NAMES, "sync_generation", "updated_at"], batch_size=500
            )
        # Unchanged rows are only marked as seen by this sync: one UPDATE, no row rewrites.
        # Never back to an older generation: a later sync running beside this one (a
        # requeued task, an operator's --now) saw them already, and would delete them.
        Product.objects.filter(
            store=store, shopify_id__in=list(incoming), sync_generation__lt=sync.generation
        ).update(sync_generation=sync.generation)
        for kind in (IndexEvent.Kind.REMOVE, IndexEvent.Kind.UPSERT):
            emit_index_events(kind, [(pk, store.pk) for k, pk in index_changes if k == kind])
        keep_off_as_chosen(store, list(incoming))
    return len(to_create) + sum(
        1 for p in to_update if p.content_hash != existing_hashes.get(p.shopify_id)
    )


def hold_opt_out_choices(store: Store) -> None:
    """Until the transaction ends, the store's opt-out choices and the batches the sync or
    a webhook stores take turns: each then reads what the other committed. (Otherwise a
    choice made while a batch stored the product saw no product, the batch saw no choice,
    and the product entered the network with the choice left waiting; and two choices at
    once could each count the waiting ones before the other added its own.) Taken before
    either writes a product's row, so neither waits for the other's rows holding it."""
    lock_for_transaction(f"opt-out-choices:{store.pk}")


def keep_off_as_chosen(store: Store, shopify_ids: list[int]) -> int:
    """Products among ``shopify_ids`` the merchant chose to keep off the network before the
    catalog had read them (PendingOptOut): kept off now that it has, out of the index if
    they were in it. Returns how many. Every batch the sync or a webhook stores, and each
    such choice, calls it, holding hold_opt_out_choices."""
    waiting = PendingOptOut.objects.filter(store=store, shopify_id__in=shopify_ids)
    chosen = list(waiting.values_list("shopify_id", flat=True))
    if not chosen:
        return 0
    read = Product.objects.filter(store=store, shopify_id__in=chosen)
    kept = list(read.filter(opted_out=False).values_list("pk", flat=True))
    Product.objects.filter(pk__in=kept).update(opted_out=True)
    emit_index_events(IndexEvent.Kind.REMOVE, [(pk, store.pk) for pk in kept])
    PendingOptOut.objects.filter(
        store=store, shopify_id__in=read.values_list("shopify_id", flat=True)
    ).delete()
    return len(kept)


def _older_than_stored(fields: dict[str, Any], product: Product) -> bool:
    incoming, stored = fields["shopify_updated_at"], product.shopify_updated_at
    return bool(incoming and stored and incoming < stored)


# The columns product_fields() fills, in one list for bulk_update.
_FIELD_NAMES = [
    "handle", "title", "description", "vendor", "product_type", "tags", "category_id",
    "category_name", "category_full_name", "status", "published", "available", "is_gift_card",
    "price_min", "price_max", "currency", "image_url", "url", "shopify_updated_at",
    "ineligible_reason", "eligible", "content_hash",
]  # fmt: skip
