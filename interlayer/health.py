"""GET /health: what a load balancer and an operator need to know about this process.

Everyone gets up or down (200 or 503): down when this process cannot reach its database,
which every page needs. A broker that is down is reported, not a reason to be taken out of
service: widgets, clicks and the settings page do not use it, and a webhook that cannot
be queued is answered 503 for Shopify to send again. The details (database vendor, broker
kind, index version and size) are for operators: a request from this machine itself
(loopback, not forwarded by a proxy; development only) or one with
``Authorization: Bearer $INTERLAYER_HEALTH_TOKEN``.

Answered ahead of every other middleware (``HealthMiddleware``): probes name a machine by
its address (``Host: 10.0.0.5``), which ALLOWED_HOSTS refuses for every other page, and
over plain HTTP inside the network, which production redirects everywhere else."""

from __future__ import annotations

import hmac
import time
from collections.abc import Callable

from django.conf import settings
from django.db import connection
from django.http import HttpRequest, HttpResponse, JsonResponse
from django_q.brokers import get_broker

from recommender.ranking import live_index


class HealthMiddleware:
    """/health before anything reads the request's host or scheme."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]):
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        if request.path_info == "/health" and request.method in {"GET", "HEAD"}:
            response = health(request)
            response["X-Content-Type-Options"] = "nosniff"
            response["Cache-Control"] = "no-store"
            return response
        return self.get_response(request)


def health(request: HttpRequest) -> JsonResponse:
    checks: dict[str, dict] = {}
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
        checks["database"] = {"ok": True, "vendor": connection.vendor}
    except Exception as error:  # reported, not raised: this endpoint must answer
        checks["database"] = {"ok": False, "error": type(error).__name__}
    healthy = checks["database"]["ok"]
    if not _is_operator(request):
        # A probe is told up or down, which the broker and the index do not decide: not
        # looked at, so a broker that hangs rather than refuses cannot hold a probe (and a
        # web process) past its timeout.
        return JsonResponse({"ok": healthy}, status=200 if healthy else 503)
    try:
        broker = get_broker()
        checks["broker"] = {"ok": bool(broker.ping()), "kind": type(broker).__name__}
    except Exception as error:  # likewise
        checks["broker"] = {"ok": False, "error": type(error).__name__}
    try:
        checks["index"] = _index_check()
    except Exception as error:  # likewise: loading it reads the database
        checks["index"] = {"ok": False, "error": type(error).__name__}
    return JsonResponse({"ok": healthy, "checks": checks}, status=200 if healthy else 503)


def _index_check() -> dict:
    live_index.current()
    status = live_index.status()
    # An index is healthy when a published version is loaded, or when there is nothing to
    # index yet; an empty stand-in while products wait for a build is not.
    return {
        "ok": status["version"] is not None or not live_index.products_waiting(),
        "version": status["version"],
        "size": status["size"],
        "kind": status["kind"],
        "age_seconds": round(time.time() - status["built_at"]) if status["version"] else None,
        "changes_applied_up_to": status["watermark"],
    }


def _is_operator(request: HttpRequest) -> bool:
    token = settings.INTERLAYER_HEALTH_TOKEN
    offered = request.headers.get("Authorization", "").removeprefix("Bearer ").strip()
    if token and offered and hmac.compare_digest(offered.encode(), token.encode()):
        return True
    if settings.PRODUCTION:
        # A proxy on the same host makes every request look local: production needs the token.
        return False
    local = request.META.get("REMOTE_ADDR", "") in {"127.0.0.1", "::1"}
    return local and "X-Forwarded-For" not in request.headers
