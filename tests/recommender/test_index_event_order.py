"""Index events are applied exactly once even when they commit out of id order (two real
PostgreSQL transactions), and an event applied again changes nothing."""

from __future__ import annotations

import threading
from contextlib import contextmanager
from datetime import timedelta
from unittest import mock

import pytest
from django.db import connection, connections, transaction
from django.utils import timezone

from recommender import runtime
from recommender.catalog import index_events
from recommender.models import IndexEvent
from recommender.ranking import live_index
from tests.factories import make_product, make_store, topic_vector

pytestmark = pytest.mark.django_db(transaction=True)


@contextmanager
def _committing_late(product):
    """Another transaction takes the next event id (an upsert of ``product``) and stays open
    for the block's length, committing as it ends: what the block commits meanwhile has
    higher ids, visible before this lower one."""
    inserted, release = threading.Event(), threading.Event()

    def slow_transaction() -> None:
        try:
            with transaction.atomic():
                index_events.emit_index_events(
                    IndexEvent.Kind.UPSERT, [(product.pk, product.store_id)]
                )
                inserted.set()
                release.wait(10)
        finally:
            connections.close_all()

    slow = threading.Thread(target=slow_transaction)
    slow.start()
    inserted.wait(10)
    try:
        yield
    finally:
        release.set()
        slow.join()


def _built_index_and_two_new_products():
    """A store, the index a process loaded, and two products added since (their events
    not emitted yet): the early one's event is to commit after the late one's."""
    if connection.vendor != "postgresql":
        pytest.skip("out-of-order commits need PostgreSQL's sequences")
    store = make_store("alpha")
    index_events.rebuild_index()
    index = live_index.current(refresh=True)
    early = make_product(store, "Early Grinder", topic_vector("coffee", seed=1))
    late = make_product(store, "Late Kettle", topic_vector("coffee", seed=2))
    return store, index, early, late


def test_an_event_that_commits_after_a_higher_one_was_applied_is_still_applied(private_index):
    store, index, early, late = _built_index_and_two_new_products()
    with _committing_late(early):
        index_events.emit_index_events(IndexEvent.Kind.UPSERT, [(late.pk, store.pk)])  # commits
        live_index.apply_events(index)
        applied_first = (index.vector(early.pk) is not None, index.vector(late.pk) is not None)
    live_index.apply_events(index)

    early_id, late_id = IndexEvent.objects.order_by("id").values_list("id", flat=True)
    assert early_id < late_id  # the early event really has the lower id
    assert applied_first == (False, True)  # the higher id was applied first
    assert index.vector(early.pk) is not None  # and the lower one was not skipped
    assert len(index) == 2
    assert live_index.apply_events(index) == 0  # exactly once


def test_a_published_version_that_cannot_be_read_is_passed_over_and_events_still_apply(
    private_index, caplog
):
    """A crash just after a rebuild published its version can leave its files never written
    out (the file system truncates them); a version damaged on disk later reads alike. A
    running process then stopped applying events (its poll raised before them), and a
    process started after the crash failed every storefront request until the next
    rebuild. Each keeps, or loads, the newest version it can read, and events reach it."""
    store = make_store("alpha")
    kept = make_product(store, "Burr Grinder", topic_vector("coffee", seed=1))
    index_events.rebuild_index()
    running = live_index.current(refresh=True)
    index_events.rebuild_index()  # the next rebuild, whose file never reached the disk
    damaged = (private_index / "CURRENT").read_text().strip()
    (private_index / damaged / "index.faiss").write_bytes(b"")
    added = make_product(store, "Pour Over Kettle", topic_vector("coffee", seed=2))
    index_events.emit_index_events(IndexEvent.Kind.UPSERT, [(added.pk, store.pk)])

    polled = live_index.current(refresh=True)  # the running process's next poll
    runtime.reset()
    started = live_index.current()  # a process started after the crash

    assert polled is running
    for index in (polled, started):
        assert index.vector(kept.pk) is not None and index.vector(added.pk) is not None
    assert f"index version could not be loaded version={damaged}" in caplog.text


def test_a_version_that_could_not_be_read_is_tried_again_later(private_index, settings):
    """A version can fail to load for a passing cause (memory, file handles, a disk slow to
    come back): a process passed over it until the next rebuild, a day later, however soon
    the cause passed. It tries again after RECOMMENDER_INDEX_RETRY_SECONDS."""
    store = make_store("alpha")
    make_product(store, "Burr Grinder", topic_vector("coffee", seed=1))
    index_events.rebuild_index()
    live_index.current(refresh=True)
    index_events.rebuild_index()
    published = (private_index / "CURRENT").read_text().strip()
    whole = (private_index / published / "index.faiss").read_bytes()
    (private_index / published / "index.faiss").write_bytes(b"")  # unreadable, for now
    live_index.current(refresh=True)
    assert live_index.status()["version"] != published
    (private_index / published / "index.faiss").write_bytes(whole)  # the cause passed

    settings.RECOMMENDER_INDEX_RETRY_SECONDS = 3600
    live_index.current(refresh=True)
    before_the_retry = live_index.status()["version"]
    settings.RECOMMENDER_INDEX_RETRY_SECONDS = 0
    live_index.current(refresh=True)

    assert before_the_retry != published  # not tried again on every poll
    assert live_index.status()["version"] == published


def test_a_process_whose_clock_is_ahead_does_not_skip_an_event_still_committing(private_index):
    """Whether an event is old enough for the watermark to pass it was judged by the polling
    process's clock against the time the writing process's clock gave the event: a web
    machine six minutes ahead (its NTP lost) took a fresh event for settled, moved its
    watermark past it, and skipped for good a lower id still committing. Both times are the
    database's now."""
    store, index, early, late = _built_index_and_two_new_products()
    with _committing_late(early):
        index_events.emit_index_events(IndexEvent.Kind.UPSERT, [(late.pk, store.pk)])  # commits
        ahead = timezone.now() + live_index.SETTLED_AFTER + timedelta(minutes=1)
        with mock.patch("django.utils.timezone.now", return_value=ahead):
            live_index.apply_events(index)  # the web machine whose clock is ahead polls
    live_index.apply_events(index)

    assert index.vector(late.pk) is not None
    assert index.vector(early.pk) is not None  # not skipped
