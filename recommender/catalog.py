"""The catalog: every product of every participating store, read through the Admin GraphQL
API, kept fresh by webhooks, and embedded.

Small catalogs are read page by page (cursor pagination, paced by the cost data Shopify
returns); large ones with ``bulkOperationRunQuery`` (one JSONL file). An interrupted page
sync resumes from its last cursor. Unchanged products keep their vectors (content hash).
https://shopify.dev/docs/api/usage/pagination-graphql
https://shopify.dev/docs/api/usage/bulk-operations/queries
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Iterable, Iterator
from datetime import datetime, timedelta
from decimal import Decimal, InvalidOperation
from typing import Any

from django.conf import settings
from django.db import connection, transaction
from django.db.models import F, Max, Q
from django.utils import timezone
from django.utils.dateparse import parse_datetime

from recommender import embedding, services
from recommender.models import CatalogSync, IndexEvent, Product
from stores import services as store_services
from stores import shopify
from stores.models import Store

log = logging.getLogger(__name__)

# Selected once, used by the page query, the bulk query and the single-product query.
PRODUCT_FIELDS = """
    id legacyResourceId handle title description(truncateAt: 2000) vendor productType tags
    status isGiftCard onlineStoreUrl totalInventory tracksInventory updatedAt
    category { id name fullName }
    priceRangeV2 { minVariantPrice { amount currencyCode } maxVariantPrice { amount currencyCode } }
    featuredMedia { preview { image { url } } }
"""
PAGE_QUERY = (
    "query CatalogPage($first: Int!, $after: String) { products(first: $first, after: $after) {"
    " pageInfo { hasNextPage endCursor } nodes {" + PRODUCT_FIELDS + "} } }"
)
PRODUCT_QUERY = "query OneProduct($id: ID!) { product(id: $id) {" + PRODUCT_FIELDS + "} }"
BULK_INNER_QUERY = "{ products { edges { node {" + PRODUCT_FIELDS + "} } } }"
BULK_RUN_MUTATION = """
mutation RunBulk($query: String!) {
  bulkOperationRunQuery(query: $query) { bulkOperation { id status } userErrors { field message } }
}"""
BULK_STATUS_QUERY = """
query BulkStatus($id: ID!) {
  bulkOperation(id: $id) { id status errorCode objectCount url partialDataUrl }
}"""
COUNT_QUERY = "query CatalogSize { productsCount { count } }"

# Per node: Product, category, priceRangeV2 (+2 MoneyV2), featuredMedia, preview, image.
NODE_COST = 8
MAX_SHOPIFY_RETRIES = 6


class SyncAborted(Exception):
    """The store went away (uninstalled) while its catalog was being read."""


# --- mapping and the eligibility rule ------------------------------------------------------


def _decimal(value: Any) -> Decimal:
    try:
        return Decimal(str(value)).quantize(Decimal("0.01"))
    except (InvalidOperation, ValueError):
        return Decimal("0")


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
    if fields["price_max"] <= 0:
        return "free"
    if not fields["available"]:
        return "out of stock"
    return ""


def product_fields(node: dict[str, Any]) -> dict[str, Any]:
    """An Admin API Product node as Product columns (text cleaned, lengths bounded)."""
    category = node.get("category") or {}
    prices = node.get("priceRangeV2") or {}
    low = (prices.get("minVariantPrice") or {}).get("amount")
    high = (prices.get("maxVariantPrice") or {}).get("amount")
    media = ((node.get("featuredMedia") or {}).get("preview") or {}).get("image") or {}
    tags = [str(tag)[:100] for tag in (node.get("tags") or []) if str(tag).strip()][:50]
    updated = parse_datetime(node["updatedAt"]) if node.get("updatedAt") else None
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
        "price_max": _decimal(high),
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
    return int(str(gid).rsplit("/", 1)[-1])


# --- calling Shopify politely -----------------------------------------------------------


class Pacer:
    """Keeps a sync inside the shop's leaky bucket using the cost data of each response,
    and retries throttling and outages with backoff (never hammering a shop)."""

    def __init__(self, store: Store):
        self.store = store
        self.available: float | None = None
        self.restore_rate = 50.0
        self.waited = 0.0

    def call(self, query: str, variables: dict[str, Any] | None = None, *, cost: int = 10):
        for attempt in range(MAX_SHOPIFY_RETRIES + 1):
            self._wait_for(cost)
            try:
                response = store_services.admin_graphql(self.store, query, variables)
            except shopify.ShopifyThrottled as error:
                self._sleep(max(error.retry_after, 0.5))
                self.available = None
                if attempt == MAX_SHOPIFY_RETRIES:
                    raise
                continue
            except shopify.ShopifyUnavailable:
                if attempt == MAX_SHOPIFY_RETRIES:
                    raise
                self._sleep(min(0.5 * 2**attempt, 30))
                continue
            status = response.throttle_status
            if status:
                self.available = float(status.get("currentlyAvailable", 0))
                self.restore_rate = float(status.get("restoreRate") or self.restore_rate)
            return response
        raise AssertionError("unreachable")

    def _wait_for(self, cost: int) -> None:
        if self.available is not None and self.available < cost:
            self._sleep((cost - self.available) / self.restore_rate)

    def _sleep(self, seconds: float) -> None:
        self.waited += seconds
        time.sleep(seconds)


# --- the sync ---------------------------------------------------------------------------


def request_sync(store: Store) -> None:
    """Queue a full sync of the store's catalog (install hook, operator command, merchant)."""
    sync, _ = CatalogSync.objects.get_or_create(store=store)
    CatalogSync.objects.filter(pk=sync.pk).exclude(state=CatalogSync.State.RUNNING).update(
        state=CatalogSync.State.QUEUED
    )
    transaction.on_commit(lambda: _enqueue("recommender.tasks.sync_catalog", store.pk, "sync"))


def resume_stalled_syncs(*, older_than: timedelta) -> int:
    """Re-request syncs that never finished: queued or running tasks lost with a worker,
    failed ones after a pause, and active stores that were never synced."""
    cutoff = timezone.now() - older_than
    unfinished = [
        CatalogSync.State.IDLE, CatalogSync.State.QUEUED,
        CatalogSync.State.RUNNING, CatalogSync.State.FAILED,
    ]  # fmt: skip
    stalled = Store.objects.filter(status=Store.Status.ACTIVE).filter(
        Q(catalog_sync__isnull=True)
        | Q(catalog_sync__state__in=unfinished, catalog_sync__updated_at__lte=cutoff)
    )
    count = 0
    for store in stalled:
        CatalogSync.objects.filter(store=store).update(updated_at=timezone.now())
        request_sync(store)
        count += 1
    # Synced, but the embedding pass was cut short (a worker stopped mid-way).
    unembedded = (
        Product.objects.filter(store__status=Store.Status.ACTIVE, eligible=True)
        .exclude(embedded_hash=F("content_hash"))
        .exclude(store__in=stalled)
        .values_list("store_id", flat=True)
        .distinct()
    )
    for store in Store.objects.filter(pk__in=list(unembedded)):
        CatalogSync.objects.filter(store=store).update(embed_queued=False)
        request_embedding(store)
        count += 1
    return count


def _enqueue(func: str, store_id: int, label: str) -> None:
    from django_q.tasks import async_task

    async_task(func, store_id, task_name=f"{label}:{store_id}")


def sync_catalog(store: Store) -> CatalogSync:
    """Read the whole catalog; store, update and delete products; then embed what changed."""
    sync, _ = CatalogSync.objects.get_or_create(store=store)
    resuming = bool(sync.cursor) and sync.state == CatalogSync.State.FAILED
    if not resuming:
        sync.generation += 1
        sync.products_seen = 0
        sync.cursor = ""
    sync.state = CatalogSync.State.RUNNING
    sync.started_at = sync.started_at if resuming else timezone.now()
    sync.save()
    pacer = Pacer(store)
    try:
        total = _catalog_size(pacer)
        if total > settings.RECOMMENDER_BULK_THRESHOLD and not resuming:
            sync.mode = "bulk"
            _sync_bulk(store, sync, pacer)
        else:
            sync.mode = "pages"
            _sync_pages(store, sync, pacer)
        deleted = _delete_unseen(store, sync)
    except (shopify.ShopifyError, SyncAborted, ValueError) as error:
        detail = getattr(error, "detail", None) or str(error)
        sync.state = CatalogSync.State.FAILED
        sync.last_error = detail[:2000]
        sync.last_error_at = timezone.now()
        sync.save()
        log.warning("catalog sync failed shop=%s error=%s", store.shop_domain, detail)
        return sync
    sync.state = CatalogSync.State.DONE
    sync.cursor = ""
    sync.finished_at = timezone.now()
    sync.save()
    log.info(
        "catalog synced shop=%s mode=%s seen=%s deleted=%s throttle_wait=%.1fs",
        store.shop_domain,
        sync.mode,
        sync.products_seen,
        deleted,
        pacer.waited,
    )
    embed_store(store)
    return sync


def _catalog_size(pacer: Pacer) -> int:
    data = pacer.call(COUNT_QUERY, cost=1).data
    return int((data.get("productsCount") or {}).get("count") or 0)


def _page_size(pacer: Pacer) -> int:
    budget = pacer.available if pacer.available is not None else 1000
    # Never ask for more than half of what a full bucket holds, never fewer than 10.
    return int(max(10, min(settings.RECOMMENDER_PAGE_SIZE, (max(budget, 500) / 2) // NODE_COST)))


def _sync_pages(store: Store, sync: CatalogSync, pacer: Pacer) -> None:
    while True:
        _ensure_installed(store)
        first = _page_size(pacer)
        variables = {"first": first, "after": sync.cursor or None}
        data = pacer.call(PAGE_QUERY, variables, cost=2 + first * NODE_COST).data
        connection = data.get("products") or {}
        nodes = connection.get("nodes") or []
        _upsert(store, sync, nodes)
        page = connection.get("pageInfo") or {}
        with transaction.atomic():
            sync.products_seen += len(nodes)
            sync.cursor = page.get("endCursor") or sync.cursor
            sync.save(update_fields=["products_seen", "cursor", "updated_at"])
        if not page.get("hasNextPage"):
            return


def _sync_bulk(store: Store, sync: CatalogSync, pacer: Pacer) -> None:
    payload = pacer.call(BULK_RUN_MUTATION, {"query": BULK_INNER_QUERY}).data
    result = payload.get("bulkOperationRunQuery") or {}
    if result.get("userErrors"):
        raise ValueError("bulk query refused: " + result["userErrors"][0]["message"])
    operation_id = result["bulkOperation"]["id"]
    sync.bulk_operation_id = operation_id
    sync.save(update_fields=["bulk_operation_id", "updated_at"])
    delay = 0.2
    while True:
        _ensure_installed(store)
        status = pacer.call(BULK_STATUS_QUERY, {"id": operation_id}, cost=1).data["bulkOperation"]
        if status["status"] == "COMPLETED":
            break
        if status["status"] in {"FAILED", "CANCELED", "EXPIRED"}:
            raise ValueError(
                f"bulk operation {status['status'].lower()}: {status.get('errorCode')}"
            )
        time.sleep(delay)
        delay = min(delay * 1.5, 5)
    if not status.get("url"):
        return  # an empty catalog produces no file
    batch: list[dict[str, Any]] = []
    for node in _jsonl(shopify.download_lines(status["url"])):
        batch.append(node)
        if len(batch) >= 500:
            _ensure_installed(store)
            _upsert(store, sync, batch)
            sync.products_seen += len(batch)
            batch = []
    _upsert(store, sync, batch)
    sync.products_seen += len(batch)
    sync.save(update_fields=["products_seen", "updated_at"])


def _jsonl(lines: Iterable[str]) -> Iterator[dict[str, Any]]:
    for line in lines:
        if line.strip():
            node = json.loads(line)
            if "__parentId" not in node:  # nested connection rows; we select none
                yield node


def _ensure_installed(store: Store) -> None:
    status = Store.objects.filter(pk=store.pk).values_list("status", flat=True).first()
    if status != Store.Status.ACTIVE:
        raise SyncAborted(f"store is {status or 'gone'}; sync stopped")


def _upsert(store: Store, sync: CatalogSync, nodes: list[dict[str, Any]]) -> int:
    """Insert or update a batch of product nodes; returns how many changed content."""
    if not nodes:
        return 0
    incoming = {}
    for node in nodes:
        try:
            incoming[shopify_id(node["id"])] = product_fields(node)
        except (KeyError, ValueError, TypeError):
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
            product.sync_generation = sync.generation
            product.updated_at = now  # bulk_update skips auto_now
            to_update.append(product)
    with transaction.atomic():
        Product.objects.bulk_create(to_create, ignore_conflicts=True)
        if to_update:
            Product.objects.bulk_update(
                to_update, [*_FIELD_NAMES, "sync_generation", "updated_at"], batch_size=500
            )
        # Unchanged rows are only marked as seen by this sync: one UPDATE, no row rewrites.
        Product.objects.filter(store=store, shopify_id__in=list(incoming)).exclude(
            sync_generation=sync.generation
        ).update(sync_generation=sync.generation)
        for kind in (IndexEvent.Kind.REMOVE, IndexEvent.Kind.UPSERT):
            services.emit_index_events(
                kind, [(pk, store.pk) for k, pk in index_changes if k == kind]
            )
    return len(to_create) + sum(
        1 for p in to_update if p.content_hash != existing_hashes.get(p.shopify_id)
    )


# The columns product_fields() fills, in one list for bulk_update.
_FIELD_NAMES = [
    "handle", "title", "description", "vendor", "product_type", "tags", "category_id",
    "category_name", "category_full_name", "status", "published", "available", "is_gift_card",
    "price_min", "price_max", "currency", "image_url", "url", "shopify_updated_at",
    "ineligible_reason", "eligible", "content_hash",
]  # fmt: skip


def _delete_unseen(store: Store, sync: CatalogSync) -> int:
    """Products the full read did not see are gone from Shopify (their webhook was missed),
    unless a webhook touched them after the sync started."""
    return services.delete_products(
        Product.objects.filter(store=store, sync_generation__lt=sync.generation).filter(
            updated_at__lt=sync.started_at
        )
    )


# --- webhooks ---------------------------------------------------------------------------


def apply_product_webhook(
    *, shop_domain: str, topic: str, payload: dict[str, Any], triggered_at: datetime | None
) -> str:
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
        deleted = services.delete_products(
            Product.objects.filter(store=store, shopify_id=product_id)
        )
        return "deleted" if deleted else "already gone"
    stored = Product.objects.filter(store=store, shopify_id=product_id).first()
    if (
        stored
        and stored.shopify_updated_at
        and triggered_at
        and triggered_at < stored.shopify_updated_at
    ):
        return "stale: stored product is newer"
    node = (
        Pacer(store)
        .call(PRODUCT_QUERY, {"id": f"gid://shopify/Product/{product_id}"})
        .data.get("product")
    )
    if node is None:
        services.delete_products(Product.objects.filter(store=store, shopify_id=product_id))
        return "product no longer exists"
    sync, _ = CatalogSync.objects.get_or_create(store=store)
    changed = _upsert(store, sync, [node])
    if changed:
        request_embedding(store)
    return "updated" if changed else "unchanged"


def _save_vectors(products: list[Product], vectors) -> None:
    """One pipelined executemany: Django's bulk_update builds a CASE per column and row,
    which is slow for a few hundred 1.5 KB vectors."""
    now = timezone.now()
    rows = [
        (vector.astype("float32").tobytes(), product.content_hash, now, product.pk)
        for product, vector in zip(products, vectors, strict=True)
    ]
    table = Product._meta.db_table
    with transaction.atomic(), connection.cursor() as cursor:
        cursor.executemany(
            f"UPDATE {table} SET vector = %s, embedded_hash = %s, embedded_at = %s WHERE id = %s",  # noqa: S608 - table name from the model
            rows,
        )


# --- embedding --------------------------------------------------------------------------


def get_embedder() -> embedding.Embedder:
    return embedding.load_embedder(
        settings.RECOMMENDER_EMBEDDER,
        str(settings.RECOMMENDER_MODEL_DIR),
        settings.RECOMMENDER_EMBED_THREADS,
    )


def request_embedding(store: Store) -> None:
    """Queue one embedding pass for the store unless one is already queued (debounce)."""
    sync, _ = CatalogSync.objects.get_or_create(store=store)
    if CatalogSync.objects.filter(pk=sync.pk, embed_queued=False).update(embed_queued=True):
        transaction.on_commit(lambda: _enqueue("recommender.tasks.embed_store", store.pk, "embed"))


def wait_for_quiet(store: Store) -> None:
    """Let a burst of webhooks settle so a product updated five times is embedded once."""
    quiet = settings.RECOMMENDER_EMBED_QUIET_SECONDS
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        last = Product.objects.filter(store=store).aggregate(last=Max("updated_at"))["last"]
        if last is None or (timezone.now() - last).total_seconds() >= quiet:
            return
        time.sleep(min(quiet, 0.5))


def embed_store(store: Store, *, batch: int = 256) -> int:
    """Embed every eligible product whose text changed since its vector was made."""
    CatalogSync.objects.filter(store=store).update(embed_queued=False)
    pending = Product.objects.filter(store=store, eligible=True).exclude(
        embedded_hash=F("content_hash")
    )
    embedder = None
    done = 0
    while True:
        products = list(pending.order_by("pk")[:batch])
        if not products:
            break
        embedder = embedder or get_embedder()
        texts = [embedding_text(product.__dict__) for product in products]
        vectors = embedder.encode(texts)
        _save_vectors(products, vectors)
        services.emit_index_events(IndexEvent.Kind.UPSERT, [(p.pk, p.store_id) for p in products])
        done += len(products)
    if done:
        CatalogSync.objects.filter(store=store).update(
            embeddings_total=F("embeddings_total") + done
        )
        log.info("embedded shop=%s products=%s", store.shop_domain, done)
    return done
