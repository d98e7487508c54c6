"""Store lifecycle services: install, OAuth state, tokens, authenticated Admin API calls."""

from __future__ import annotations

import json
import logging
import re
import secrets
from datetime import datetime, timedelta
from typing import Any, TypedDict

from django.conf import settings
from django.core.cache import cache
from django.db import transaction
from django.utils import timezone
from shopify import ApiAccess

from interlayer.queue import enqueue
from interlayer.text import made_storable
from stores import shopify
from stores.auth import AuthError, require_shop_domain, verify_signed_query
from stores.hooks import (
    customer_data_requested,
    customer_redacted,
    store_details_changed,
    store_installed,
    store_redacted,
    web_pixel_settings,
)
from stores.models import CustomerDataRequest, OAuthState, Store, WebhookDelivery

log = logging.getLogger(__name__)

OAUTH_CALLBACK_PATH = "/auth/callback"


def missing_scopes(granted: str) -> list[str]:
    """Required scopes the grant does not cover (write_x implies read_x)."""
    access = ApiAccess(granted or "")
    return [s for s in settings.SHOPIFY_SCOPES if not access.covers(ApiAccess([s]))]


def install_store(*, shop_domain: str, grant: shopify.TokenGrant) -> Store:
    """Record a working install: the store becomes active with the new token pair.

    The same record is reused across uninstall and reinstall, so its ledger and history
    stay attached to it. Shop details and the catalog sync follow in the background.
    """
    shop_domain = require_shop_domain(shop_domain)
    lacking = missing_scopes(grant.scopes)
    if lacking:
        raise AuthError(
            "Interlayer needs these permissions to work: " + ", ".join(lacking), status=403
        )
    now = timezone.now()
    with transaction.atomic():
        store, _ = Store.objects.select_for_update().get_or_create(shop_domain=shop_domain)
        # A reinstall whose uninstall is still to be processed counts as one too: the
        # uninstall is then older than this install, and ignored (uninstall_store).
        first_activation = store.status != Store.Status.ACTIVE or uninstall_waiting(store)
        _apply_grant(store, grant)
        store.status = Store.Status.ACTIVE
        if first_activation:
            store.installed_at = now
            store.uninstalled_at = None
            store.after_install_due_since = now
        store.save(
            update_fields=[*Store.TOKEN_FIELDS, "status", "installed_at", "uninstalled_at",
                           "after_install_due_since", "updated_at"]
        )  # fmt: skip
        if first_activation:
            transaction.on_commit(lambda: _enqueue_after_install(store.pk))
    log.info("store installed shop=%s", shop_domain)
    return store


def _enqueue_after_install(store_id: int, *, requeued_at: datetime | None = None) -> None:
    args = (store_id,) if requeued_at is None else (store_id, requeued_at.isoformat())
    enqueue("stores.tasks.after_install", *args, task_name=f"after_install:{store_id}")


def _apply_grant(store: Store, grant: shopify.TokenGrant) -> None:
    """The new token pair onto ``store`` (its fields are ``Store.TOKEN_FIELDS``)."""
    store.access_token = grant.access_token
    store.access_token_expires_at = grant.expires_at
    store.refresh_token = grant.refresh_token
    store.refresh_token_expires_at = grant.refresh_token_expires_at
    store.scopes = grant.scopes


def begin_authorization(*, shop_domain: str) -> str:
    """Start the authorization-code grant: a fresh ``state`` nonce and the authorize URL."""
    shop_domain = require_shop_domain(shop_domain)
    nonce = secrets.token_urlsafe(32)
    OAuthState.objects.create(nonce=nonce, shop_domain=shop_domain)
    return shopify.authorization_url(
        shop_domain=shop_domain,
        redirect_uri=settings.SHOPIFY_APP_URL + OAUTH_CALLBACK_PATH,
        state=nonce,
    )


def complete_authorization(*, params: dict[str, str]) -> Store:
    """The OAuth callback: HMAC, shop and one-time state, then the code exchange.

    Nothing is written to the store unless the exchange succeeded and granted the scopes
    we need, so a failure never leaves a half-installed store.
    """
    shop_domain = verify_signed_query(params)
    _consume_state(params.get("state", ""), shop_domain)
    code = params.get("code", "")
    if not code:
        raise AuthError("Missing authorization code.", status=400)
    grant = shopify.exchange_authorization_code(shop_domain=shop_domain, code=code)
    return install_store(shop_domain=shop_domain, grant=grant)


def _consume_state(nonce: str, shop_domain: str) -> None:
    if not nonce:
        raise AuthError("Missing state.", status=400)
    oldest = timezone.now() - timedelta(seconds=settings.SHOPIFY_OAUTH_STATE_TTL)
    # One atomic UPDATE: a replayed or concurrent callback finds nothing left to consume.
    consumed = OAuthState.objects.filter(
        nonce=nonce, shop_domain=shop_domain, consumed_at__isnull=True, created_at__gte=oldest
    ).update(consumed_at=timezone.now())
    if consumed != 1:
        raise AuthError("Invalid or already used state.", status=403)


def exchange_session_token(*, shop_domain: str, id_token: Any) -> Store:
    """Managed install and re-exchange: trade a verified ID token for an offline token."""
    grant = shopify.exchange_id_token(id_token)
    return install_store(shop_domain=shop_domain, grant=grant)


def needs_token_exchange(store: Store | None) -> bool:
    """Whether an embedded load must (re-)exchange its ID token for a new offline token."""
    if store is None or store.status != Store.Status.ACTIVE or not store.access_token:
        return True
    expired = store.refresh_token_expires_at and store.refresh_token_expires_at <= timezone.now()
    return bool(expired) or uninstall_waiting(store)


def uninstall_waiting(store: Store) -> bool:
    """Whether an ``app/uninstalled`` of this install was received and not yet processed.
    Shopify revoked our token with it; a merchant who opens the app meanwhile has installed
    it again (an uninstalled app does not open), so the load exchanges a new token."""
    if store.pk is None or store.installed_at is None:
        return False
    return WebhookDelivery.objects.filter(
        shop_domain=store.shop_domain, topic="app/uninstalled", triggered_at__gte=store.installed_at,
        status__in=[WebhookDelivery.Status.PENDING, WebhookDelivery.Status.PROCESSING,
                    WebhookDelivery.Status.FAILED],
    ).exists()  # fmt: skip


def mark_needs_reauth(store: Store, *, reason: str) -> None:
    """Shopify refuses our credentials: out of the exchange until the merchant opens the
    app (a token exchange). A frozen shop too: it cannot come back without them."""
    _take_out(store, Store.Status.NEEDS_REAUTH, [Store.Status.ACTIVE, Store.Status.FROZEN],
              why=f"needs re-auth: {reason}")  # fmt: skip


def mark_frozen(store: Store, *, reason: str) -> None:
    """Shopify froze or locked the shop: out of the exchange (its products shown nowhere,
    its widget off, no click to or from it billed) until reconciliation finds its Admin API
    answering again (reconcile_installs)."""
    _take_out(store, Store.Status.FROZEN, [Store.Status.ACTIVE], why=f"closed by Shopify: {reason}")


def _take_out(store: Store, status: str, taken_from: list[str], *, why: str) -> None:
    Store.objects.filter(pk=store.pk, status__in=taken_from).update(
        status=status, updated_at=timezone.now()
    )
    store.status = status
    log.warning("store out of the exchange shop=%s reason=%s", store.shop_domain, why)


def access_token_for(store: Store, *, force_refresh: bool = False) -> str:
    """A usable access token, refreshing it first when it is about to expire.

    Refresh tokens rotate on use, so two processes must never refresh at once: the row is
    locked, re-read, and the new pair is saved in the same transaction.
    """
    margin = timedelta(seconds=settings.SHOPIFY_TOKEN_REFRESH_MARGIN)
    if not store.access_token and not store.refresh_token:
        # Gone or unreadable (crypto.EncryptedTextField): only a new install or token
        # exchange helps, so say so without asking Shopify.
        raise shopify.ShopifyAuthError("store has no usable credentials")
    if not force_refresh and store.access_token and not _expiring(store, margin):
        return store.access_token
    with transaction.atomic():
        locked = Store.objects.select_for_update().get(pk=store.pk)
        # A frozen shop's token expires while Shopify keeps it closed; reconciliation needs a
        # fresh one to see it open again.
        refreshable = (Store.Status.ACTIVE, Store.Status.FROZEN)
        if locked.status not in refreshable or not locked.refresh_token:
            raise shopify.ShopifyAuthError("store has no usable credentials")
        token_changed = locked.access_token != store.access_token
        if token_changed or (not force_refresh and not _expiring(locked, margin)):
            # Another process refreshed while we waited for the lock.
            _copy_tokens(locked, store)
            return locked.access_token
        grant = shopify.refresh_access_token(
            shop_domain=locked.shop_domain,
            refresh_token=locked.refresh_token,
        )
        _apply_grant(locked, grant)
        locked.save(update_fields=[*Store.TOKEN_FIELDS, "updated_at"])
    _copy_tokens(locked, store)
    log.info("access token refreshed shop=%s", store.shop_domain)
    return store.access_token


def _expiring(store: Store, margin: timedelta) -> bool:
    expires = store.access_token_expires_at
    return expires is not None and expires <= timezone.now() + margin


def _copy_tokens(source: Store, target: Store) -> None:
    for field in Store.TOKEN_FIELDS:
        setattr(target, field, getattr(source, field))


def admin_graphql(
    store: Store, query: str, variables: dict[str, Any] | None = None
) -> shopify.GraphQLResponse:
    """An Admin GraphQL call for ``store`` with a fresh token.

    A 401 gets one forced refresh and retry (the token may have been revoked early); if
    Shopify still refuses, the store is marked as needing re-auth, which the next embedded
    load repairs with a token exchange.
    """
    try:
        token = access_token_for(store)
        try:
            return shopify.graphql(
                shop_domain=store.shop_domain, access_token=token, query=query, variables=variables
            )
        except shopify.ShopifyAuthError:
            token = access_token_for(store, force_refresh=True)
            return shopify.graphql(
                shop_domain=store.shop_domain, access_token=token, query=query, variables=variables
            )
    except shopify.ShopifyAuthError as error:
        mark_needs_reauth(store, reason=error.detail)
        raise
    except shopify.ShopUnavailable as error:
        mark_frozen(store, reason=error.detail)
        raise


SHOP_DETAILS_QUERY = """
query ShopDetails {
  shop {
    name
    myshopifyDomain
    currencyCode
    ianaTimezone
    primaryDomain { url host }
    plan { publicDisplayName partnerDevelopment }
  }
}
"""


def sync_store_details(store: Store) -> Store:
    """Record the shop's name, primary storefront domain, currency, plan and time zone."""
    # The shop's name is the merchant's text: a NUL or a lone surrogate kept as U+FFFD.
    shop = made_storable(admin_graphql(store, SHOP_DETAILS_QUERY).data.get("shop") or {})
    store.name = (shop.get("name") or "")[:255]
    store.time_zone = (shop.get("ianaTimezone") or "")[:64]
    store.primary_domain = ((shop.get("primaryDomain") or {}).get("url") or "")[:255]
    store.currency = (shop.get("currencyCode") or "")[:3]
    plan = shop.get("plan") or {}
    store.plan_name = (plan.get("publicDisplayName") or "")[:100]
    store.plan_partner_development = bool(plan.get("partnerDevelopment"))
    store.details_synced_at = timezone.now()
    store.save(update_fields=[*Store.DETAIL_FIELDS, "details_synced_at", "updated_at"])
    return store


DETAILS_FRESH_FOR = timedelta(days=1)


def _details_stale(store: Store) -> bool:
    synced = store.details_synced_at
    return synced is None or timezone.now() - synced > DETAILS_FRESH_FOR


def _refresh_details(store: Store) -> None:
    if _read_details(store):
        store_details_changed.send(sender=Store, store=store)


def _read_details(store: Store) -> bool:
    """The shop's details read, or the failure logged (reconciliation reads details missing
    or a day old again)."""
    try:
        sync_store_details(store)
    except shopify.ShopifyError as error:
        log.warning("shop details not read shop=%s detail=%s", store.shop_domain, error.detail)
        return False
    return True


def after_install(store: Store) -> None:
    """What follows a (re)install, or a shop open again: shop details, then the hook that
    starts catalog sync. The details and the web pixel are done on the way; if Shopify
    fails either now, reconciliation does it later (details missing or a day old are read
    again), and the hook is sent all the same: after a reinstall or a freeze its catalog
    read is the only way the changes whose webhooks were turned away come in, and nothing
    else starts it for a store synced before."""
    # The activation's mark as it is now (the caller's copy of the store may be older).
    due = Store.objects.filter(pk=store.pk).values_list("after_install_due_since", flat=True)
    due_since = due.first()
    _read_details(store)
    try:
        ensure_web_pixel(store)
    except shopify.ShopifyError as error:
        log.warning("web pixel not connected shop=%s detail=%s", store.shop_domain, error.detail)
    store_installed.send(sender=Store, store=store)
    # Done: unless the store became active again meanwhile (a newer mark), which is then
    # followed by a task of its own.
    Store.objects.filter(pk=store.pk, after_install_due_since=due_since).update(
        after_install_due_since=None
    )


APP_INSTALLATION_ID = "query AppInstallation { currentAppInstallation { id } }"
APP_METAFIELDS_SET = """
mutation AppMetafieldsSet($metafields: [MetafieldsSetInput!]!) {
  metafieldsSet(metafields: $metafields) { metafields { key value } userErrors { field message } }
}"""
# The namespace of the app's own metafields (app.metafields.interlayer.* in Liquid).
APP_METAFIELD_NAMESPACE = "interlayer"


def set_app_metafields(store: Store, values: dict[str, tuple[str, str]]) -> None:
    """Set the app's own metafields on its installation in ``store`` (key -> (type, value)),
    which its theme app extension reads as ``app.metafields.interlayer.<key>``; they go
    with the app when it is uninstalled. Raises ShopifyError when Shopify refuses.
    https://shopify.dev/docs/apps/build/custom-data/ownership#app-data-metafields"""
    owner = admin_graphql(store, APP_INSTALLATION_ID).data["currentAppInstallation"]["id"]
    metafields = [
        {"ownerId": owner, "namespace": APP_METAFIELD_NAMESPACE, "key": key, "type": kind,
         "value": value}
        for key, (kind, value) in values.items()
    ]  # fmt: skip
    payload = admin_graphql(store, APP_METAFIELDS_SET, {"metafields": metafields}).data
    _raise_for_user_errors("metafields", payload["metafieldsSet"])


def _raise_for_user_errors(what: str, payload: dict[str, Any]) -> None:
    """ShopifyError when a mutation's payload says Shopify refused it (``userErrors``)."""
    errors = payload.get("userErrors") or []
    if errors:
        raise shopify.ShopifyError(
            f"{what} refused: " + "; ".join(str(e.get("message")) for e in errors)[:300]
        )


WEB_PIXEL_QUERY = "query WebPixel { webPixel { id settings } }"
WEB_PIXEL_CREATE = """
mutation WebPixelCreate($webPixel: WebPixelInput!) {
  webPixelCreate(webPixel: $webPixel) { webPixel { id settings } userErrors { code field message } }
}"""
WEB_PIXEL_UPDATE = """
mutation WebPixelUpdate($id: ID!, $webPixel: WebPixelInput!) {
  webPixelUpdate(id: $id, webPixel: $webPixel) {
    webPixel { id settings } userErrors { code field message }
  }
}"""


def ensure_web_pixel(store: Store) -> str:
    """Connect the app's web pixel extension to the store with the settings the apps built
    on stores/ give it (``hooks.register_web_pixel``), or bring its settings up to date.
    Returns "created", "updated", "unchanged" or "no pixel".
    https://shopify.dev/docs/apps/build/marketing-analytics/build-web-pixels#step-5-activate-a-web-pixel-extension
    """
    wanted = web_pixel_settings(store)
    if wanted is None:
        return "no pixel"
    current = _current_web_pixel(store)
    variables: dict[str, Any] = {"webPixel": {"settings": json.dumps(wanted, sort_keys=True)}}
    if current is None:
        payload = admin_graphql(store, WEB_PIXEL_CREATE, variables).data["webPixelCreate"]
        outcome = "created"
    elif _pixel_settings(current.get("settings")) != wanted:
        variables["id"] = current["id"]
        payload = admin_graphql(store, WEB_PIXEL_UPDATE, variables).data["webPixelUpdate"]
        outcome = "updated"
    else:
        return "unchanged"
    _raise_for_user_errors("web pixel", payload)
    log.info("web pixel %s shop=%s", outcome, store.shop_domain)
    return outcome


def _current_web_pixel(store: Store) -> dict[str, Any] | None:
    try:
        return admin_graphql(store, WEB_PIXEL_QUERY).data.get("webPixel")
    except shopify.ShopifyError as error:
        # Shopify answers the query with an error, not null, when the app has no pixel.
        if "no web pixel" in error.detail.lower():
            return None
        raise


def _pixel_settings(value: Any) -> Any:
    """The pixel's settings as Shopify returns them: a JSON object, or a string of one."""
    if isinstance(value, str):
        try:
            return json.loads(value)
        except ValueError:
            return None
    return value


def uninstall_store(*, shop_domain: str, triggered_at: datetime | None) -> str:
    """app/uninstalled: the store goes inactive at once and its tokens are deleted.

    The record, and the ledger attached to it, stay for audit; a reinstall reactivates
    the same record. An uninstall older than the latest install is stale and ignored.
    """
    with transaction.atomic():
        store = Store.objects.select_for_update().filter(shop_domain=shop_domain).first()
        if store is None:
            return "unknown shop"
        if _older_than_install(store, triggered_at):
            return "stale: the store was installed again after this event"
        if store.status in (Store.Status.UNINSTALLED, Store.Status.REDACTED):
            return "already uninstalled"
        store.status = Store.Status.UNINSTALLED
        store.uninstalled_at = triggered_at or timezone.now()
        _clear_tokens(store)
        store.save(update_fields=[*Store.TOKEN_FIELDS, "status", "uninstalled_at", "updated_at"])
    log.info("store uninstalled shop=%s", shop_domain)
    return "uninstalled"


def redact_shop(*, shop_domain: str, triggered_at: datetime | None, keep_delivery_id: int) -> str:
    """shop/redact (48 h after uninstall): purge everything of the shop.

    What partners need to audit the exchange (ledger entries) stays, attached to a store
    record reduced to its domain; the apps built on stores/ delete theirs on
    ``store_redacted``. https://shopify.dev/docs/apps/build/compliance/privacy-law-compliance
    """
    with transaction.atomic():
        store = Store.objects.select_for_update().filter(shop_domain=shop_domain).first()
        if store is not None and store.status == Store.Status.ACTIVE:
            return "stale: the store is installed again"
        if store is not None and _older_than_install(store, triggered_at):
            return "stale: the store was installed again after this event"
        if store is not None and _installed_since_its_uninstall(store, triggered_at):
            return "stale: the store was installed again after the uninstall this is about"
        WebhookDelivery.objects.filter(shop_domain=shop_domain).exclude(
            pk=keep_delivery_id
        ).delete()
        WebhookDelivery.objects.filter(pk=keep_delivery_id).update(payload={})
        OAuthState.objects.filter(shop_domain=shop_domain).delete()
        if store is None:
            return "never installed: nothing stored"
        store_redacted.send(sender=Store, store=store)
        CustomerDataRequest.objects.filter(store=store).delete()
        _clear_tokens(store)
        for field in Store.DETAIL_FIELDS:
            setattr(store, field, Store._meta.get_field(field).get_default())
        store.status = Store.Status.REDACTED
        store.redacted_at = timezone.now()
        store.save(
            update_fields=[*Store.TOKEN_FIELDS, *Store.DETAIL_FIELDS, "status", "redacted_at",
                           "updated_at"]
        )  # fmt: skip
    log.info("store redacted shop=%s", shop_domain)
    return "redacted"


def redact_customer_orders(*, shop_domain: str, order_ids: list[str]) -> str:
    """customers/redact: what links anything kept to the customer's orders is erased by the
    apps built on stores/ (``customer_redacted``), and any data request listing them goes.
    https://shopify.dev/docs/apps/build/compliance/privacy-law-compliance"""
    store = Store.objects.filter(shop_domain=shop_domain).first()
    if store is None:
        return "never installed: nothing stored"
    with transaction.atomic():
        changed = sum(
            count or 0
            for _, count in customer_redacted.send(sender=Store, store=store, order_ids=order_ids)
        )
        requests = [
            pk
            for pk, ids in CustomerDataRequest.objects.filter(store=store).values_list(
                "pk", "order_ids"
            )
            if set(ids) & set(order_ids)
        ]
        CustomerDataRequest.objects.filter(pk__in=requests).delete()
    log.info("customer orders redacted shop=%s records=%d", shop_domain, changed)
    return f"redacted {changed} records of {len(order_ids)} orders"


def answer_customer_data_request(*, shop_domain: str, order_ids: list[str], request_id: str) -> str:
    """customers/data_request: what the apps built on stores/ hold of the customer's orders
    (``customer_data_requested``), kept for the merchant, who passes it on to the customer;
    the settings page lists it for DATA_REQUEST_RETENTION."""
    store = Store.objects.filter(shop_domain=shop_domain).first()
    if store is None:
        return "never installed: nothing stored"
    held: list[dict[str, Any]] = []
    with transaction.atomic():  # a retried delivery finds the request answered, or not at all
        for _, records in customer_data_requested.send(
            sender=Store, store=store, order_ids=order_ids
        ):
            held.extend(records or [])
        CustomerDataRequest.objects.create(
            store=store, request_id=request_id, order_ids=order_ids, held=held
        )
    return f"answered: {len(held)} records of {len(order_ids)} orders held"


def _clear_tokens(store: Store) -> None:
    store.access_token = ""
    store.refresh_token = ""
    store.access_token_expires_at = None
    store.refresh_token_expires_at = None
    store.scopes = ""


def record_granted_scopes(
    *, shop_domain: str, scopes: list[str], triggered_at: datetime | None
) -> str:
    """app/scopes_update: record the access scopes the merchant now grants us.

    A grant that no longer covers what Interlayer needs (the merchant revoked an optional
    scope we later made required, or a scope was removed) takes the store to "needs
    re-auth", as the reconciliation job would, until the merchant approves it again.
    https://shopify.dev/docs/api/webhooks/latest?reference=toml#list-of-topics-app/scopes_update
    """
    granted = ",".join(scope.strip() for scope in scopes if scope.strip())
    with transaction.atomic():
        store = Store.objects.select_for_update().filter(shop_domain=shop_domain).first()
        if store is None:
            return "unknown shop"
        if store.status not in (Store.Status.ACTIVE, Store.Status.NEEDS_REAUTH):
            return f"ignored: the store is {store.status}"
        if _older_than_install(store, triggered_at):
            return "stale: the store was installed again after this event"
        store.scopes = granted[:500]
        store.save(update_fields=["scopes", "updated_at"])
    lacking = missing_scopes(granted)
    if lacking:
        mark_needs_reauth(store, reason="scopes revoked: " + ",".join(lacking))
        return "scopes recorded; missing " + ",".join(lacking)
    return "scopes recorded"


def _older_than_install(store: Store, triggered_at: datetime | None) -> bool:
    return bool(triggered_at and store.installed_at and triggered_at < store.installed_at)


# Shopify sends shop/redact this long after the uninstall it is about.
REDACT_AFTER_UNINSTALL = timedelta(hours=48)


def _installed_since_its_uninstall(store: Store, triggered_at: datetime | None) -> bool:
    """A store we hold as installed (out of the exchange for now, perhaps: a refused token,
    a frozen shop) whose install is later than the uninstall a shop/redact sent at
    ``triggered_at`` is about: installed again since. That uninstall is the last one
    Shopify told us of before it (its delivery is kept 30 days); where none was (its webhook
    lost), the one Shopify's 48 hours point at. A store uninstalled since, or installed
    before that uninstall, is owed the redaction."""
    if store.status in {Store.Status.UNINSTALLED, Store.Status.REDACTED}:
        return False
    if not (triggered_at and store.installed_at):
        return False
    uninstalled = (
        WebhookDelivery.objects.filter(
            shop_domain=store.shop_domain, topic="app/uninstalled", triggered_at__lte=triggered_at
        )
        .order_by("-triggered_at")
        .values_list("triggered_at", flat=True)
        .first()
    ) or triggered_at - REDACT_AFTER_UNINSTALL
    return store.installed_at > uninstalled


# How long records of Shopify's traffic are kept (documented in the README).
WEBHOOK_PAYLOAD_RETENTION = timedelta(days=7)  # then the payload is emptied
WEBHOOK_RETENTION = timedelta(days=30)  # then the delivery row goes (dead ones: 90 days)
DEAD_WEBHOOK_RETENTION = timedelta(days=90)
OAUTH_STATE_RETENTION = timedelta(days=1)
# An answered customer data request: long enough for the merchant to pass it on (Shopify
# gives the merchant 30 days to answer the customer).
DATA_REQUEST_RETENTION = timedelta(days=60)


def prune_records(*, now: datetime | None = None) -> dict[str, int]:
    """Drop what has served its purpose: old webhook payloads and deliveries (long after
    Shopify's retries end), OAuth states (long after their 10 minutes) and answered
    customer data requests (DATA_REQUEST_RETENTION)."""
    now = now or timezone.now()
    finished = [WebhookDelivery.Status.DONE, WebhookDelivery.Status.IGNORED]
    emptied = (
        WebhookDelivery.objects.filter(
            status__in=finished, received_at__lt=now - WEBHOOK_PAYLOAD_RETENTION
        )
        .exclude(payload={})
        .update(payload={})
    )
    deleted, _ = WebhookDelivery.objects.filter(
        status__in=finished, received_at__lt=now - WEBHOOK_RETENTION
    ).delete()
    dead, _ = WebhookDelivery.objects.filter(
        status=WebhookDelivery.Status.DEAD, received_at__lt=now - DEAD_WEBHOOK_RETENTION
    ).delete()
    states, _ = OAuthState.objects.filter(created_at__lt=now - OAUTH_STATE_RETENTION).delete()
    requests, _ = CustomerDataRequest.objects.filter(
        created_at__lt=now - DATA_REQUEST_RETENTION
    ).delete()
    return {"payloads_emptied": emptied, "deliveries_deleted": deleted + dead,
            "oauth_states_deleted": states, "data_requests_deleted": requests}  # fmt: skip


INSTALLATION_QUERY = "query Installation { currentAppInstallation { accessScopes { handle } } }"


def reconcile_installs(*, limit: int = 500) -> int:
    """Ask Shopify whether each active store still has us installed with our scopes, and
    whether each store Shopify froze or locked is open again.

    A store whose credentials Shopify refuses becomes "needs re-auth" (admin_graphql does
    that), which takes its products out of the exchange until the merchant opens the app;
    one Shopify froze or locked becomes "frozen" the same way, and is active again (its
    catalog read again: its webhooks may not have come meanwhile) once Shopify answers.
    A store's details are read again once a day: a shop that starts paying Shopify after a
    trial gets the starter grant then (store_details_changed).
    """
    _requeue_lost_after_installs()
    checked = 0
    statuses = [Store.Status.ACTIVE, Store.Status.FROZEN]
    for store in Store.objects.filter(status__in=statuses).order_by("updated_at")[:limit]:
        try:
            checked += _reconcile_install(store)
        except Exception:
            # One store's surprise must not stop the others' (nor the work reconciliation
            # does after this): logged, and to the back of the queue.
            log.exception("reconcile failed shop=%s", store.shop_domain)
            Store.objects.filter(pk=store.pk).update(updated_at=timezone.now())
    return checked


# What follows an activation waits this long in the queue before it is taken for lost:
# longer than a task may run (Q_TIMEOUT, 30 minutes), as one may wait behind a long sync.
AFTER_INSTALL_LOST_AFTER = timedelta(minutes=45)


def _requeue_lost_after_installs() -> None:
    """Active stores whose after_install never finished (the broker was down as it was
    queued, or a worker was killed running it: Redis hands a task over without waiting
    for it to end) have it queued again, once per AFTER_INSTALL_LOST_AFTER."""
    now = timezone.now()
    lost = Store.objects.filter(
        status=Store.Status.ACTIVE, after_install_due_since__lte=now - AFTER_INSTALL_LOST_AFTER
    )
    for store in lost:
        if Store.objects.filter(
            pk=store.pk, after_install_due_since=store.after_install_due_since
        ).update(after_install_due_since=now):
            log.warning("after_install queued again shop=%s", store.shop_domain)
            _enqueue_after_install(store.pk, requeued_at=now)


def _reconcile_install(store: Store) -> int:
    try:
        data = admin_graphql(store, INSTALLATION_QUERY).data
    except (shopify.ShopifyAuthError, shopify.ShopUnavailable):
        # Looked at: to the back of the queue (a shop frozen for weeks must not take a
        # place at the front of every run).
        Store.objects.filter(pk=store.pk).update(updated_at=timezone.now())
        return 1
    except shopify.ShopifyError as error:
        log.warning("reconcile skipped shop=%s detail=%s", store.shop_domain, error.detail)
        return 0
    if store.status == Store.Status.FROZEN:
        now = timezone.now()
        reopened = Store.objects.filter(pk=store.pk, status=Store.Status.FROZEN).update(
            status=Store.Status.ACTIVE, after_install_due_since=now, updated_at=now
        )
        if reopened:
            store.status = Store.Status.ACTIVE
            log.info("store open again shop=%s", store.shop_domain)
            _enqueue_after_install(store.pk)  # its details and catalog read afresh
            return 1
    elif _details_stale(store):
        _refresh_details(store)
    scopes = ",".join(s["handle"] for s in data["currentAppInstallation"]["accessScopes"])
    if missing_scopes(scopes):
        mark_needs_reauth(store, reason="scopes revoked: " + ",".join(missing_scopes(scopes)))
        return 1
    try:  # a pixel the merchant disconnected, or one that failed on install
        ensure_web_pixel(store)
    except shopify.ShopifyError as error:
        log.warning("web pixel check failed shop=%s detail=%s", store.shop_domain, error.detail)
    return 1


# The theme app extension's blocks, named as Shopify names them: by their file under
# extensions/interlayer-widget/blocks/ (app-embed.liquid, recommendations.liquid).
APP_EMBED_HANDLE = "app-embed"
APP_BLOCK_HANDLE = "recommendations"
SETTINGS_DATA_FILE = "config/settings_data.json"
PRODUCT_TEMPLATE_FILE = "templates/product.json"

THEME_STATE_QUERY = f"""
query ThemeState {{
  themes(first: 1, roles: [MAIN]) {{
    nodes {{
      id
      name
      files(filenames: ["{SETTINGS_DATA_FILE}", "{PRODUCT_TEMPLATE_FILE}"]) {{
        nodes {{ filename body {{ ... on OnlineStoreThemeFileBodyText {{ content }} }} }}
      }}
    }}
  }}
}}"""
# Shopify writes theme JSON files with a leading /* auto-generated */ comment.
_LEADING_COMMENT = re.compile(r"^\s*/\*.*?\*/", re.DOTALL)


class ThemeState(TypedDict):
    """What the merchant's live theme does with Interlayer. ``None`` means "could not be
    read" (Shopify unreachable, a file that is not JSON), never "no"."""

    theme: str | None
    embed_enabled: bool | None
    block_added: bool | None
    # False when the live theme's product template is not JSON (a vintage theme): app
    # blocks cannot be added there, only the app embed shows the widget.
    blocks_supported: bool | None
    activate_url: str
    add_block_url: str


def theme_editor_links(shop_domain: str) -> tuple[str, str]:
    """The theme editor deep links that switch the app embed on and add the app block to
    the product template's main section.
    https://shopify.dev/docs/apps/build/online-store/theme-app-extensions/configuration#deep-linking"""
    editor = f"https://{shop_domain}/admin/themes/current/editor"
    app = settings.SHOPIFY_API_KEY
    return (
        f"{editor}?context=apps&activateAppId={app}/{APP_EMBED_HANDLE}",
        f"{editor}?template=product&addAppBlockId={app}/{APP_BLOCK_HANDLE}&target=mainSection",
    )


FAILED_THEME_READ_TTL_SECONDS = 15


def theme_state(store: Store, *, fresh: bool = False) -> ThemeState:
    """The live theme's Interlayer state, read through GraphQL at most once per
    SHOPIFY_THEME_STATE_TTL_SECONDS per store (``fresh`` reads it again): the settings
    page asks for it from two places on every load."""
    key = f"interlayer:theme-state:{store.pk}:{store.shop_domain}"
    ttl = settings.SHOPIFY_THEME_STATE_TTL_SECONDS
    if not fresh and ttl > 0:
        cached = cache.get(key)
        if cached is not None:
            return cached
    state = _read_theme_state(store)
    if ttl > 0:
        # A read that failed (Shopify down or throttling) is kept for less: the page's
        # looks every few seconds while a catalog syncs must not each ask Shopify again,
        # and "Check again" (fresh) still asks at once.
        failed = state["theme"] is None
        cache.set(key, state, min(ttl, FAILED_THEME_READ_TTL_SECONDS) if failed else ttl)
    return state


def _read_theme_state(store: Store) -> ThemeState:
    """https://shopify.dev/docs/apps/build/online-store/theme-app-extensions/configuration#detecting-app-blocks-and-app-embed-blocks"""
    activate_url, add_block_url = theme_editor_links(store.shop_domain)
    state: ThemeState = {
        "theme": None, "embed_enabled": None, "block_added": None, "blocks_supported": None,
        "activate_url": activate_url, "add_block_url": add_block_url,
    }  # fmt: skip
    try:
        data = admin_graphql(store, THEME_STATE_QUERY).data
    except shopify.ShopifyError as error:
        log.warning("theme not read shop=%s detail=%s", store.shop_domain, error.detail)
        return state
    themes = (data.get("themes") or {}).get("nodes") or []
    if not themes:
        return state
    files = {
        node.get("filename"): (node.get("body") or {}).get("content")
        for node in (themes[0].get("files") or {}).get("nodes") or []
    }
    state["theme"] = themes[0].get("name") or ""
    settings_data = _theme_json(files.get(SETTINGS_DATA_FILE))
    if settings_data is not None:
        current = settings_data.get("current")
        if isinstance(current, str):  # older themes name a preset instead
            current = (settings_data.get("presets") or {}).get(current)
        blocks = current.get("blocks") if isinstance(current, dict) else None
        state["embed_enabled"] = _has_our_block(blocks, APP_EMBED_HANDLE)
    state["blocks_supported"] = PRODUCT_TEMPLATE_FILE in files
    if PRODUCT_TEMPLATE_FILE not in files:
        state["block_added"] = False
        return state
    template = _theme_json(files[PRODUCT_TEMPLATE_FILE])
    if template is not None:
        sections = template.get("sections")
        state["block_added"] = any(
            isinstance(section, dict)
            and not section.get("disabled", False)
            and _has_our_block(section.get("blocks"), APP_BLOCK_HANDLE)
            for section in (sections.values() if isinstance(sections, dict) else [])
        )
    return state


def _theme_json(content: Any) -> dict[str, Any] | None:
    if not isinstance(content, str):
        return None
    try:
        parsed = json.loads(_LEADING_COMMENT.sub("", content) or "{}")
    except ValueError:
        return None
    return parsed if isinstance(parsed, dict) else None


def _has_our_block(blocks: Any, handle: str) -> bool:
    """Whether ``blocks`` holds an enabled block of ours: Shopify types an app's blocks
    ``shopify://apps/<app handle>/blocks/<block handle>/<extension uuid>``."""
    ours = f"shopify://apps/{settings.SHOPIFY_APP_HANDLE}/blocks/{handle}/"
    return any(
        isinstance(block, dict)
        and str(block.get("type", "")).startswith(ours)
        and not block.get("disabled", False)
        for block in (blocks.values() if isinstance(blocks, dict) else [])
    )


def app_embed_status(store: Store) -> dict[str, Any]:
    """Whether the Interlayer app embed is switched on in the live theme, whether the app
    block is on its product template (either shows the widget), and the theme editor link
    that switches the embed on (from the cached theme state)."""
    state = theme_state(store)
    return {
        "enabled": state["embed_enabled"],
        "block_added": state["block_added"],
        "theme": state["theme"],
        "activate_url": state["activate_url"],
    }
