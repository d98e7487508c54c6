"""A web process's journal of the clicks it redirected and has not yet handed to the
database.

The click redirect is the exchange's hottest write path. Writing each click to PostgreSQL
in the request costs a round trip and a transaction per click (measured on the storefront
benchmark: most of what the click adds over a trivial endpoint). Instead the request
appends the click as one line to a file of its own process (one ``write``, no round trip)
and redirects; the process's settling thread inserts what gathered in one statement and
settles it (exchange.clicks.Settler).

What makes that safe:

- **A process that dies loses nothing.** The line is in the kernel once ``write`` returns,
  so a SIGKILL or an OOM kill right after the redirect leaves it in the file. Each
  journal is locked (``flock``) by its process while it lives; the lock goes with the
  process, and any process on the machine that finds a journal it can lock replays it: a
  web process as it starts (gunicorn starts one in place of the one that died), and the
  worker's minute sweep (``recover_orphans``).
- **Replays insert nothing twice.** Each click's id is taken from the table's own
  sequence before the line is written (a block of ids per round trip), and the insert
  skips ids already there. A journal replayed after its clicks were inserted, or twice at
  once, adds nothing.
- **A database outage loses nothing either.** A failed insert leaves the lines where they
  are and the thread tries again.
- **What it does not cover:** a power loss or a kernel crash of the web machine within the
  moment between a click and its insert (the settling thread's gather, half a second),
  unless ``RECOMMENDER_CLICK_JOURNAL_SYNC`` makes each line wait for the disk (fdatasync;
  measured: about a third of the click redirect's throughput). The directory must be on
  the web machine's own disk: ``flock`` is not reliable over network file systems.

PostgreSQL only: SQLite (the zero-setup default) has no sequence to take ids from, and
there clicks are written in the request as before.
"""

from __future__ import annotations

import fcntl
import json
import logging
import os
import secrets
import socket
import threading
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

import psycopg
from django import db
from django.conf import settings

from recommender import runtime
from recommender.models import Click

log = logging.getLogger(__name__)

# Ids taken from the clicks' sequence per round trip: one in this many clicks pays for it.
ID_BLOCK = 64
_TIMES = {"created_at"}  # the recorded fields that are datetimes (ISO 8601 in the file)


def enabled() -> bool:
    """Whether clicks go through a journal here: on PostgreSQL, settled behind the
    response (the thread that inserts them), unless switched off."""
    return (
        settings.RECOMMENDER_CLICK_JOURNAL
        and settings.RECOMMENDER_SETTLE_CLICKS_BEHIND
        and db.connections[db.router.db_for_write(Click)].vendor == "postgresql"
    )


def of_this_process() -> ClickJournal:
    """This process's journal, opened (and the machine's orphans replayed) on first use;
    a forked process opens its own."""
    with _opening:
        journal = runtime.click_journal
        if journal is None or journal.pid != os.getpid():
            journal = ClickJournal(Path(settings.RECOMMENDER_CLICK_JOURNAL_DIR))
            runtime.click_journal = journal
            try:
                recover_orphans()
            except Exception:
                log.exception("replaying the journals of dead processes failed; the sweep will")
        return journal


_opening = threading.Lock()


class ClickJournal:
    """The clicks this process redirected, in memory for the insert and in a locked file
    for whoever replays it should the process die first."""

    def __init__(self, directory: Path):
        directory.mkdir(parents=True, exist_ok=True)
        self.pid = os.getpid()
        name = f"clicks-{socket.gethostname()}-{self.pid}-{secrets.token_hex(4)}.jsonl"
        self.path = directory / name
        # Locked under another name, then named as a journal: a replay never finds it
        # unlocked (and empty) between its creation and its lock.
        opening = directory / f"opening-{name}"
        flags = os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC
        self._fd = os.open(opening, flags, 0o600)
        fcntl.flock(self._fd, fcntl.LOCK_EX | fcntl.LOCK_NB)  # ours while we live
        os.rename(opening, self.path)
        self._lock = threading.Lock()  # the file and the list change together
        self._unsaved: list[dict[str, Any]] = []
        self._ids: list[int] = []
        self._ids_lock = threading.Lock()

    def record(self, written: dict[str, Any]) -> int:
        """Journal one click (the columns record_click writes); returns its id. Raises
        OSError when the line cannot be written (the caller writes the click itself)."""
        row = {**written, "id": self._next_id()}
        line = json.dumps(row, default=_iso, separators=(",", ":")) + "\n"
        with self._lock:
            os.write(self._fd, line.encode())
            if settings.RECOMMENDER_CLICK_JOURNAL_SYNC:
                os.fdatasync(self._fd)
            self._unsaved.append(row)
        return row["id"]

    def unsaved(self) -> int:
        with self._lock:
            return len(self._unsaved)

    def save(self) -> int:
        """Insert what gathered (as pending clicks, to be settled), then forget it; the
        file is emptied once nothing in it is unsaved. Returns how many were inserted. A
        failure leaves everything in place for the next try."""
        with self._lock:
            rows = list(self._unsaved)
        if not rows:
            return 0
        inserted = insert(rows)
        with self._lock:
            del self._unsaved[: len(rows)]  # clicks journaled meanwhile stay
            if not self._unsaved:
                os.ftruncate(self._fd, 0)
        return inserted

    def close(self) -> None:
        """Stop journaling here (tests; a process going away). What is unsaved stays in
        the file, which is unlocked now: the next replay inserts it."""
        with self._lock:
            if self._fd >= 0:
                os.close(self._fd)
                self._fd = -1
                if not self._unsaved:
                    self.path.unlink(missing_ok=True)

    def _next_id(self) -> int:
        with self._ids_lock:
            if not self._ids:
                self._ids = _take_ids(ID_BLOCK)
            return self._ids.pop(0)


def _forget_in_child() -> None:
    """A forked process does not share its parent's journal: holding the inherited
    descriptor would keep the parent's journal locked after the parent died."""
    journal = runtime.click_journal
    if journal is not None and journal._fd >= 0:  # our own object, in the child only
        os.close(journal._fd)
    runtime.click_journal = None


os.register_at_fork(after_in_child=_forget_in_child)


def recover_orphans(directory: Path | None = None) -> int:
    """Replay the journals in ``directory`` whose processes are gone (a journal nobody
    holds locked), then delete them; returns how many clicks were inserted. A journal
    its process still holds is left alone."""
    directory = Path(directory or settings.RECOMMENDER_CLICK_JOURNAL_DIR)
    if not directory.is_dir():
        return 0
    own = runtime.click_journal.path if runtime.click_journal is not None else None
    inserted = 0
    for path in sorted(directory.glob("clicks-*.jsonl")):
        if path == own:
            continue
        try:
            fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
        except FileNotFoundError:
            continue  # replayed by someone else meanwhile
        try:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                continue  # its process is alive
            rows = list(_read(path, fd))
            inserted += insert(rows) if rows else 0
            path.unlink(missing_ok=True)
            if rows:
                log.warning("replayed the click journal of a dead process clicks=%s", len(rows))
        finally:
            os.close(fd)
    return inserted


def insert(rows: list[dict[str, Any]]) -> int:
    """Insert journaled clicks as recorded (pending), skipping ids already there; one
    transaction, one statement prepared once and sent for every row without waiting for
    each (psycopg's pipeline). Returns how many were new."""
    if not rows:
        return 0
    columns = {field.attname: field.column for field in Click._meta.concrete_fields}
    names = list(rows[0])
    sql = (
        f"INSERT INTO {Click._meta.db_table} ({', '.join(columns[n] for n in names)}) "  # noqa: S608 -- names from the model
        f"VALUES ({', '.join(['%s'] * len(names))}) ON CONFLICT ({Click._meta.pk.column}) DO NOTHING"
    )
    connection = db.connections[db.router.db_for_write(Click)]
    with db.transaction.atomic(using=connection.alias), connection.cursor() as cursor:
        cursor.executemany(sql, [[row[name] for name in names] for row in rows])
        return cursor.rowcount


def _take_ids(count: int) -> list[int]:
    """``count`` ids from the clicks' own sequence, in one round trip on this thread's
    connection (a lost connection is replaced once, as the click's INSERT did)."""
    sql = "SELECT nextval(pg_get_serial_sequence(%s, %s)) FROM generate_series(1, %s)"
    params = [Click._meta.db_table, Click._meta.pk.column, count]
    connection = db.connections[db.router.db_for_write(Click)]
    for attempt in (1, 2):
        try:
            connection.ensure_connection()
            with psycopg.Cursor(connection.connection) as cursor:
                cursor.execute(sql, params)
                return [row[0] for row in cursor.fetchall()]
        except (psycopg.OperationalError, psycopg.InterfaceError):
            raw = connection.connection
            broken = raw is None or raw.broken or raw.closed
            if attempt == 2 or connection.in_atomic_block or not broken:
                raise
            connection.close()
    raise AssertionError("unreachable")


def _read(path: Path, fd: int) -> Iterator[dict[str, Any]]:
    """The clicks of a journal; a line cut short (the process died inside ``write``, or
    the disk filled) is logged and skipped."""
    with os.fdopen(os.dup(fd), "rb") as file:
        for number, line in enumerate(file, 1):
            try:
                row = json.loads(line)
                if not isinstance(row, dict) or row.keys() != _recorded():
                    raise ValueError("not a journaled click")
                for name in _TIMES:
                    row[name] = datetime.fromisoformat(row[name])
                yield row
            except (ValueError, TypeError):
                log.warning("skipped an unreadable line of a click journal path=%s line=%s",
                            path.name, number)  # fmt: skip


def _recorded() -> set[str]:
    """The names a journaled click has: the columns record_click writes, and the id."""
    from recommender.exchange.clicks import RECORDED  # noqa: PLC0415 -- clicks imports this module

    return {field.attname for field in RECORDED} | {"id"}


def _iso(value: Any) -> str:
    if isinstance(value, datetime):
        return value.isoformat()
    raise TypeError(f"cannot journal {type(value).__name__}")
