"""Structured logs: every line says which shop it is about.

``bind_shop`` sets the shop for the current request or task (a context variable, so
threads and async code keep theirs apart); ``ShopFilter`` puts it on every record, and
``JsonFormatter`` writes one JSON object per line when LOG_FORMAT=json. ``ReportFilter``
keeps passwords out of error reports.
"""

from __future__ import annotations

import contextvars
import json
import logging
import re
from typing import Any

from django.views.debug import SafeExceptionReporterFilter

_shop: contextvars.ContextVar[str] = contextvars.ContextVar("shop", default="-")


def bind_shop(shop_domain: str | None) -> None:
    _shop.set(shop_domain or "-")


class ShopFilter(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        record.shop = _shop.get()
        return True


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        entry = {
            "time": self.formatTime(record, "%Y-%m-%dT%H:%M:%S%z"),
            "level": record.levelname,
            "logger": record.name,
            "shop": getattr(record, "shop", "-"),
            "message": record.getMessage(),
        }
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        return json.dumps(entry)


class RequestShopMiddleware:
    """Each request starts with no shop bound; auth binds it once the shop is verified."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        bind_shop(None)
        return self.get_response(request)


# A password inside a URL ("redis://:password@host", "postgres://user:password@host").
_URL_PASSWORD = re.compile(r"(://[^:/@\s]*:)[^@/\s]+@")


class ReportFilter(SafeExceptionReporterFilter):
    """Django's filter for error reports (the debug page's settings and frames), which hides
    settings named like a secret, also hiding a password written into any URL: REDIS_URL,
    and Q_CLUSTER's broker that repeats it, are named like no secret."""

    def cleanse_setting(self, key: Any, value: Any) -> Any:
        value = super().cleanse_setting(key, value)
        if isinstance(value, str):
            return _URL_PASSWORD.sub(rf"\g<1>{self.cleansed_substitute}@", value)
        return value
