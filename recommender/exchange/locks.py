"""Serialising exchange writes that must not interleave, across processes.

Transaction-scoped PostgreSQL advisory locks, taken in one global order (by lock number) so
two transactions never wait on each other crosswise. SQLite serialises writers anyway."""

from __future__ import annotations

import hashlib

from django.db import connection


def _number(key: str) -> int:
    return int.from_bytes(hashlib.sha256(key.encode()).digest()[:8], "big", signed=True)


def lock_for_transaction(*keys: str) -> None:
    """Hold every lock in ``keys`` until the surrounding transaction ends."""
    if connection.vendor != "postgresql":
        return
    with connection.cursor() as cursor:
        for number in sorted({_number(key) for key in keys}):
            cursor.execute("SELECT pg_advisory_xact_lock(%s)", [number])
