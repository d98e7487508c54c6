from django.apps import AppConfig


class RecommenderConfig(AppConfig):
    name = "recommender"
    default_auto_field = "django.db.models.BigAutoField"
    # name -> (task, minutes between runs); created by ``manage.py setup_schedules``.
    # The nightly rebuild folds incremental changes back into compact per-store ranges.
    schedules = {
        "rebuild-index": ("recommender.tasks.rebuild_index", 24 * 60),
        "prune-index-events": ("recommender.tasks.prune_index_events", 24 * 60),
        "forget-old-shoppers": ("recommender.tasks.forget_old_shoppers", 24 * 60),
        "forget-old-salts": ("recommender.tasks.forget_old_salts", 60),
        "learn-from-clicks": ("recommender.tasks.learn_from_clicks", 10),
        # Clicks are settled right after their redirect; this picks up any whose process
        # died before it could.
        "settle-clicks": ("recommender.tasks.settle_clicks", 1),
    }

    def ready(self) -> None:
        # Connecting needs the models loaded, which is what ready() is for.
        from recommender import lifecycle  # noqa: PLC0415 -- needs the app registry
        from recommender.catalog.product_webhooks import (  # noqa: PLC0415 -- likewise
            handle_product_webhook,
        )
        from recommender.exchange import attribution  # noqa: PLC0415 -- likewise
        from recommender.web.settings_page import settings_page  # noqa: PLC0415 -- likewise
        from stores import hooks, webhooks  # noqa: PLC0415 -- likewise

        hooks.store_installed.connect(lifecycle.welcome, dispatch_uid="recommender-welcome")
        hooks.store_installed.connect(
            lifecycle.start_catalog_sync, dispatch_uid="recommender-catalog-sync"
        )
        hooks.store_installed.connect(
            lifecycle.back_in_the_index, dispatch_uid="recommender-back-in-the-index"
        )
        hooks.store_details_changed.connect(
            lifecycle.grant_if_now_paying, dispatch_uid="recommender-grant-if-paying"
        )
        hooks.store_redacted.connect(lifecycle.purge_store_data, dispatch_uid="recommender-purge")
        hooks.customer_redacted.connect(
            lifecycle.redact_customer_orders, dispatch_uid="recommender-customer-redact"
        )
        hooks.customer_data_requested.connect(
            lifecycle.customer_order_data, dispatch_uid="recommender-customer-data"
        )
        hooks.reconciliation_due.connect(
            lifecycle.resume_stalled_work, dispatch_uid="recommender-resume"
        )
        hooks.register_home_page(settings_page)
        hooks.register_web_pixel(attribution.pixel_settings)
        webhooks.register_handler(
            "refunds/create", attribution.handle_refund_webhook, keep=("order_id",)
        )
        webhooks.register_handler(
            "orders/cancelled", attribution.handle_cancel_webhook, keep=("id", "cancelled_at")
        )
        for topic in ("products/create", "products/update", "products/delete"):
            webhooks.register_handler(topic, handle_product_webhook)
