"""Operator command: rebuild the whole index aside and publish it atomically."""

from __future__ import annotations

import time

from django.core.management.base import BaseCommand

from recommender.catalog import index_events


class Command(BaseCommand):
    help = "Rebuild the cross-store index from stored vectors (no re-embedding) and swap it in."

    def handle(self, *args, **options) -> None:
        started = time.monotonic()
        index = index_events.rebuild_index()
        self.stdout.write(
            f"index rebuilt: {len(index)} products, {index.kind} search, "
            f"{time.monotonic() - started:.1f}s"
        )
