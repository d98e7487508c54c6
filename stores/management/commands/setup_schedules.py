"""Create or update the periodic background jobs; safe to run on every deploy.

Each app declares its own jobs as ``schedules`` on its AppConfig:
``{name: (task function, minutes between runs)}``.
"""

from __future__ import annotations

from django.apps import apps
from django.core.management.base import BaseCommand
from django.db.models import Q
from django_q.models import Schedule


def declared_schedules() -> tuple[dict[str, tuple[str, int]], list[str]]:
    """Every app's schedules, and the apps that declare any (whose stale jobs we own)."""
    wanted: dict[str, tuple[str, int]] = {}
    owners = []
    for config in apps.get_app_configs():
        declared = getattr(config, "schedules", None)
        if declared:
            owners.append(config.name)
            wanted.update(declared)
    return wanted, owners


class Command(BaseCommand):
    help = "Create or update the periodic background jobs (idempotent)."

    def handle(self, *args, **options) -> None:
        wanted, owners = declared_schedules()
        for name, (func, minutes) in wanted.items():
            _, created = Schedule.objects.update_or_create(
                name=name,
                defaults={
                    "func": func,
                    "schedule_type": Schedule.MINUTES,
                    "minutes": minutes,
                    "repeats": -1,
                },
            )
            self.stdout.write(f"{'created' if created else 'updated'} schedule {name}")
        # Our own schedules that are no longer wanted (renamed or removed) go away.
        ours = Q(pk__in=[])
        for owner in owners:
            ours |= Q(func__startswith=f"{owner}.")
        Schedule.objects.filter(ours).exclude(name__in=list(wanted)).delete()
