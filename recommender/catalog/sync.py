"""Reading a store's whole catalog through the Admin GraphQL API.

A catalog whose pages the shop's leaky bucket can pay for now is read page by page
(cursor pagination, pages sized by the cost data Shopify returns); any larger one with
``bulkOperationRunQuery``: Shopify runs it outside the rate limit for the cost of one
mutation, where pages would wait for the bucket to refill (a 1,000-product catalog costs
8,000 points, over a minute at the Standard plan's 100 points/s). An interrupted page sync
resumes from its last cursor. Products are embedded while the read goes on. Unchanged
products keep their vectors (content hash).
https://shopify.dev/docs/api/usage/pagination-graphql
https://shopify.dev/docs/api/usage/bulk-operations/queries
https://shopify.dev/docs/apps/build/apis/graphql-admin/rate-limits
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Iterable, Iterator
from datetime import timedelta
from typing import Any

from django.conf import settings
from django.db import transaction
from django.db.models import F, Q
from django.utils import timezone

from interlayer.queue import enqueue
from interlayer.text import made_storable
from recommender.catalog.embedding_pass import EmbeddingAlongside, embed_store, request_embedding
from recommender.catalog.index_events import delete_products
from recommender.catalog.pacer import Pacer
from recommender.catalog.products import NODE_COST, PRODUCT_FIELDS, upsert_products
from recommender.models import CatalogSync, Product
from stores import shopify
from stores.models import Store, WebhookDelivery
from stores.webhooks import parse_time

log = logging.getLogger(__name__)

PAGE_QUERY = (
    "query CatalogPage($first: Int!, $after: String) { products(first: $first, after: $after) {"
    " pageInfo { hasNextPage endCursor } nodes {" + PRODUCT_FIELDS + "} } }"
)
BULK_INNER_QUERY = "{ products { edges { node {" + PRODUCT_FIELDS + "} } } }"
BULK_RUN_MUTATION = """
mutation RunBulk($query: String!) {
  bulkOperationRunQuery(query: $query) { bulkOperation { id status } userErrors { field message } }
}"""
BULK_STATUS_QUERY = """
query BulkStatus($id: ID!) {
  bulkOperation(id: $id) { id status errorCode objectCount url partialDataUrl createdAt }
}"""
# The app's latest bulk query on the shop: Shopify runs a limited number at a time per app
# and shop, and refuses another while they run.
CURRENT_BULK_QUERY = """
query CurrentBulk { currentBulkOperation(type: QUERY) { id status createdAt } }"""
# A bulk read a worker did not finish (its task timed out on a catalog whose export takes
# longer, the worker died, the file's download broke off) is followed on its next run
# rather than started again: one started again would take as long and be cut off at the
# same point, and Shopify may refuse it while the first runs. Only this long after the
# attempt started, and only an operation still running or done (a result's file lasts
# seven days on Shopify).
FOLLOW_BULK_WITHIN = timedelta(hours=24)
_FOLLOWABLE = {"CREATED", "RUNNING", "COMPLETED"}
COUNT_QUERY = "query CatalogSize { productsCount { count } }"
# Shopify's largest page (``first`` of a connection) and the cost of a connection itself.
MAX_PAGE = 250
CONNECTION_COST = 2
# Bulk JSONL rows are stored in batches of this many: small enough that embedding (which
# goes on alongside) starts early, large enough that a batch is a few queries. The first
# batch is smaller still: the embedder waits for it.
BULK_BATCH = 250
FIRST_BULK_BATCH = 64


# What a sync run moves forward, saved with every state change (plus ``updated_at``).
_PROGRESS_FIELDS = ["products_seen", "cursor", "updated_at"]


def _save(sync: CatalogSync, fields: list[str]) -> None:
    """Save a run's state, and its place in the catalog only while it is the store's latest
    run: two runs at once share the row, and a read resumed from one's cursor under the
    other's generation would skip pages neither saw under it (their products then taken
    for deleted)."""
    place = [name for name in fields if name in {"cursor", "products_seen"}]
    if place:
        CatalogSync.objects.filter(pk=sync.pk, generation=sync.generation).update(
            **{name: getattr(sync, name) for name in place}
        )
    sync.save(update_fields=[name for name in fields if name not in place])


class SyncAborted(Exception):
    """The store went away (uninstalled) while its catalog was being read."""


# A failed sync as the merchant is told it (CatalogSync.failure): what happened, in their
# words, and what they can do; the technical detail stays in last_error for operators.
FAILURES = {
    "access": "Shopify refused Interlayer's access to your store at the time; opening "
    "Interlayer from your Shopify admin renews it.",
    "closed": "Shopify has closed your store's Admin API for now (the store is frozen or "
    "locked); the sync goes on once Shopify opens it again.",
    "busy": "Shopify asked Interlayer to slow down before it had read your whole catalog.",
    "unavailable": "Shopify's Admin API did not answer properly just then (busy, down or out "
    "of reach).",
    "refused": "Shopify refused a request Interlayer needs to read your catalog.",
    "uninstalled": "Interlayer was uninstalled while it read your catalog.",
}
# Any other failure (an answer that could not be read, a bulk read Shopify would not start).
_FAILURE_UNNAMED = "The sync stopped before it had read your whole catalog."


def failure_in_words(sync: CatalogSync) -> str:
    """A failed sync as its merchant is told it (the settings page, the set-up guide)."""
    return FAILURES.get(sync.failure, _FAILURE_UNNAMED)


def failure_of(error: Exception) -> str:
    """The kind of a sync's failure (a key of FAILURES), "" for any other."""
    for kind, errors in (
        ("access", shopify.ShopifyAuthError),
        ("closed", shopify.ShopUnavailable),
        ("busy", shopify.ShopifyThrottled),
        ("unavailable", shopify.ShopifyUnavailable),
        ("uninstalled", SyncAborted),
    ):
        if isinstance(error, errors):
            return kind
    if isinstance(error, shopify.ShopifyError) and error.status in (403, 404):
        return "refused"
    return ""


def request_sync(store: Store, *, requeue: bool = False, afresh: bool = False) -> bool:
    """Queue a full sync of the store's catalog (install hook, operator command, merchant),
    unless one is queued or running already: each is a full read of the catalog on the
    workers every store shares, and a merchant's repeated clicks must not stack them up.
    ``requeue`` queues one all the same (a sync whose task was lost). A failed read resumes
    from its last page, unless ``afresh``: after a reinstall or a freeze, whose webhooks
    were turned away, the pages read before hold what changed since. Returns whether a
    sync was queued."""
    sync, _ = CatalogSync.objects.get_or_create(store=store)
    waiting = [CatalogSync.State.QUEUED, CatalogSync.State.RUNNING]
    if afresh:  # a running read sets its own cursor; the sync queued after it starts afresh
        # (neither from a page nor from a bulk operation started before)
        CatalogSync.objects.filter(pk=sync.pk).exclude(state=CatalogSync.State.RUNNING).update(
            cursor="", bulk_operation_id=""
        )
    # One atomic UPDATE: of two concurrent requests, only one finds the sync not waiting.
    queued = (
        CatalogSync.objects.filter(pk=sync.pk)
        .exclude(state__in=waiting)
        .update(state=CatalogSync.State.QUEUED)
    )
    if not queued and not requeue:
        return False
    transaction.on_commit(
        lambda: enqueue("recommender.tasks.sync_catalog", store.pk, task_name=f"sync:{store.pk}")
    )
    return True


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
        request_sync(store, requeue=True)
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


# Webhooks are not a guarantee (Shopify gives up on a delivery after 8 tries over 4 hours,
# and one it never sent is never retried): each catalog is read again this long after its
# last read, at most REREADS_PER_RUN stores per reconciliation run (every 5 minutes).
REREAD_AFTER = timedelta(days=7)
REREADS_PER_RUN = 5


def reread_old_catalogs(*, limit: int = REREADS_PER_RUN) -> int:
    """Queue a full read of the active stores whose catalog was last read REREAD_AFTER ago
    or more, the longest-unread first; returns how many were queued."""
    due = (
        CatalogSync.objects.filter(
            store__status=Store.Status.ACTIVE,
            state=CatalogSync.State.DONE,
            finished_at__lte=timezone.now() - REREAD_AFTER,
        )
        .select_related("store")
        .order_by("finished_at")[:limit]
    )
    return sum(request_sync(sync.store) for sync in due)


def sync_catalog(store: Store) -> CatalogSync:
    """Read the whole catalog; store, update and delete products; then embed what changed."""
    sync, _ = CatalogSync.objects.get_or_create(store=store)
    # A read that failed part-way, queued again (reconciliation, the merchant): on from its
    # last page (request_sync leaves no cursor where the read must start over).
    resuming = bool(sync.cursor) and sync.state in (
        CatalogSync.State.FAILED,
        CatalogSync.State.QUEUED,
    )
    following = "" if resuming else _unfinished_bulk_operation(sync)
    if not resuming:
        # In the database: a sync started beside this one gets a generation of its own,
        # and neither writes its own back over the other's.
        CatalogSync.objects.filter(pk=sync.pk).update(generation=F("generation") + 1)
        sync.refresh_from_db(fields=["generation"])
        sync.products_seen = 0
        sync.cursor = ""
    # The operation's id, from here on, is only ever this attempt's (or the one it follows).
    sync.bulk_operation_id = following
    sync.state = CatalogSync.State.RUNNING
    # A followed operation's file is a snapshot from its own attempt's start.
    sync.started_at = sync.started_at if resuming or following else timezone.now()
    sync.save(update_fields=[*_PROGRESS_FIELDS, "state", "started_at", "bulk_operation_id"])
    pacer = Pacer(store)
    try:
        total = _catalog_size(pacer)
        with EmbeddingAlongside(store) as embedding:
            if following or (_bulk_is_faster(total, pacer) and not resuming):
                sync.mode = "bulk"
                _sync_bulk(store, sync, pacer, follow=following, on_stored=embedding.wake)
            else:
                sync.mode = "pages"
                _sync_pages(store, sync, pacer, total=total, on_stored=embedding.wake)
        deleted = _delete_unseen(store, sync)
    except (shopify.ShopifyError, SyncAborted, ValueError) as error:
        detail = getattr(error, "detail", None) or str(error)
        sync.state = CatalogSync.State.FAILED
        sync.last_error = made_storable(detail[:2000])
        sync.last_error_at = timezone.now()
        sync.failure = failure_of(error)
        _save(sync, [*_PROGRESS_FIELDS, "state", "mode", "last_error", "last_error_at", "failure"])
        log.warning("catalog sync failed shop=%s error=%s", store.shop_domain, detail)
        return sync
    except Exception as error:
        # Anything else (the database refusing a write, a response of a shape no one
        # expected) fails the sync too, rather than leave it "running" until reconciliation
        # takes it for lost; raised on, for the task's own record and the logs.
        _record_unexpected_failure(sync, error)
        raise
    sync.state = CatalogSync.State.DONE
    sync.cursor = ""
    sync.finished_at = timezone.now()
    sync.save(update_fields=[*_PROGRESS_FIELDS, "state", "mode", "finished_at"])
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


def _record_unexpected_failure(sync: CatalogSync, error: Exception) -> None:
    try:
        CatalogSync.objects.filter(pk=sync.pk, generation=sync.generation).update(
            state=CatalogSync.State.FAILED,
            last_error=made_storable(f"{type(error).__name__}: {error}"[:2000]),
            last_error_at=timezone.now(), failure="", updated_at=timezone.now(),
        )  # fmt: skip
    except Exception:  # the database itself is away: reconciliation finds it running
        log.exception("a failed catalog sync could not be recorded shop=%s", sync.store_id)


def _catalog_size(pacer: Pacer) -> int:
    data = pacer.call(COUNT_QUERY, cost=1).data
    return int((data.get("productsCount") or {}).get("count") or 0)


def _page_size(pacer: Pacer) -> int:
    """As many products as half of a full bucket pays for (the other half is left to the
    app's other calls on this shop: webhooks' product reads), within the setting and
    Shopify's 250, never fewer than 10."""
    largest = (pacer.maximum / 2 - CONNECTION_COST) // NODE_COST
    return int(max(10, min(settings.RECOMMENDER_PAGE_SIZE, MAX_PAGE, largest)))


def _page_cost(first: int) -> int:
    # Shopify charges what ``first`` could return up front (refunding the rest later).
    return CONNECTION_COST + first * NODE_COST


def _pages_cost(total: int, pacer: Pacer) -> int:
    """What reading ``total`` products in pages asks of the bucket (last page trimmed)."""
    size = _page_size(pacer)
    full, rest = divmod(total, size)
    return full * _page_cost(size) + (_page_cost(max(10, rest)) if rest or not full else 0)


def _bulk_is_faster(total: int, pacer: Pacer) -> bool:
    """Pages while the points available now pay for the whole catalog (no wait, no bulk
    operation to start and poll); a bulk operation beyond that, or above the threshold."""
    if total > settings.RECOMMENDER_BULK_THRESHOLD:
        return True
    available = pacer.available if pacer.available is not None else pacer.maximum
    return _pages_cost(total, pacer) > available


def _sync_pages(
    store: Store, sync: CatalogSync, pacer: Pacer, *, total: int, on_stored=None
) -> None:
    while True:
        _ensure_installed(store)
        # The last page asks for what is left, not a full page's cost (at least 10, in case
        # products were added since the count).
        first = min(_page_size(pacer), max(10, total - sync.products_seen))
        variables = {"first": first, "after": sync.cursor or None}
        data = pacer.call(PAGE_QUERY, variables, cost=_page_cost(first)).data
        connection = data.get("products") or {}
        nodes = connection.get("nodes") or []
        upsert_products(store, sync, nodes)
        page = connection.get("pageInfo") or {}
        more = page.get("hasNextPage")
        if more and (not page.get("endCursor") or page.get("endCursor") == sync.cursor):
            # Asking again would get the same page, spending the shop's API budget until
            # the task's timeout, and the next attempt would do the same.
            raise ValueError("Shopify said more products follow but gave no next page")
        with transaction.atomic():
            sync.products_seen += len(nodes)
            sync.cursor = page.get("endCursor") or sync.cursor
            _save(sync, ["products_seen", "cursor", "updated_at"])
        if on_stored:
            on_stored()
        if not more:
            return


def _unfinished_bulk_operation(sync: CatalogSync) -> str:
    """The bulk operation of the store's last attempt, if that attempt did not finish and
    may be followed (FOLLOW_BULK_WITHIN); else ""."""
    unfinished = sync.state in (
        CatalogSync.State.QUEUED, CatalogSync.State.RUNNING, CatalogSync.State.FAILED
    )  # fmt: skip
    if not (unfinished and sync.mode == "bulk" and sync.bulk_operation_id and sync.started_at):
        return ""
    if sync.finished_at and sync.finished_at >= sync.started_at:
        return ""
    if sync.started_at < timezone.now() - FOLLOW_BULK_WITHIN:
        return ""
    return sync.bulk_operation_id


def _sync_bulk(
    store: Store, sync: CatalogSync, pacer: Pacer, *, follow: str = "", on_stored=None
) -> None:
    operation = None
    if follow:
        operation = pacer.call(BULK_STATUS_QUERY, {"id": follow}, cost=1).data["bulkOperation"]
        if operation and operation.get("status") in _FOLLOWABLE:
            log.info("following the unfinished bulk read shop=%s operation=%s",
                     store.shop_domain, follow)  # fmt: skip
        else:
            operation = None
    if operation is None:
        sync.started_at = timezone.now()  # a snapshot of now: not the earlier attempt's
        operation = _start_bulk(store, sync, pacer)
    operation_id = operation["id"]
    # Products stored before the operation's snapshot but not in it are not deleted.
    created = parse_time(operation.get("createdAt"))
    if created and created < sync.started_at:
        sync.started_at = created
    sync.bulk_operation_id = operation_id
    sync.save(update_fields=["bulk_operation_id", "mode", "started_at", "updated_at"])
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
        if len(batch) >= (BULK_BATCH if sync.products_seen else FIRST_BULK_BATCH):
            _ensure_installed(store)
            upsert_products(store, sync, batch)
            sync.products_seen += len(batch)
            batch = []
            if on_stored:
                on_stored()
    upsert_products(store, sync, batch)
    sync.products_seen += len(batch)
    sync.save(update_fields=["products_seen", "updated_at"])


def _start_bulk(store: Store, sync: CatalogSync, pacer: Pacer) -> dict[str, Any]:
    """A new bulk read of the catalog; or, when Shopify refuses it because the app's last
    one still runs on this shop (its id was never kept: a worker killed right after
    starting it), that one."""
    payload = pacer.call(BULK_RUN_MUTATION, {"query": BULK_INNER_QUERY}).data
    result = payload.get("bulkOperationRunQuery") or {}
    if not result.get("userErrors"):
        return result["bulkOperation"]
    current = pacer.call(CURRENT_BULK_QUERY, cost=1).data.get("currentBulkOperation")
    if current and current.get("status") in {"CREATED", "RUNNING"}:
        log.info("following the bulk read already running shop=%s operation=%s",
                 store.shop_domain, current["id"])  # fmt: skip
        return current
    raise ValueError("bulk query refused: " + result["userErrors"][0]["message"])


def _jsonl(lines: Iterable[str]) -> Iterator[dict[str, Any]]:
    for line in lines:
        if line.strip():
            node = json.loads(line)
            # Not an object: upsert_products skips it as it skips such a page node.
            if not isinstance(node, dict) or "__parentId" not in node:  # nested rows: none
                yield node


def _ensure_installed(store: Store) -> None:
    status = Store.objects.filter(pk=store.pk).values_list("status", flat=True).first()
    if status != Store.Status.ACTIVE:
        raise SyncAborted(f"store is {status or 'gone'}; sync stopped")


def _delete_unseen(store: Store, sync: CatalogSync) -> int:
    """Products the full read did not see are gone from Shopify (their webhook was missed),
    unless a webhook touched them after the sync started. And those deleted since it
    started: the read (a bulk operation's file above all, a snapshot taken minutes before
    it is stored) may have stored them again after their products/delete removed them."""
    unseen = delete_products(
        Product.objects.filter(store=store, sync_generation__lt=sync.generation).filter(
            updated_at__lt=sync.started_at
        )
    )
    deleted_since = (
        WebhookDelivery.objects.filter(
            shop_domain=store.shop_domain, topic="products/delete", received_at__gte=sync.started_at
        )
        .order_by()
        .values_list("payload__id", flat=True)
    )
    ids = [int(pid) for pid in deleted_since if str(pid).isdigit()]
    return unseen + delete_products(Product.objects.filter(store=store, shopify_id__in=ids))
