"""Putting work on the background queue (django-q2): one helper for every app.

Callers enqueue from ``transaction.on_commit`` so a task never runs before the rows it
reads are committed.
"""

from __future__ import annotations

from typing import Any

from django_q.tasks import async_task


def enqueue(func: str, *args: Any, task_name: str) -> str:
    """Queue ``func`` (a dotted path to a task taking primitive ids) with ``args``."""
    return async_task(func, *args, task_name=task_name)
