from django.apps import AppConfig


class StoresConfig(AppConfig):
    name = "stores"
    default_auto_field = "django.db.models.BigAutoField"
    # name -> (task, minutes between runs); created by ``manage.py setup_schedules``.
    schedules = {
        "reconcile": ("stores.tasks.reconcile", 5),
        "prune-records": ("stores.tasks.prune_records", 24 * 60),
    }
