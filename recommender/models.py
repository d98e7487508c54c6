from __future__ import annotations

from django.db import models
from django.utils import timezone

from stores.models import Store


class Product(models.Model):
    """One product of a participating store, as read from the Admin API, with its vector."""

    store = models.ForeignKey(Store, on_delete=models.CASCADE, related_name="products")
    shopify_id = models.BigIntegerField()
    handle = models.CharField(max_length=255)
    title = models.CharField(max_length=500)
    description = models.TextField(blank=True)
    vendor = models.CharField(max_length=255, blank=True)
    product_type = models.CharField(max_length=255, blank=True)
    tags = models.JSONField(default=list)
    category_id = models.CharField(max_length=100, blank=True)
    category_name = models.CharField(max_length=255, blank=True)
    category_full_name = models.CharField(max_length=500, blank=True)
    status = models.CharField(max_length=20)
    published = models.BooleanField(default=False)
    available = models.BooleanField(default=False)
    is_gift_card = models.BooleanField(default=False)
    price_min = models.DecimalField(max_digits=12, decimal_places=2, default=0)
    price_max = models.DecimalField(max_digits=12, decimal_places=2, default=0)
    currency = models.CharField(max_length=3, blank=True)
    image_url = models.URLField(max_length=1000, blank=True)
    url = models.URLField(max_length=1000, blank=True)
    shopify_updated_at = models.DateTimeField(null=True, blank=True)

    # Kept but never recommended when False; the reason is shown to the merchant.
    eligible = models.BooleanField(default=False)
    ineligible_reason = models.CharField(max_length=50, blank=True)
    # The merchant took this product out of the network.
    opted_out = models.BooleanField(default=False)

    # sha256 of the embedding text (and model); the vector is current when they match.
    content_hash = models.CharField(max_length=64)
    embedded_hash = models.CharField(max_length=64, blank=True)
    vector = models.BinaryField(null=True, blank=True)  # float32, L2-normalised
    embedded_at = models.DateTimeField(null=True, blank=True)

    sync_generation = models.PositiveIntegerField(default=0)
    created_at = models.DateTimeField(default=timezone.now)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["store", "shopify_id"], name="unique_product_per_store")
        ]
        indexes = [
            models.Index(fields=["store", "eligible"]),
            models.Index(fields=["updated_at"]),
        ]

    def __str__(self) -> str:
        return f"{self.title} ({self.store_id})"

    @property
    def needs_embedding(self) -> bool:
        return self.eligible and self.embedded_hash != self.content_hash


class CatalogSync(models.Model):
    """Per-store sync state: what the settings page and operators see."""

    class State(models.TextChoices):
        IDLE = "idle", "Not synced yet"
        QUEUED = "queued", "Queued"
        RUNNING = "running", "Syncing"
        DONE = "done", "Synced"
        FAILED = "failed", "Failed"

    store = models.OneToOneField(Store, on_delete=models.CASCADE, related_name="catalog_sync")
    state = models.CharField(max_length=20, choices=State.choices, default=State.IDLE)
    mode = models.CharField(max_length=20, blank=True)  # "pages" or "bulk"
    generation = models.PositiveIntegerField(default=0)
    cursor = models.CharField(max_length=500, blank=True)  # resume point of a page sync
    bulk_operation_id = models.CharField(max_length=255, blank=True)
    products_seen = models.PositiveIntegerField(default=0)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    last_error = models.TextField(blank=True)
    last_error_at = models.DateTimeField(null=True, blank=True)
    embed_queued = models.BooleanField(default=False)
    embeddings_total = models.PositiveBigIntegerField(default=0)
    updated_at = models.DateTimeField(auto_now=True)

    def __str__(self) -> str:
        return f"{self.store_id}: {self.state}"
