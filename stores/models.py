from __future__ import annotations

import functools
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from django.db import models
from django.utils import timezone

from stores.crypto import EncryptedTextField


class Store(models.Model):
    """One Shopify shop that installed Interlayer (kept across uninstall and reinstall)."""

    class Status(models.TextChoices):
        INSTALLING = "installing", "Installing"
        ACTIVE = "active", "Active"
        NEEDS_REAUTH = "needs_reauth", "Needs re-authorisation"
        # Shopify froze the shop (unpaid bills) or locked it: out of the exchange until its
        # Admin API answers again (reconciliation looks).
        FROZEN = "frozen", "Frozen or locked by Shopify"
        UNINSTALLED = "uninstalled", "Uninstalled"
        # After shop/redact: only the domain is left, for partners' ledger audit.
        REDACTED = "redacted", "Redacted"

    shop_domain = models.CharField(max_length=255, unique=True)
    status = models.CharField(max_length=20, choices=Status.choices, default=Status.INSTALLING)

    name = models.CharField(max_length=255, blank=True)
    primary_domain = models.CharField(max_length=255, blank=True)
    currency = models.CharField(max_length=3, blank=True)
    plan_name = models.CharField(max_length=100, blank=True)  # ShopPlan.publicDisplayName
    plan_partner_development = models.BooleanField(default=False)
    # The shop's IANA time zone (Shop.ianaTimezone): the days its figures are counted in.
    time_zone = models.CharField(max_length=64, blank=True, default="", db_default="")

    # Expiring offline token pair (access 1 h, refresh 90 days), encrypted at rest.
    access_token = EncryptedTextField(blank=True)
    access_token_expires_at = models.DateTimeField(null=True, blank=True)
    refresh_token = EncryptedTextField(blank=True)
    refresh_token_expires_at = models.DateTimeField(null=True, blank=True)
    scopes = models.CharField(max_length=500, blank=True)

    installed_at = models.DateTimeField(null=True, blank=True)
    uninstalled_at = models.DateTimeField(null=True, blank=True)
    redacted_at = models.DateTimeField(null=True, blank=True)
    details_synced_at = models.DateTimeField(null=True, blank=True)
    # Set as the store becomes active (installed, reinstalled, open again), in the same
    # transaction; cleared once what follows an activation ran (services.after_install).
    # While set, reconciliation queues that task again (a worker killed with it lost it).
    after_install_due_since = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(default=timezone.now)
    updated_at = models.DateTimeField(auto_now=True)

    # The one list of each group of fields that change together.
    TOKEN_FIELDS = (
        "access_token",
        "access_token_expires_at",
        "refresh_token",
        "refresh_token_expires_at",
        "scopes",
    )
    DETAIL_FIELDS = (
        "name", "primary_domain", "currency", "plan_name", "plan_partner_development", "time_zone"
    )  # fmt: skip

    class Meta:
        ordering = ["shop_domain"]

    def __str__(self) -> str:
        return self.shop_domain

    @property
    def storefront_url(self) -> str:
        """The store's storefront: its primary domain's URL as Shopify gives it
        (``primaryDomain.url``, scheme included), else its myshopify domain."""
        if self.primary_domain.startswith(("https://", "http://")):
            return self.primary_domain
        return f"https://{self.shop_domain}"

    @property
    def zone(self) -> ZoneInfo:
        """The shop's time zone; UTC until Shopify has said (or for a name it no longer
        knows)."""
        return _zone(self.time_zone)

    @property
    def is_active(self) -> bool:
        return self.status == self.Status.ACTIVE

    @property
    def shop_name(self) -> str:
        """The shop's handle, as the shopifyapp package addresses shops."""
        return self.shop_domain.removesuffix(".myshopify.com")


class OAuthState(models.Model):
    """A one-time nonce for the authorization-code grant (guards against CSRF and replay)."""

    nonce = models.CharField(max_length=64, unique=True)
    shop_domain = models.CharField(max_length=255)
    created_at = models.DateTimeField(default=timezone.now)
    consumed_at = models.DateTimeField(null=True, blank=True)

    def __str__(self) -> str:
        return f"{self.shop_domain}:{self.nonce[:8]}"


class CustomerDataRequest(models.Model):
    """Shopify's customers/data_request for a store: the orders it names and what the
    apps built on stores/ hold of them (``hooks.customer_data_requested``), for the
    merchant to pass on to the customer. Nothing of the customer but the order ids."""

    store = models.ForeignKey(Store, on_delete=models.CASCADE, related_name="data_requests")
    request_id = models.CharField(max_length=64, blank=True)  # Shopify's data_request.id
    order_ids = models.JSONField(default=list)  # Shopify's order ids, as strings
    held = models.JSONField(default=list)  # one record per order we hold something of
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["-created_at"]

    def __str__(self) -> str:
        return f"{self.store_id} {self.request_id}"


class WebhookDelivery(models.Model):
    """One webhook event as Shopify delivered it; the unique event id makes redelivery a no-op."""

    class Status(models.TextChoices):
        PENDING = "pending", "Pending"
        PROCESSING = "processing", "Processing"
        DONE = "done", "Done"
        IGNORED = "ignored", "Ignored"
        FAILED = "failed", "Failed (will retry)"
        DEAD = "dead", "Failed (gave up)"

    event_id = models.CharField(max_length=255, unique=True)
    webhook_id = models.CharField(max_length=255, blank=True)
    topic = models.CharField(max_length=100)
    shop_domain = models.CharField(max_length=255, db_index=True)
    api_version = models.CharField(max_length=20, blank=True)
    triggered_at = models.DateTimeField(null=True, blank=True)
    received_at = models.DateTimeField(default=timezone.now)
    payload = models.JSONField(default=dict)
    status = models.CharField(max_length=20, choices=Status.choices, default=Status.PENDING)
    attempts = models.PositiveIntegerField(default=0)
    last_error = models.TextField(blank=True)
    next_attempt_at = models.DateTimeField(null=True, blank=True)
    # While PROCESSING: until when the worker that claimed it owns it. A worker that dies
    # leaves the lease to run out, and reconciliation hands the delivery to another.
    lease_expires_at = models.DateTimeField(null=True, blank=True)
    processed_at = models.DateTimeField(null=True, blank=True)
    outcome = models.CharField(max_length=255, blank=True)

    class Meta:
        indexes = [models.Index(fields=["status", "next_attempt_at"])]
        ordering = ["received_at"]

    def __str__(self) -> str:
        return f"{self.topic} {self.shop_domain} {self.event_id}"


@functools.lru_cache(maxsize=512)
def _zone(name: str) -> ZoneInfo:
    try:
        return ZoneInfo(name) if name else ZoneInfo("UTC")
    except (ZoneInfoNotFoundError, ValueError):
        return ZoneInfo("UTC")
