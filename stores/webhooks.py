"""Webhooks: verify, record once, acknowledge fast; process in the background.

https://shopify.dev/docs/apps/build/webhooks/subscribe/https — the HMAC is checked on the
raw body before anything is parsed, the answer comes well within Shopify's time limit, and
Shopify's retries and duplicates are absorbed by the unique ``X-Shopify-Event-Id``.
"""

from __future__ import annotations

import json
import logging
import math
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from django.conf import settings
from django.db import IntegrityError, transaction
from django.db.models import F, Q
from django.utils import timezone
from django.utils.dateparse import parse_datetime

from interlayer import queue
from interlayer.logs import bind_shop
from interlayer.text import made_storable
from stores import services
from stores import shopify as shopify_client
from stores.auth import BASE64_SHA256_RE, valid_shop_domain
from stores.models import WebhookDelivery

log = logging.getLogger(__name__)

# Product payloads with many variants and images run to a few hundred KB; nothing Shopify
# sends us comes near this.
MAX_WEBHOOK_BYTES = 1024 * 1024
MAX_ATTEMPTS = 8
# How long a worker owns a delivery it claimed: longer than the queue lets any task run.
PROCESSING_LEASE = timedelta(seconds=settings.Q_CLUSTER["timeout"]) + timedelta(minutes=5)
# A pending delivery this old was queued but never picked up (a broker that lost it).
PENDING_TOO_LONG = timedelta(minutes=10)
# customers/* payloads carry personal data we must not keep (the customer's id, email and
# phone): only the shop, the order ids the request is about and Shopify's request id are
# stored. No customer has more orders than this in one request.
MAX_REQUESTED_ORDERS = 10_000


class WebhookRejected(Exception):
    def __init__(self, message: str, status: int):
        super().__init__(message)
        self.message = message
        self.status = status


@dataclass(frozen=True)
class Received:
    delivery: WebhookDelivery
    duplicate: bool


def receive(*, method: str, headers: dict[str, str], url: str, body: bytes) -> Received:
    """Verify and record one delivery; raises WebhookRejected with the status to answer."""
    if method != "POST":
        raise WebhookRejected("Method not allowed", 405)
    if len(body) > MAX_WEBHOOK_BYTES:
        raise WebhookRejected("Payload too large", 400)
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError:
        raise WebhookRejected("Body is not UTF-8", 400) from None
    lower = {key.lower(): value for key, value in headers.items()}
    if not BASE64_SHA256_RE.match(lower.get("x-shopify-hmac-sha256", "")):
        raise WebhookRejected("HMAC verification failed", 401)
    try:
        verified = shopify_client.app().verify_webhook_req(
            {"method": method, "headers": headers, "url": url, "body": text}
        )
    except (RecursionError, ValueError):
        # The verifier parses the body as JSON (for its log) before it checks the HMAC, and
        # Python's parser gives up on deep nesting (RecursionError) or a number longer than
        # 4,300 digits (ValueError) past the one error the verifier catches; nothing Shopify
        # sends is either.
        raise WebhookRejected("HMAC verification failed", 401) from None
    if not verified.ok:
        # Missing and wrong HMACs alike: the sender is not Shopify.
        raise WebhookRejected("HMAC verification failed", 401)
    shop = valid_shop_domain(lower.get("x-shopify-shop-domain"))
    topic = lower.get("x-shopify-topic", "")
    event_id = lower.get("x-shopify-event-id") or lower.get("x-shopify-webhook-id") or ""
    if shop is None or not topic or not event_id:
        raise WebhookRejected("Missing or invalid Shopify headers", 400)
    bind_shop(shop)
    try:
        # NaN, Infinity and a number past a double's range (1e400) parse, and no JSON
        # column stores them: refused here rather than failing at the insert.
        payload = json.loads(text, parse_constant=_no_number, parse_float=_finite)
    except ValueError:
        raise WebhookRejected("Body is not JSON", 400) from None
    if not isinstance(payload, dict):
        raise WebhookRejected("Body is not a JSON object", 400)
    # A NUL or a lone surrogate in a merchant's text (a product description) is kept as
    # U+FFFD: jsonb refuses both, and the delivery would fail every retry.
    payload = made_storable(payload)
    if topic.startswith("customers/"):
        payload = _compliance_payload(payload)
    elif topic in KEPT_FIELDS:  # an order's webhook: the customer and addresses never kept
        payload = {key: payload.get(key) for key in KEPT_FIELDS[topic]}
    return _record(
        event_id=event_id[:255],
        webhook_id=lower.get("x-shopify-webhook-id", "")[:255],
        topic=topic[:100],
        shop_domain=shop,
        api_version=lower.get("x-shopify-api-version", "")[:20],
        # Not signed (the HMAC covers the body): never later than its arrival, or a clock
        # ahead would make an uninstall look newer than a reinstall that followed it.
        triggered_at=_not_after_now(parse_time(lower.get("x-shopify-triggered-at"))),
        payload=payload,
    )


def _compliance_payload(payload: dict) -> dict:
    """What a customers/* request needs, without the customer: the shop, the order ids
    (``orders_to_redact`` / ``orders_requested``) and the data request's id."""
    kept = {key: payload.get(key) for key in ("shop_id", "shop_domain")}
    for key in ("orders_to_redact", "orders_requested"):
        if key in payload:
            kept[key] = _order_ids(payload.get(key))
    request = payload.get("data_request")
    if isinstance(request, dict) and isinstance(request.get("id"), int | str):
        kept["data_request_id"] = str(request["id"])[:64]
    return kept


def _order_ids(value: object) -> list[str]:
    if not isinstance(value, list) or len(value) > MAX_REQUESTED_ORDERS:
        raise WebhookRejected("Order ids are not a list of ids", 400)
    ids = []
    for item in value:
        text = str(item) if isinstance(item, int) and not isinstance(item, bool) else item
        if not isinstance(text, str) or not text.isdigit() or len(text) > 20:
            raise WebhookRejected("Order ids are not a list of ids", 400)
        ids.append(text)
    return ids


# The years a time Shopify sends can be in (parse_time); no event of an app is older.
EARLIEST_TIME, LATEST_TIME = 2000, 9998


def _not_after_now(moment: datetime | None) -> datetime | None:
    return None if moment is None else min(moment, timezone.now())


def _no_number(word: str) -> float:
    raise ValueError(f"{word} is not a JSON number")


def _finite(text: str) -> float:
    number = float(text)
    if not math.isfinite(number):
        raise ValueError(f"{text} is past a JSON column's range")
    return number


def parse_time(value: Any) -> datetime | None:
    """A time as Shopify writes it (ISO 8601; UTC when it names no zone), None when it is
    missing or not a time, or one no database column holds: a header the signature does
    not cover can say year 1 at +01:00, which is year 0 in UTC."""
    if not value or not isinstance(value, str):
        return None
    try:
        parsed = parse_datetime(value)
    except ValueError:
        return None
    if parsed is None:
        return None
    if timezone.is_naive(parsed):
        parsed = parsed.replace(tzinfo=UTC)
    try:
        in_utc = parsed.astimezone(UTC)
    except OverflowError:
        return None
    return in_utc if EARLIEST_TIME <= in_utc.year <= LATEST_TIME else None


def _record(**fields: Any) -> Received:
    """Record the delivery, and acknowledge it only once its work is durably queued: a
    broker that is down answers 503, so Shopify retries, and the retry queues the work of
    the delivery still pending (a duplicate of a finished one is acknowledged as is)."""
    try:
        with transaction.atomic():
            delivery = WebhookDelivery.objects.create(**fields)
    except IntegrityError:
        # A redelivery or a concurrent duplicate: the first one recorded does the work.
        existing = WebhookDelivery.objects.get(event_id=fields["event_id"])
        if existing.status == WebhookDelivery.Status.PENDING:
            _enqueue_or_refuse(existing.pk)
        return Received(delivery=existing, duplicate=True)
    if fields["topic"] in HANDLERS:
        _enqueue_or_refuse(delivery.pk)
    else:
        WebhookDelivery.objects.filter(pk=delivery.pk).update(
            status=WebhookDelivery.Status.IGNORED, outcome="unknown topic"
        )
        log.warning(
            "webhook with unknown topic=%s shop=%s acknowledged",
            fields["topic"],
            fields["shop_domain"],
        )
    return Received(delivery=delivery, duplicate=False)


def _enqueue_or_refuse(delivery_id: int) -> None:
    try:
        enqueue(delivery_id)
    except Exception as error:  # any broker failure: not acknowledged, Shopify retries
        log.warning("webhook not queued delivery=%s error=%s", delivery_id, type(error).__name__)
        raise WebhookRejected("Queue unavailable; retry later", 503) from None


def enqueue(delivery_id: int) -> None:
    queue.enqueue("stores.tasks.process_webhook", delivery_id, task_name=f"webhook:{delivery_id}")


def claim(delivery_id: int) -> WebhookDelivery | None:
    """Take a delivery to work on, with a lease: one atomic UPDATE, so two workers never
    both claim it. A delivery whose lease ran out (its worker died) can be claimed again."""
    now = timezone.now()
    claimable = Q(status__in=[WebhookDelivery.Status.PENDING, WebhookDelivery.Status.FAILED]) | (
        Q(status=WebhookDelivery.Status.PROCESSING) & _lease_over(now)
    )
    claimed = (
        WebhookDelivery.objects.filter(claimable, pk=delivery_id)
        .update(status=WebhookDelivery.Status.PROCESSING, attempts=F("attempts") + 1,
                lease_expires_at=now + PROCESSING_LEASE)
    )  # fmt: skip
    return WebhookDelivery.objects.get(pk=delivery_id) if claimed else None


def process(delivery_id: int) -> WebhookDelivery | None:
    """Run one delivery's handler, at most once at a time (claimed with a lease)."""
    delivery = claim(delivery_id)
    if delivery is None:
        return None
    bind_shop(delivery.shop_domain)
    handler = HANDLERS.get(delivery.topic)
    try:
        outcome = handler(delivery) if handler else "unknown topic"
    except Exception as error:  # any failure is recorded for operators and retried
        _fail(delivery, error)
        return delivery
    delivery.status = WebhookDelivery.Status.DONE
    delivery.outcome = (outcome or "")[:255]
    delivery.processed_at = timezone.now()
    delivery.last_error = ""
    delivery.next_attempt_at = None
    # shop/redact may have deleted every delivery of the shop, this one included; and a
    # worker whose lease ran out (the delivery was handed on) no longer writes its outcome.
    _owned(delivery).update(
        status=delivery.status,
        outcome=delivery.outcome,
        processed_at=delivery.processed_at,
        last_error="",
        next_attempt_at=None,
        lease_expires_at=None,
    )
    return delivery


def _lease_over(now) -> Q:
    # Rows claimed before leases existed have none: they are over too.
    return Q(lease_expires_at__lt=now) | Q(lease_expires_at__isnull=True)


def _owned(delivery: WebhookDelivery):
    """The delivery as this worker claimed it (still processing, same attempt)."""
    return WebhookDelivery.objects.filter(
        pk=delivery.pk, status=WebhookDelivery.Status.PROCESSING, attempts=delivery.attempts
    )


def _fail(delivery: WebhookDelivery, error: Exception) -> None:
    dead = delivery.attempts >= MAX_ATTEMPTS
    delay = min(timedelta(minutes=2**delivery.attempts), timedelta(hours=6))
    delivery.status = WebhookDelivery.Status.DEAD if dead else WebhookDelivery.Status.FAILED
    delivery.last_error = made_storable(f"{type(error).__name__}: {error}"[:2000])
    delivery.next_attempt_at = None if dead else timezone.now() + delay
    delivery.lease_expires_at = None
    _owned(delivery).update(
        status=delivery.status, last_error=delivery.last_error,
        next_attempt_at=delivery.next_attempt_at, lease_expires_at=None,
    )  # fmt: skip
    log.warning(
        "webhook failed topic=%s shop=%s attempt=%s error=%s",
        delivery.topic,
        delivery.shop_domain,
        delivery.attempts,
        delivery.last_error,
    )


def retry_due() -> int:
    """Re-enqueue what is due (the reconciliation job): failed deliveries whose backoff has
    passed, deliveries whose worker died (lease run out), and pending ones the broker lost."""
    now = timezone.now()
    Status = WebhookDelivery.Status
    due = WebhookDelivery.objects.filter(
        Q(status=Status.FAILED, next_attempt_at__lte=now)
        | (Q(status=Status.PROCESSING) & _lease_over(now))
        | Q(status=Status.PENDING, received_at__lt=now - PENDING_TOO_LONG)
    ).values_list("pk", flat=True)
    count = 0
    for delivery_id in due:
        enqueue(delivery_id)
        count += 1
    return count


def process_pending() -> int:
    """Process every pending delivery in this process (tests, operators)."""
    ids = WebhookDelivery.objects.filter(status=WebhookDelivery.Status.PENDING).values_list(
        "pk", flat=True
    )
    return sum(1 for delivery_id in list(ids) if process(delivery_id) is not None)


# --- handlers: one small function per topic ---------------------------------------------


def _on_app_uninstalled(delivery: WebhookDelivery) -> str:
    return services.uninstall_store(
        shop_domain=delivery.shop_domain, triggered_at=delivery.triggered_at
    )


def _on_shop_redact(delivery: WebhookDelivery) -> str:
    return services.redact_shop(
        shop_domain=delivery.shop_domain,
        # Without Shopify's time of the event, when it arrived (as late as it can be): a
        # redaction must not go without the checks that keep a reinstalled store.
        triggered_at=delivery.triggered_at or delivery.received_at,
        keep_delivery_id=delivery.pk,
    )


def _on_scopes_update(delivery: WebhookDelivery) -> str:
    # {"id": …, "previous": ["read_products"], "current": ["read_products", "read_themes"],
    #  "updated_at": "…", "shop_id": …}: the scopes now granted are "current".
    current = delivery.payload.get("current")
    if not isinstance(current, list) or not all(isinstance(s, str) for s in current):
        raise ValueError("app/scopes_update without a list of current scopes")
    return services.record_granted_scopes(
        shop_domain=delivery.shop_domain, scopes=current, triggered_at=delivery.triggered_at
    )


def _on_customers_redact(delivery: WebhookDelivery) -> str:
    return services.redact_customer_orders(
        shop_domain=delivery.shop_domain, order_ids=delivery.payload.get("orders_to_redact") or []
    )


def _on_customers_data_request(delivery: WebhookDelivery) -> str:
    return services.answer_customer_data_request(
        shop_domain=delivery.shop_domain,
        order_ids=delivery.payload.get("orders_requested") or [],
        request_id=delivery.payload.get("data_request_id") or "",
    )


Handler = Callable[[WebhookDelivery], str]

# Topic -> handler. The lifecycle and compliance topics are handled here; the apps built on
# stores/ add theirs (products/*) with ``register_handler`` in their AppConfig.ready().
HANDLERS: dict[str, Handler] = {
    "app/uninstalled": _on_app_uninstalled,
    "app/scopes_update": _on_scopes_update,
    "shop/redact": _on_shop_redact,
    "customers/redact": _on_customers_redact,
    "customers/data_request": _on_customers_data_request,
}


# Topic -> the only payload fields stored, for topics whose payloads carry personal data
# the handler does not read (an order's customer, email and addresses; the shop owner's
# name, email, phone and address in app/uninstalled, which carries the whole shop).
KEPT_FIELDS: dict[str, tuple[str, ...]] = {
    "app/uninstalled": ("id",),
    "app/scopes_update": ("id", "previous", "current", "updated_at", "shop_id"),
    "shop/redact": ("shop_id", "shop_domain"),
}


def register_handler(topic: str, handler: Handler, *, keep: tuple[str, ...] = ()) -> None:
    """Handle ``topic`` (it must also be subscribed in shopify.app.toml). With ``keep``,
    only those payload fields are ever stored."""
    if topic in HANDLERS and HANDLERS[topic] is not handler:
        raise ValueError(f"webhook topic {topic} already has a handler")
    HANDLERS[topic] = handler
    if keep:
        KEPT_FIELDS[topic] = keep
