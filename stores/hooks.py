"""What stores/ offers the apps built on top of it.

stores/ installs the app, keeps its tokens and takes Shopify's webhooks; it knows nothing
of what is built on it. Those apps attach here in their ``AppConfig.ready()``: signals for
the moments of a store's life, and a registry for the one page stores/ must hand over.
"""

from __future__ import annotations

from collections.abc import Callable

from django.dispatch import Signal
from django.http import HttpRequest, HttpResponse

# Sent with ``store=`` once a store is (re)installed and its details are recorded; the
# catalog sync starts from here.
store_installed = Signal()
# Sent with ``store=`` when reconciliation read an active store's details again (its plan
# may have changed: a trial that became a paying plan).
store_details_changed = Signal()
# Sent with ``store=`` inside the shop/redact transaction: receivers delete what they keep
# of the shop. A receiver that raises rolls the redaction back, and the delivery is retried.
store_redacted = Signal()
# Sent by the reconciliation job (every few minutes); each receiver repairs what it owns
# and returns a short summary for the log.
reconciliation_due = Signal()
# Shopify's customer requests (customers/redact, customers/data_request), sent with
# ``store=`` and ``order_ids=`` (Shopify's order ids, as strings), inside a transaction.
# On customer_redacted receivers erase what links what they keep to those orders and
# return how many records they changed; on customer_data_requested they return a list of
# what they hold of them (JSON-ready dicts, each with its "order_id").
customer_redacted = Signal()
customer_data_requested = Signal()

HomePage = Callable[[HttpRequest, object], HttpResponse]
_home_page: list[HomePage] = []


def register_home_page(view: HomePage) -> None:
    """The page a verified embedded load renders: ``view(request, store)``."""
    _home_page[:] = [view]


def home_page() -> HomePage:
    if not _home_page:
        raise LookupError("no app registered the embedded home page")
    return _home_page[0]


# The settings of the app's web pixel for a store (the fields its shopify.extension.toml
# declares), or None: stores/ creates the pixel with them on install and keeps it so.
WebPixelSettings = Callable[[object], "dict[str, str] | None"]
_web_pixel_settings: list[WebPixelSettings] = []


def register_web_pixel(settings_for: WebPixelSettings) -> None:
    """``settings_for(store)``: what ``webPixelCreate`` gives the store's web pixel."""
    _web_pixel_settings[:] = [settings_for]


def web_pixel_settings(store: object) -> dict[str, str] | None:
    return _web_pixel_settings[0](store) if _web_pixel_settings else None
