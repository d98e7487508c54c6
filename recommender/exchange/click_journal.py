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
  web process as it starts (gunicorn starts one in place of the one that died), each web
  process's settling thread once a minute, and the worker's minute sweep
  (``recover_orphans``). A process stopping on purpose inserts its own on the way out.
- **Replays insert nothing twice.** Each click's id is taken from the table's own
  sequence before the line is written (a block of ids per round trip), and the insert
  skips ids already there. A journal replayed after its clicks were inserted, or twice at
  once, adds nothing.
- **A database that refuses the insert loses nothing either** (a full disk, a failover):
  the lines stay where they are and the thread tries again. A row the database refuses
  on its own (it cannot be inserted however often it is tried) is set aside in a
  ``rejected-*`` file beside the journals, logged, and holds up no other click. Ids are
  taken from the database ahead of need, 64 at a time: while it is unreachable a process
  redirects what its ids cover, and then fails the click as it did before journals.
- **Settled in the order they happened**: a journaled click is settled once it is a
  second old (exchange.clicks.SETTLE_LAG), when the other processes have inserted the
  clicks made before it. A process whose inserts fall further behind (a refused insert
  retried, a replay a minute later) has its clicks judged after newer ones.
- **Only this process's user writes here.** The directory is created private (0700) and a
  directory anyone else can write to is refused (clicks are then inserted in the request,
  as without a journal); replayed lines are checked as the rows they claim to be, and come
  back pending, whatever they say.
- **What it does not cover:** a power loss or a kernel crash of the web machine within the
  moment between a click and its insert (the settling thread's gather, a fifth of a second after its round),
  unless ``RECOMMENDER_CLICK_JOURNAL_SYNC`` makes each line wait for the disk (fdatasync;
  measured: about a third of the click redirect's throughput). The directory must be on
  the web machine's own disk: ``flock`` is not reliable over network file systems.

PostgreSQL only: SQLite (the zero-setup default) has no sequence to take ids from, and
there clicks are written in the request as before.
"""

from __future__ import annotations

import atexit
import fcntl
import functools
import json
import logging
import os
import secrets
import socket
import stat
import threading
import time
from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import Any

import psycopg
from django import db
from django.conf import settings

from recommender import runtime
from recommender.exchange import rules
from recommender.models import CLICK_PENDING, Click
from stores.models import Store

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


class Unavailable(OSError):
    """The journal could not be opened a moment ago: not tried again for a minute."""


def of_this_process() -> ClickJournal:
    """This process's journal, opened on first use (a forked process forgets its parent's:
    _forget_in_child). Raises OSError when it cannot be opened (Unavailable for a minute
    after that)."""
    with _opening:
        journal = runtime.click_journal
        if journal is None:
            if time.monotonic() < runtime.click_journal_unavailable_until:
                raise Unavailable("the click journal could not be opened")
            try:
                journal = ClickJournal(Path(settings.RECOMMENDER_CLICK_JOURNAL_DIR))
            except OSError:
                runtime.click_journal_unavailable_until = time.monotonic() + 60
                raise
            runtime.click_journal = journal
            atexit.register(_save_at_exit, journal)
        return journal


_opening = threading.Lock()


class ClickJournal:
    """The clicks this process redirected, in memory for the insert and in a locked file
    for whoever replays it should the process die first."""

    def __init__(self, directory: Path):
        _private(directory)
        self.directory = directory
        self.pid = os.getpid()
        self._lock = threading.Lock()  # the file and the list change together
        self._saving = threading.Lock()  # one save at a time
        self._unsaved: list[tuple[dict[str, Any], bytes]] = []  # (row, its line)
        self._ids: list[int] = []
        self._ids_lock = threading.Lock()
        self._fd, self.path = _new_journal(directory)

    def record(self, written: dict[str, Any]) -> int:
        """Journal one click (the columns record_click writes); returns its id. Raises
        OSError when the line cannot be written (the caller writes the click itself)."""
        row = {**written, "id": self._next_id()}
        line = _line(row)
        with self._lock:
            _append(self._fd, line)
            self._unsaved.append((row, line))
            if settings.RECOMMENDER_CLICK_JOURNAL_SYNC:
                try:
                    os.fdatasync(self._fd)
                except OSError:  # written all the same: inserted with the others
                    log.exception("the click journal could not be synced to the disk")
        return row["id"]

    def unsaved(self) -> int:
        with self._lock:
            return len(self._unsaved)

    def save(self) -> int:
        """Insert what gathered (as pending clicks, to be settled) and forget it; returns
        how many were new. The journal is then emptied, or, when clicks came in meanwhile,
        replaced by a new one holding only those. A failure leaves everything in place for
        the next try."""
        with self._saving:
            with self._lock:
                rows = [row for row, _ in self._unsaved]
            if not rows:
                return 0
            inserted = insert(rows, source=self.path.name)
            with self._lock:
                del self._unsaved[: len(rows)]
                if not self._unsaved:
                    os.ftruncate(self._fd, 0)
                else:
                    self._move_unsaved_to_a_new_journal()
            return inserted

    @property
    def closed(self) -> bool:
        return self._fd < 0

    def close(self) -> None:
        """Stop journaling here (tests; a process going away). What is unsaved stays in
        the file, which is unlocked now: the next replay inserts it."""
        with self._lock:
            if self._fd >= 0:
                os.close(self._fd)
                self._fd = -1
                if not self._unsaved:
                    self.path.unlink(missing_ok=True)

    def _move_unsaved_to_a_new_journal(self) -> None:
        """The new file is written and locked before the old one goes: a process dying in
        between leaves both, and the replay inserts each click once (its id)."""
        fd, path = _new_journal(self.directory)
        try:
            _append(fd, b"".join(line for _, line in self._unsaved))
        except OSError:
            os.close(fd)
            path.unlink(missing_ok=True)
            raise
        old_fd, old_path = self._fd, self.path
        self._fd, self.path = fd, path
        old_path.unlink(missing_ok=True)
        os.close(old_fd)

    def _next_id(self) -> int:
        with self._ids_lock:
            if not self._ids:
                self._ids = _take_ids(ID_BLOCK)
            return self._ids.pop(0)


def _private(directory: Path) -> None:
    """The journal directory, created private; refused (PermissionError) where another
    user could write journals for us to replay."""
    directory.mkdir(mode=0o700, parents=True, exist_ok=True)
    status = directory.stat()
    if status.st_uid != os.geteuid() or status.st_mode & (stat.S_IWGRP | stat.S_IWOTH):
        raise PermissionError(f"{directory} is not private to this user: no click journal")


def _new_journal(directory: Path) -> tuple[int, Path]:
    """A new journal, locked under another name and then named as a journal: a replay
    never finds it unlocked (and empty) between its creation and its lock."""
    name = f"clicks-{socket.gethostname()}-{os.getpid()}-{secrets.token_hex(4)}.jsonl"
    opening, path = directory / f"opening-{name}", directory / name
    flags = os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC
    fd = os.open(opening, flags, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)  # ours while we live
        os.rename(opening, path)
    except OSError:
        os.close(fd)
        opening.unlink(missing_ok=True)
        raise
    return fd, path


def _append(fd: int, data: bytes) -> None:
    """All of ``data`` at the end of the file, or nothing (a write cut short by a full
    disk is taken back, so the next line does not join a fragment)."""
    size = os.fstat(fd).st_size
    written = 0
    try:
        while written < len(data):
            written += os.write(fd, data[written:])
    except OSError:
        os.ftruncate(fd, size)
        raise


def _save_at_exit(journal: ClickJournal) -> None:
    """A process stopping on purpose (a deploy, gunicorn's max_requests) inserts what it
    journaled on its way out; what it cannot stays in its file for the next replay."""
    if journal.pid != os.getpid() or journal.closed:
        return  # a closed journal's file is left for a replay
    try:
        journal.save()
    except Exception:
        log.exception("the click journal could not be inserted on exit; it will be replayed")
    finally:
        journal.close()


def _forget_in_child() -> None:
    """A forked process does not share its parent's journal: holding the inherited
    descriptor would keep the parent's journal locked after the parent died."""
    journal = runtime.click_journal
    if journal is not None and not journal.closed:  # our own object, in the child only
        os.close(journal._fd)
    runtime.click_journal = None


os.register_at_fork(after_in_child=_forget_in_child)


def _directory(directory: Path | None = None) -> Path:
    return Path(directory or settings.RECOMMENDER_CLICK_JOURNAL_DIR)


def holds_clicks(directory: Path | None = None) -> bool:
    """Whether any journal in ``directory`` (this machine's processes', alive or dead)
    holds clicks not inserted yet: a journal is emptied once all of it is inserted."""
    for path in _directory(directory).glob("clicks-*.jsonl"):
        try:
            if path.stat().st_size:
                return True
        except FileNotFoundError:
            continue  # replayed meanwhile
    return False


def recover_orphans(directory: Path | None = None) -> int:
    """Replay the journals in ``directory`` whose processes are gone (a journal nobody
    holds locked), then delete them; returns how many clicks were inserted. A journal
    its process still holds is left alone; one that cannot be replayed now (the database
    is away) is left for the next try, and holds up no other."""
    directory = _directory(directory)
    if not directory.is_dir():
        return 0
    for path in directory.glob("opening-clicks-*.jsonl"):
        _remove_if_abandoned(path)
    inserted = 0
    for path in sorted(directory.glob("clicks-*.jsonl")):
        journal = runtime.click_journal
        if journal is not None and path == journal.path:
            continue
        try:
            inserted += _replay(path)
        except Exception:
            log.exception("replaying a click journal failed; it is kept path=%s", path.name)
    _forget_old_set_aside(directory)
    return inserted


def _forget_old_set_aside(directory: Path) -> None:
    """Set-aside lines hold shoppers' agents and hashes, which the clicks' rows forget after
    rules.SHOPPER_DATA_RETENTION: a set-aside file nothing was added to for that long goes.
    So do the lines of clicks to or from a redacted store (shop/redact), whose shoppers'
    data is erased everywhere else (the worker's redaction cannot reach these disks)."""
    before = time.time() - rules.SHOPPER_DATA_RETENTION.total_seconds()
    kept = []
    for path in directory.glob("rejected-*"):
        try:
            if path.stat().st_mtime < before:
                path.unlink()
                log.warning("deleted set-aside click journal lines past the shopper data "
                            "retention path=%s", path.name)  # fmt: skip
            else:
                kept.append(path)
        except FileNotFoundError:
            continue  # deleted by another process's sweep meanwhile
    if not kept:
        return
    redacted = set(Store.objects.filter(status=Store.Status.REDACTED).values_list("pk", flat=True))
    for path in kept if redacted else []:
        _drop_lines_of(path, redacted)


def _drop_lines_of(path: Path, stores: set[int]) -> None:
    """Rewrite a set-aside file without the lines of clicks to or from ``stores``, under the
    lock _set_aside appends under; a line that cannot be read stays (it goes with its file)."""
    try:
        handle = open(path, "r+b")  # noqa: SIM115 -- closed below, after the lock
    except FileNotFoundError:
        return
    with handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        lines = handle.read().splitlines(keepends=True)
        left = [line for line in lines if not _of_stores(line, stores)]
        if len(left) == len(lines):
            return
        # The file's age is what its retention goes by: taking lines out adds none.
        before = os.fstat(handle.fileno())
        handle.seek(0)
        handle.truncate()
        handle.writelines(left)
        handle.flush()
        os.fsync(handle.fileno())
        os.utime(handle.fileno(), ns=(before.st_atime_ns, before.st_mtime_ns))
    log.warning("dropped set-aside click journal lines of redacted stores path=%s count=%s",
                path.name, len(lines) - len(left))  # fmt: skip


def _of_stores(line: bytes, stores: set[int]) -> bool:
    try:
        data = json.loads(line)
    except ValueError:
        return False
    if not isinstance(data, dict):
        return False
    return data.get("source_store_id") in stores or data.get("target_store_id") in stores


def _remove_if_abandoned(path: Path) -> None:
    """A journal its process died opening (before it was named as one: nothing in it)."""
    fd = _unheld(path)
    if fd is None:
        return
    try:
        if not os.fstat(fd).st_size:
            path.unlink(missing_ok=True)
    finally:
        os.close(fd)


def _replay(path: Path) -> int:
    fd = _unheld(path)
    if fd is None:
        return 0
    try:
        if os.fstat(fd).st_uid != os.geteuid():
            raise PermissionError(f"{path.name} was not written by this user")
        rows, unreadable = _read(path, fd)
        inserted = insert(rows, source=path.name) if rows else 0
        if unreadable:  # set aside once the rest is in: a replay tried again repeats none
            log.warning("set aside unreadable lines of a click journal path=%s lines=%s",
                        path.name, len(unreadable))  # fmt: skip
            _set_aside(unreadable, source=path.name)
        path.unlink(missing_ok=True)
        if rows:
            log.warning("replayed the click journal of a dead process clicks=%s", len(rows))
        return inserted
    finally:
        os.close(fd)


def _unheld(path: Path) -> int | None:
    """``path`` opened and locked, when no process holds it; None when one does (it is
    alive, or opening it) or it is gone (replayed by someone else meanwhile)."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
    except FileNotFoundError:
        return None
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(fd)
        return None
    return fd


def insert(rows: list[dict[str, Any]], *, source: str) -> int:
    """Insert journaled clicks as recorded (pending), skipping ids already there; one
    transaction, the rows sent without waiting for each (psycopg's pipeline). Returns how
    many were new. A row the database refuses on its own (not the database being away), or
    whose id another click holds (the sequence set back), is set aside in a ``rejected-``
    file beside ``source``, so it holds up no other and is not lost."""
    if not rows:
        return 0
    try:
        inserted, taken = _insert(rows)
    except (db.DataError, db.IntegrityError):
        if len(rows) == 1:
            log.error("the database refuses a journaled click; set aside id=%s", rows[0]["id"])
            _set_aside([_line(rows[0])], source=source)
            return 0
        return sum(insert([row], source=source) for row in rows)  # find the one refused
    if taken:
        # Its id is another click's: the clicks' sequence was set back (a restore, a
        # failover to a replica that was behind). Set aside, not lost.
        _set_aside([_line(row) for row in taken], source=source)
    return inserted


def _insert(rows: list[dict[str, Any]]) -> tuple[int, list[dict[str, Any]]]:
    """Returns how many were new, and the rows whose id another click holds."""
    columns = {field.attname: field.column for field in Click._meta.concrete_fields}
    names = list(rows[0])
    pk = Click._meta.pk.column
    sql = (
        f"INSERT INTO {Click._meta.db_table} ({', '.join(columns[n] for n in names)}) "  # noqa: S608 -- names from the model
        f"VALUES ({', '.join(['%s'] * len(names))}) ON CONFLICT ({pk}) DO NOTHING"
    )
    connection = db.connections[db.router.db_for_write(Click)]
    taken: list[dict[str, Any]] = []
    with db.transaction.atomic(using=connection.alias), connection.cursor() as cursor:
        cursor.executemany(sql, [[row[name] for name in names] for row in rows])
        new = cursor.rowcount
        if new < len(rows):  # replayed, or an id someone else holds (a sequence set back)
            cursor.execute(
                f"SELECT {pk}, token_id, created_at FROM {Click._meta.db_table} "  # noqa: S608
                f"WHERE {pk} = ANY(%s)",
                [[row["id"] for row in rows]],
            )
            there = {pk_: (token, at) for pk_, token, at in cursor.fetchall()}
            for row in rows:
                if there.get(row["id"], (row["token_id"], row["created_at"])) != (
                    row["token_id"], row["created_at"],
                ):  # fmt: skip
                    log.error("a journaled click's id is another click's; it is set aside "
                              "id=%s", row["id"])  # fmt: skip
                    taken.append(row)
    return new, taken


def _set_aside(lines: list[bytes], *, source: str) -> None:
    """Lines of the journal ``source`` that cannot go in, kept beside the journals for an
    operator to look at: a file per day, so each is deleted whole once its lines are past
    the retention (_forget_old_set_aside goes by the time a file was last written)."""
    day = time.strftime("%Y%m%d", time.gmtime())
    with open(_directory() / f"rejected-{day}-{source}", "ab") as rejected:
        fcntl.flock(rejected, fcntl.LOCK_EX)  # not while a sweep rewrites it
        rejected.writelines(lines)


def _take_ids(count: int) -> list[int]:
    """``count`` ids from the clicks' own sequence, in one round trip on this thread's
    connection (a lost connection is replaced once, as the click's INSERT does)."""
    sql = "SELECT nextval(pg_get_serial_sequence(%s, %s)) FROM generate_series(1, %s)"
    params = [Click._meta.db_table, Click._meta.pk.column, count]

    def take(cursor: psycopg.Cursor) -> list[int]:
        cursor.execute(sql, params)
        return [row[0] for row in cursor.fetchall()]

    return on_connection(db.connections[db.router.db_for_write(Click)], take)


def on_connection(connection, run: Callable[[psycopg.Cursor], Any]) -> Any:
    """``run`` with a plain psycopg cursor on the connection as it stands: Django's health
    check (a round trip of its own before a request's first query) is skipped, and the
    statement itself finds a lost connection. Outside a transaction that connection is
    then replaced and ``run`` tried once more."""
    for attempt in (1, 2):
        try:
            connection.ensure_connection()
            with psycopg.Cursor(connection.connection) as cursor:
                return run(cursor)
        except (psycopg.OperationalError, psycopg.InterfaceError):
            # Only a lost connection is worth a new one: a cancelled statement, a lock
            # timeout or a full disk leaves the connection usable.
            raw = connection.connection
            broken = raw is None or raw.broken or raw.closed
            if attempt == 2 or connection.in_atomic_block or not broken:
                raise
            log.warning("the database connection broke under a click; trying a new one")
            connection.close()
    raise AssertionError("unreachable")


def _read(path: Path, fd: int) -> tuple[list[dict[str, Any]], list[bytes]]:
    """The clicks of a journal, checked as the rows they claim to be and pending whatever
    they say; and the lines that are not one (cut short as their process died, or not
    ours), each ending in a newline."""
    rows, unreadable = [], []
    with os.fdopen(os.dup(fd), "rb") as file:
        for line in file:
            try:
                rows.append(_row(json.loads(line)))
            except (ValueError, TypeError):
                unreadable.append(line if line.endswith(b"\n") else line + b"\n")
    return rows, unreadable


def _row(data: Any) -> dict[str, Any]:
    """A journaled click from its line. A line written by a release before or after this
    one (a field added since, with a default, or one removed) is read as far as it goes."""
    if not isinstance(data, dict) or "id" not in data:
        raise ValueError("not a journaled click")
    row = {}
    for name, (kind, default) in _recorded().items():
        if name not in data:
            if default is _REQUIRED:
                raise ValueError(f"a journaled click without {name}")
            row[name] = default
            continue
        value = data[name]
        if name in _TIMES:
            value = datetime.fromisoformat(value)
            if value.tzinfo is None:
                raise ValueError("a naive time")
        elif not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
            raise TypeError(f"{name} is not {kind.__name__}")
        row[name] = value
    row.update(billable=False, reason=CLICK_PENDING)  # settling decides, not the file
    return row


_REQUIRED = object()


@functools.cache
def _recorded() -> dict[str, tuple[type, Any]]:
    """The names a journaled click has (the columns record_click writes, and the id), with
    the type each holds and what a line without it stands for (_REQUIRED: no such line)."""
    from recommender.exchange.clicks import RECORDED  # noqa: PLC0415 -- clicks imports this module

    kinds = {"IntegerField": int, "BigIntegerField": int, "BigAutoField": int,
             "ForeignKey": int, "BooleanField": bool, "DateTimeField": datetime}  # fmt: skip
    recorded = {"id": (int, _REQUIRED)}
    for field in RECORDED:
        optional = (
            field.has_default() or field.null or (field.blank and field.empty_strings_allowed)
        )
        kind = kinds.get(field.get_internal_type(), str)
        recorded[field.attname] = (kind, field.get_default() if optional else _REQUIRED)
    return recorded


def _line(row: dict[str, Any]) -> bytes:
    return (json.dumps(row, default=_iso, separators=(",", ":")) + "\n").encode()


def _iso(value: Any) -> str:
    if isinstance(value, datetime):
        return value.isoformat()
    raise TypeError(f"cannot journal {type(value).__name__}")
