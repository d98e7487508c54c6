"""GET /health: what a load balancer and an operator need to know about this process."""

from __future__ import annotations

import time

from django.db import connection
from django.http import HttpRequest, JsonResponse
from django_q.brokers import get_broker

from recommender.ranking import live_index


def health(request: HttpRequest) -> JsonResponse:
    checks: dict[str, dict] = {}
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
        checks["database"] = {"ok": True, "vendor": connection.vendor}
    except Exception as error:  # reported, not raised: this endpoint must answer
        checks["database"] = {"ok": False, "error": type(error).__name__}
    try:
        broker = get_broker()
        checks["broker"] = {"ok": bool(broker.ping()), "kind": type(broker).__name__}
    except Exception as error:  # likewise
        checks["broker"] = {"ok": False, "error": type(error).__name__}
    live_index.current()
    status = live_index.status()
    # An index is healthy when a published version is loaded, or when there is nothing to
    # index yet; an empty stand-in while products wait for a build is not.
    checks["index"] = {
        "ok": status["version"] is not None or not live_index.products_waiting(),
        "version": status["version"],
        "size": status["size"],
        "kind": status["kind"],
        "age_seconds": round(time.time() - status["built_at"]) if status["version"] else None,
        "changes_applied_up_to": status["watermark"],
    }
    healthy = checks["database"]["ok"] and checks["broker"]["ok"]
    return JsonResponse({"ok": healthy, "checks": checks}, status=200 if healthy else 503)
