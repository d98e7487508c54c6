from __future__ import annotations

from django.db import models
from django.db.models.functions import Now
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

    # In the exchange: eligible as the sync judged it (active, published, in stock) and not
    # kept off by its merchant. The one definition every reader filters by.
    OFFERED = models.Q(eligible=True, opted_out=False)

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
    last_error = models.TextField(blank=True)  # for operators: what Shopify or the read said
    last_error_at = models.DateTimeField(null=True, blank=True)
    # For the merchant: what kind of failure it was (catalog.sync.FAILURES says it in words).
    failure = models.CharField(max_length=20, blank=True)
    embed_queued = models.BooleanField(default=False)
    embeddings_total = models.PositiveBigIntegerField(default=0)
    updated_at = models.DateTimeField(auto_now=True)

    def __str__(self) -> str:
        return f"{self.store_id}: {self.state}"


class IndexEvent(models.Model):
    """Append-only log of vector changes; every web process applies new ones to its index,
    so a change is searchable everywhere within seconds without a rebuild."""

    class Kind(models.TextChoices):
        UPSERT = "upsert", "Upsert"
        REMOVE = "remove", "Remove"

    product_id = models.BigIntegerField()  # Product.pk (the product may be gone)
    store_id = models.BigIntegerField()
    kind = models.CharField(max_length=10, choices=Kind.choices)
    # The database's clock, as the processes polling events judge their age by it too: one
    # machine's clock behind or ahead must not make a fresh event look settled.
    created_at = models.DateTimeField(db_default=Now())

    def __str__(self) -> str:
        return f"{self.kind} {self.product_id}"


class WidgetSettings(models.Model):
    """The merchant's controls for the storefront widget and the exchange. Where the widget
    appears is chosen in the theme editor (the app embed's and app block's settings)."""

    store = models.OneToOneField(Store, on_delete=models.CASCADE, related_name="widget_settings")
    enabled = models.BooleanField(default=True)
    # "" (the default): the theme's heading in the shopper's language ("You may also like",
    # "Vous aimerez peut-être aussi"); else the merchant's own, in every language.
    title = models.CharField(max_length=80, default="", blank=True)
    items = models.PositiveSmallIntegerField(default=4)
    own_share = models.PositiveSmallIntegerField(default=25)  # percent of the widget
    accent_color = models.CharField(max_length=7, default="#1a1a1a")
    text_color = models.CharField(max_length=7, default="#1a1a1a")
    background_color = models.CharField(max_length=7, default="#ffffff")
    avoid_competitors = models.BooleanField(default=True)
    blocked_stores = models.ManyToManyField(Store, blank=True, related_name="blocked_by")
    excluded_categories = models.JSONField(default=list, blank=True)  # taxonomy ids
    # What the store's theme was last told of ``enabled`` (the app-data metafield its
    # blocks read), or None before it was told anything: reconciliation tells it again
    # where the two differ (controls.publish_widget_switch).
    enabled_in_theme = models.BooleanField(null=True, blank=True)
    updated_at = models.DateTimeField(auto_now=True)

    # The fields the settings page edits (blocked stores aside: a relation).
    MERCHANT_FIELDS = (
        "enabled", "title", "items", "own_share", "accent_color", "text_color",
        "background_color", "avoid_competitors", "excluded_categories",
    )  # fmt: skip

    def __str__(self) -> str:
        return f"widget settings of {self.store_id}"

    def own_slots(self, items: int | None = None) -> int:
        """How many of ``items`` slots (the widget's own count by default) show the host's
        products; the rest are partner slots. The share, halves rounded up; but a share
        below 100 % always leaves a partner slot, and one above 0 % gives an own slot where
        there are two or more."""
        items = self.items if items is None else items
        if self.own_share >= 100:
            return items
        if self.own_share <= 0 or items < 2:
            return 0
        wanted = (items * self.own_share * 2 + 100) // 200
        return min(max(wanted, 1), items - 1)


class LedgerEntry(models.Model):
    """One credit movement. Append-only: balances are sums, never stored.

    A click from a store under review is written as a HELD earning (not in the balance,
    nobody charged) and later resolved by an operator: RELEASE pays it (with the partner's
    SPEND written then), VOID drops it."""

    class Kind(models.TextChoices):
        GRANT = "grant", "Starter grant"
        EARN = "earn", "Earned (click sent)"
        SPEND = "spend", "Spent (click received)"
        HELD = "held", "Earned, held for review"
        RELEASE = "release", "Held earning released"
        VOID = "void", "Held earning voided"
        # Given by an operator (manage.py grant_credits), with the reason in ``note``: for a
        # development store under App Store review, say, which gets no starter grant.
        OPERATOR = "operator", "Credits from the Interlayer team"

    store = models.ForeignKey(Store, on_delete=models.PROTECT, related_name="ledger")
    kind = models.CharField(max_length=10, choices=Kind.choices)
    amount = models.DecimalField(max_digits=12, decimal_places=2)
    counterparty = models.ForeignKey(
        Store, on_delete=models.PROTECT, null=True, blank=True, related_name="+"
    )
    click = models.ForeignKey("Click", on_delete=models.PROTECT, null=True, blank=True)
    # RELEASE and VOID entries point at the HELD entry they resolve.
    resolves = models.ForeignKey(
        "self", on_delete=models.PROTECT, null=True, blank=True, related_name="resolutions"
    )
    note = models.CharField(max_length=200, blank=True, default="", db_default="")
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["store"], condition=models.Q(kind="grant"), name="one_starter_grant"
            ),
            models.UniqueConstraint(
                fields=["resolves"],
                condition=models.Q(kind__in=["release", "void"]),
                name="one_resolution_per_held_entry",
            ),
        ]
        indexes = [models.Index(fields=["store", "created_at"])]

    def __str__(self) -> str:
        return f"{self.store_id} {self.kind} {self.amount}"


# A click's reason from the moment it is recorded (before the redirect) until the settler
# has applied the rules to it (exchange.clicks.settle_clicks).
CLICK_PENDING = "pending"
# ... and of a click held for review that an operator voided: billable no more, but still
# counted by review and the limits as the billable click the rules judged it to be.
CLICK_VOIDED = "voided in review"


ONE_BILLED_PER_IMPRESSION = "recommender_click_one_billed_per_impression"


class Click(models.Model):
    """Every click through the widget (raw); ``billable`` when it passed the rules."""

    # Not indexed alone: the (store, created_at) indexes below lead with them. Every index
    # is written on the storefront's hottest path, the click's INSERT.
    source_store = models.ForeignKey(
        Store, on_delete=models.PROTECT, related_name="clicks_sent", db_index=False
    )
    target_store = models.ForeignKey(
        Store, on_delete=models.PROTECT, related_name="clicks_received", db_index=False
    )
    target_product_id = models.BigIntegerField()  # Shopify product id
    impression_id = models.CharField(max_length=64)
    token_id = models.CharField(max_length=64)
    # The visitor the widget was served to (from the token), and the clicking address,
    # both as salted, rotating hashes.
    visitor_hash = models.CharField(max_length=64)
    ip_hash = models.CharField(max_length=64, blank=True)
    # The same two hashes under the previous salt period: the rules check both, so their
    # 24 h windows hold across a rotation (written when the click is recorded, read when
    # it is settled).
    previous_visitor_hash = models.CharField(max_length=64, blank=True)
    previous_ip_hash = models.CharField(max_length=64, blank=True)
    # The IPv6 site (/48) the address is in, hashed the same way under both periods; blank
    # for an IPv4 address, which is its own site (rules.site_hashes).
    site_hash = models.CharField(max_length=64, blank=True, default="", db_default="")
    previous_site_hash = models.CharField(max_length=64, blank=True, default="", db_default="")
    billable = models.BooleanField(default=False)
    # Set only on the billable click of an impression: one billable click per impression
    # (a unique index over the rows that have it, ONE_BILLED_PER_IMPRESSION).
    billed_impression = models.CharField(  # noqa: DJ001 -- NULL: not billed, outside the index
        max_length=64, null=True, blank=True
    )
    # Why it is (not) billable; CLICK_PENDING from the moment it is recorded until it is settled.
    reason = models.CharField(max_length=40)
    user_agent = models.CharField(max_length=300, blank=True)
    created_at = models.DateTimeField(default=timezone.now)
    # When the partner's web pixel first saw the shopper land with this click's reference.
    landed_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["billed_impression"],
                condition=models.Q(billed_impression__isnull=False),
                name=ONE_BILLED_PER_IMPRESSION,
            ),
        ]
        indexes = [
            # A store's clicks sent and received over time (its settings page, redaction).
            models.Index(fields=["source_store", "created_at"]),
            models.Index(fields=["target_store", "created_at"]),
            # What the settler's rules read: the billable clicks of a shopper (visitor or
            # address) and of a sending store in a window. Billable clicks are few, and
            # without these a shopper's long history of clicks that did not bill (a bot's,
            # say) would be read again by every settling round.
            models.Index(
                fields=["visitor_hash", "created_at"],
                condition=models.Q(billable=True),
                name="recommender_click_billed_v",
            ),
            models.Index(
                fields=["ip_hash", "created_at"],
                condition=models.Q(billable=True),
                name="recommender_click_billed_ip",
            ),
            models.Index(
                fields=["source_store", "created_at"],
                condition=models.Q(billable=True),
                name="recommender_click_billed_src",
            ),
            models.Index(
                fields=["site_hash", "created_at"],
                condition=models.Q(billable=True) & ~models.Q(site_hash=""),
                name="recommender_click_billed_site",
            ),
            # The settler's queue: small, since clicks are settled right after they are
            # recorded.
            models.Index(
                fields=["id"],
                condition=models.Q(reason=CLICK_PENDING),
                name="recommender_click_pending",
            ),
            # The voided clicks of the day, which review and the limits count beside the
            # billable ones (the indexes above hold billable clicks only): few.
            models.Index(
                fields=["created_at"],
                condition=models.Q(reason=CLICK_VOIDED),
                name="recommender_click_voided",
            ),
        ]

    def __str__(self) -> str:
        return f"click {self.source_store_id}->{self.target_store_id} {self.reason}"


class Impression(models.Model):
    """A widget that was actually seen (half visible for a second), per slot shown."""

    store = models.ForeignKey(Store, on_delete=models.CASCADE, related_name="impressions")
    impression_id = models.CharField(max_length=64)
    visitor_hash = models.CharField(max_length=64)  # the visitor it was served to
    ip_hash = models.CharField(max_length=64, blank=True)  # where the beacon came from
    items = models.PositiveSmallIntegerField(default=0)
    partner_items = models.PositiveSmallIntegerField(default=0)
    # What the learner needs (ranking/learning.py): the kind of page, and the partner items
    # shown on it as [store id, Shopify product id] pairs, in slot order.
    page_cluster = models.CharField(max_length=100, blank=True)
    shown = models.JSONField(default=list, blank=True)
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["impression_id"], name="one_view_per_impression")
        ]
        indexes = [
            models.Index(fields=["store", "created_at"]),
            models.Index(fields=["visitor_hash", "created_at"]),
            models.Index(fields=["ip_hash", "created_at"]),
        ]

    def __str__(self) -> str:
        return f"impression {self.impression_id}"


class PendingOptOut(models.Model):
    """A product the merchant chose to keep off the network before the catalog sync read it
    (a product created a moment ago, or any product while the first sync runs): kept off as
    the sync reads it (catalog.products), then deleted."""

    store = models.ForeignKey(Store, on_delete=models.CASCADE, related_name="pending_opt_outs")
    shopify_id = models.BigIntegerField()
    title = models.CharField(max_length=255, blank=True)  # as the resource picker gave it
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["store", "shopify_id"], name="unique_pending_opt_out_per_store"
            )
        ]

    def __str__(self) -> str:
        return f"{self.shopify_id} ({self.store_id})"


class SettingsChange(models.Model):
    """Audit trail: who changed what in a store's Interlayer settings, and when."""

    store = models.ForeignKey(Store, on_delete=models.CASCADE, related_name="settings_changes")
    actor = models.CharField(max_length=100, blank=True)  # the admin user (ID token "sub")
    changes = models.JSONField(default=dict)  # field -> [old, new]
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["-created_at"]

    def __str__(self) -> str:
        return f"{self.store_id} {sorted(self.changes)}"


class AttributedOrder(models.Model):
    """An order a store received from a shopper an exchange click brought (the rules are
    recommender.exchange.attribution's). Nothing about the customer: the order's id, what
    it came to and how many lines it had, as the store's web pixel reported them."""

    store = models.ForeignKey(Store, on_delete=models.CASCADE, related_name="attributed_orders")
    # The partner whose widget sent the shopper.
    source_store = models.ForeignKey(Store, on_delete=models.PROTECT, related_name="orders_sent")
    click = models.ForeignKey(Click, on_delete=models.SET_NULL, null=True, blank=True)
    order_id = models.CharField(max_length=64)  # Shopify's order id
    # In the order's currency: as reported, then what it counts for once Shopify confirmed
    # it (its total less its refunds).
    total = models.DecimalField(max_digits=14, decimal_places=2)
    currency = models.CharField(max_length=3)
    # The same total in the receiving store's currency and in the reference currency (for
    # figures across stores), at the reference rates of the day it was recorded; no
    # reference total for a currency without a reference rate (counted, not priced).
    total_store_currency = models.DecimalField(max_digits=14, decimal_places=2)
    store_currency = models.CharField(max_length=3)
    total_reference = models.DecimalField(max_digits=14, decimal_places=2, null=True)
    line_count = models.PositiveIntegerField(default=0)
    clicked_at = models.DateTimeField()
    created_at = models.DateTimeField(default=timezone.now)
    # A refunded or cancelled order leaves every figure (refunds/create, orders/cancelled).
    refunded_at = models.DateTimeField(null=True, blank=True)
    # When Shopify confirmed the order (its total and lines read from the Admin API, not
    # the pixel's word): only confirmed orders are in the figures.
    verified_at = models.DateTimeField(null=True, blank=True)
    asked_at = models.DateTimeField(null=True, blank=True)  # when Shopify was last asked
    # When the report was found wrong (no such order, cancelled, outside the window...):
    # kept a while, in no figure, so that dropping it frees no place (MAX_ORDERS_PER_CLICK).
    rejected_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["store", "order_id"], name="one_attribution_per_order")
        ]
        indexes = [
            models.Index(fields=["store", "created_at"]),
            models.Index(fields=["source_store", "created_at"]),
        ]

    def __str__(self) -> str:
        return f"order {self.order_id} of {self.store_id} from {self.source_store_id}"


class ItemFeedback(models.Model):
    """How shoppers on one kind of page answered one partner item on one day: viewable
    impressions that showed it and billable clicks on it there. Kept up to date by the
    learner on a schedule, which recounts only the last two days (ranking/learning.py);
    the ranking reads the sum over the learning window."""

    day = models.DateField()  # of the impressions (a click counts on its impression's day)
    page_cluster = models.CharField(max_length=100)
    product = models.ForeignKey(Product, on_delete=models.CASCADE, related_name="feedback")
    impressions = models.PositiveIntegerField(default=0)
    clicks = models.PositiveIntegerField(default=0)
    updated_at = models.DateTimeField(default=timezone.now)

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["day", "page_cluster", "product"],
                name="one_feedback_row_per_day_page_and_item",
            )
        ]

    def __str__(self) -> str:
        return f"{self.day} {self.page_cluster} {self.product_id}: {self.clicks}/{self.impressions}"


class VisitorSalt(models.Model):
    """The random salt of one period's visitor or address hashes (exchange.rules). Kept for
    the current period and the one before (the rules look back a day), then deleted: once
    it is gone, no one, the operators included, can hash an address or browser to compare
    with that period's stored hashes."""

    purpose = models.CharField(max_length=20)  # "visitor" or "address"
    period = models.BigIntegerField()  # days since the epoch (rules.VISITOR_SALT_PERIOD)
    salt = models.CharField(max_length=64)  # 32 random bytes, hex
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["purpose", "period"], name="one_salt_per_period")
        ]

    def __str__(self) -> str:
        return f"{self.purpose} {self.period}"
