"""Serialising exchange writes that must not interleave, across processes.

Transaction-scoped PostgreSQL advisory locks, taken in one global order (by lock number) so
two transactions never wait on each other crosswise. SQLite serialises writers anyway."""

from __future__ import annotations

import hashlib

from django.db import connection


def _number(key: str) -> int:
    return int.from_bytes(hashlib.sha256(key.encode()).digest()[:8], "big", signed=True)


# Whatever charges a store (settling clicks, releasing held ones) holds this, so a balance
# is checked and spent by one transaction at a time and never goes below zero.
BILLING = "exchange-billing"


def lock_for_transaction(*keys: str) -> None:
    """Hold every lock in ``keys`` until the surrounding transaction ends."""
    if connection.vendor != "postgresql":
        return
    with connection.cursor() as cursor:
        for number in sorted({_number(key) for key in keys}):
            cursor.execute("SELECT pg_advisory_xact_lock(%s)", [number])


def try_lock_for_transaction(key: str) -> bool:
    """Take ``key`` until the surrounding transaction ends if nobody holds it; False when
    somebody does. (SQLite's transactions here begin IMMEDIATE: one writer at a time.)"""
    if connection.vendor != "postgresql":
        return True
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_try_advisory_xact_lock(%s)", [_number(key)])
        return bool(cursor.fetchone()[0])
