from django.apps import AppConfig


class RecommenderConfig(AppConfig):
    name = "recommender"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        from stores.signals import store_installed

        store_installed.connect(_welcome, dispatch_uid="recommender-welcome")
        store_installed.connect(_start_catalog_sync, dispatch_uid="recommender-catalog-sync")


def _start_catalog_sync(sender, store, **kwargs) -> None:
    from recommender import catalog

    catalog.request_sync(store)


def _welcome(sender, store, **kwargs) -> None:
    from recommender import exchange, services

    services.widget_settings_for(store)
    exchange.grant_starter_credits(store)
