"""Create or update the periodic background jobs; safe to run on every deploy."""

from __future__ import annotations

from django.core.management.base import BaseCommand
from django.db.models import Q
from django_q.models import Schedule

# name -> (task function, minutes between runs)
SCHEDULES: dict[str, tuple[str, int]] = {
    "reconcile": ("stores.tasks.reconcile", 5),
    # Folds incremental changes back into compact per-store ranges.
    "rebuild-index": ("recommender.tasks.rebuild_index", 24 * 60),
}


class Command(BaseCommand):
    help = "Create or update the periodic background jobs (idempotent)."

    def handle(self, *args, **options) -> None:
        for name, (func, minutes) in SCHEDULES.items():
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
        ours = Q(func__startswith="stores.") | Q(func__startswith="recommender.")
        Schedule.objects.filter(ours).exclude(name__in=list(SCHEDULES)).delete()
