"""A web process journals its clicks before their redirects and inserts them behind: a
process that dies, a replay run twice, a line cut short or a database that refuses the
insert loses no click and counts none twice."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from unittest import mock

import pytest
from django.db import connection
from django.db.models import F
from django.test.utils import CaptureQueriesContext

from recommender import runtime, tasks
from recommender.exchange import attribution, click_journal, clicks, ledger, rules, tokens
from recommender.models import CLICK_PENDING, Click
from recommender.web import storefront
from stores.models import Store
from tests.conftest import wait_until_clicks_settled
from tests.factories import make_store
from tests.recommender.test_click_settlement import (
    BROWSER,
    record_viewed_clicks,
    refuse,
    stop_refusing,
    viewed_token,
)
from tests.recommender.test_storefront_endpoints import proxied

ROOT = Path(__file__).resolve().parent.parent.parent
pytestmark = pytest.mark.django_db(transaction=True)

# A storefront process as in production (clicks journaled, settled behind): it follows one
# click, says where the shopper went and where its journal is, then waits to be killed.
FOLLOWS_A_CLICK_AND_WAITS = """
import sys, time
import django
django.setup()
from recommender import runtime
from recommender.exchange import clicks
from stores.models import Store
host = Store.objects.get(shop_domain="host.myshopify.com")
outcome = clicks.follow_click(host=host, raw_token=sys.argv[1], ip="203.0.113.9",
                              user_agent=sys.argv[2])
print(outcome.location, runtime.click_journal.path, flush=True)
time.sleep(600)  # never woken: its settling thread is not started, nothing is inserted
"""


def _set_aside_file(journal_dir: Path, source: str) -> Path:
    """The set-aside lines of journal ``source`` (a file of today's)."""
    (found,) = journal_dir.glob(f"rejected-*-{source}")
    return found


def production_env(journal_dir: Path) -> dict[str, str]:
    """A storefront process's environment: the production settings (clicks settled
    behind) in the development profile, on the test's database and journal directory."""
    db = connection.settings_dict
    return {**os.environ, "DJANGO_SETTINGS_MODULE": "interlayer.settings",
            "DATABASE_URL": f"postgres://{db['USER']}@{db['HOST']}:{db['PORT']}/{db['NAME']}",
            "RECOMMENDER_CLICK_JOURNAL_DIR": str(journal_dir)}  # fmt: skip


@pytest.fixture
def journal_dir(settings, tmp_path):
    if connection.vendor != "postgresql":
        pytest.fail("click journals take their ids from PostgreSQL (scripts/pg.sh)")
    settings.RECOMMENDER_SETTLE_CLICKS_BEHIND = True
    settings.RECOMMENDER_CLICK_JOURNAL_DIR = tmp_path / "journal"
    runtime.reset()
    yield settings.RECOMMENDER_CLICK_JOURNAL_DIR
    runtime.reset()


def test_a_click_whose_process_is_killed_after_the_redirect_is_replayed_and_billed_once(
    pair,
    journal_dir,
):
    host, partner, product = pair
    token = viewed_token(host, partner, product, impression="seen-1")
    process = subprocess.Popen(
        [sys.executable, "-c", FOLLOWS_A_CLICK_AND_WAITS, token, BROWSER],
        cwd=ROOT, env=production_env(journal_dir), stdout=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        location, journal = process.stdout.readline().split()
        assert location.startswith(product.url)  # the shopper got the redirect
        assert not Click.objects.exists()  # journaled, not inserted yet

        # While its process lives, the journal is its own: a replay leaves it alone.
        assert click_journal.recover_orphans() == 0
        assert Path(journal).exists()
        assert not Click.objects.exists()
    finally:
        process.send_signal(signal.SIGKILL)  # as an OOM kill would
        process.wait(timeout=30)

    tasks.settle_clicks()  # the worker's sweep replays it (and settles it, once old enough)
    time.sleep(clicks.SETTLE_LAG.total_seconds())
    tasks.settle_clicks()  # the next sweep settles it, if the first did not
    tasks.settle_clicks()  # and again: nothing is inserted or billed twice

    (click,) = Click.objects.all()
    assert (click.billable, click.reason) == (True, "billable")
    reference = location.split(f"{attribution.REFERENCE_PARAMETER}=")[1]
    assert attribution.record_landing(store=partner, reference=reference) == "landed"
    assert ledger.balance(host) == rules.STARTER_GRANT + rules.EARN_PER_CLICK
    assert ledger.balance(partner) == rules.STARTER_GRANT - rules.SPEND_PER_CLICK
    assert not Path(journal).exists()


def test_replaying_a_journal_whose_clicks_were_inserted_inserts_nothing_twice(
    pair,
    journal_dir,
):
    """A process that died after its insert and before emptying its journal, or two
    processes replaying one journal: the ids the journal holds are inserted once."""
    recorded = record_viewed_clicks(*pair, 2)
    journal = runtime.click_journal
    copy = journal_dir / "clicks-copy-of-a-dead-process.jsonl"
    shutil.copy(journal.path, copy)  # the lines as they were before the insert

    assert journal.save() == 2
    assert journal.path.stat().st_size == 0  # emptied once everything in it is inserted
    assert click_journal.recover_orphans() == 0
    assert click_journal.recover_orphans() == 0

    assert sorted(Click.objects.values_list("pk", flat=True)) == sorted(c.pk for c in recorded)
    assert not copy.exists()


def test_a_click_deleted_after_its_insert_does_not_come_back_with_the_next_one(pair, journal_dir):
    """A replayed journal is used up: a click deleted after its insert (a shop's data
    redacted) is not inserted again when the next journal is replayed."""
    (first, second), (line, later) = journaled(pair, 2)
    (journal_dir / "clicks-dead.jsonl").write_bytes(line)
    assert click_journal.recover_orphans() == 1
    Click.objects.filter(pk=first.pk).delete()

    (journal_dir / "clicks-dead-too.jsonl").write_bytes(later)

    assert click_journal.recover_orphans() == 1
    assert list(Click.objects.values_list("pk", flat=True)) == [second.pk]


def journaled(pair, count: int) -> tuple[list[Click], list[bytes]]:
    """``count`` clicks of different shoppers journaled by this process, which then stops
    without inserting them; their lines, to be laid out as a dead process's journal."""
    recorded = record_viewed_clicks(*pair, count)
    journal = runtime.click_journal
    lines = journal.path.read_bytes().splitlines(keepends=True)
    journal.path.unlink()
    runtime.reset()
    return recorded, lines


def test_a_line_cut_short_is_set_aside_and_the_rest_of_the_journal_replayed(
    pair, journal_dir, caplog
):
    (first, _), (line, cut) = journaled(pair, 2)
    orphan = journal_dir / "clicks-dead.jsonl"
    orphan.write_bytes(line + cut[: len(cut) // 2])  # the process died inside write()

    assert click_journal.recover_orphans() == 1

    assert list(Click.objects.values_list("pk", "reason")) == [(first.pk, CLICK_PENDING)]
    assert "set aside unreadable lines of a click journal" in caplog.text
    kept = _set_aside_file(journal_dir, "clicks-dead.jsonl").read_bytes()
    assert kept == cut[: len(cut) // 2] + b"\n"  # for an operator to look at, not lost
    assert not orphan.exists()


@pytest.mark.parametrize(
    ("field", "value"),
    [("target_store_id", 987_654), ("visitor_hash", "f" * 65)],
    ids=["a store that is not there", "a value longer than its column"],
)
def test_a_click_the_database_refuses_on_its_own_is_set_aside_and_holds_up_no_other(
    pair, journal_dir, caplog, field, value
):
    """A row that can never be inserted (a store that is not there: refused as the round
    commits; a value too long for its column: refused by its statement) must not keep the
    clicks journaled with it out of the table, round after round."""
    recorded, lines = journaled(pair, 3)
    poisoned = json.loads(lines[1])
    poisoned[field] = value
    lines[1] = json.dumps(poisoned).encode() + b"\n"
    (journal_dir / "clicks-dead.jsonl").write_bytes(b"".join(lines))

    assert click_journal.recover_orphans() == 2

    assert sorted(Click.objects.values_list("pk", flat=True)) == [recorded[0].pk, recorded[2].pk]
    assert "the database refuses a journaled click" in caplog.text
    (kept,) = _set_aside_file(journal_dir, "clicks-dead.jsonl").read_text().splitlines()
    assert json.loads(kept)["id"] == recorded[1].pk


def test_a_journal_line_cannot_make_a_click_billable(pair, journal_dir):
    """Whatever a line says of billing, a replayed click is pending: the rules decide."""
    (click,), (line,) = journaled(pair, 1)
    forged = {**json.loads(line), "billable": True, "reason": "billable"}
    (journal_dir / "clicks-dead.jsonl").write_text(json.dumps(forged) + "\n")

    assert click_journal.recover_orphans() == 1

    assert Click.objects.filter(billable=False, reason=CLICK_PENDING, pk=click.pk).exists()


def test_a_journal_written_by_another_release_is_replayed_as_far_as_it_goes(pair, journal_dir):
    """A deploy between a process's death and its replay: a field the line lacks (added
    since, with a default) takes its default, one the model no longer has is dropped."""
    (click,), (line,) = journaled(pair, 1)
    older = json.loads(line)
    del older["user_agent"]
    older["field_since_removed"] = 1
    (journal_dir / "clicks-dead.jsonl").write_text(json.dumps(older) + "\n")

    assert click_journal.recover_orphans() == 1

    replayed = Click.objects.get(pk=click.pk)
    assert (replayed.user_agent, replayed.reason) == ("", CLICK_PENDING)


def test_a_journal_directory_others_can_write_to_is_refused_and_clicks_are_inserted_directly(
    pair, journal_dir, caplog
):
    journal_dir.mkdir(mode=0o700)
    journal_dir.chmod(0o777)  # anyone could lay out journals to be replayed
    host, partner, product = pair
    token = tokens.read_click_token(viewed_token(host, partner, product, impression="seen-1"))

    click = clicks.record_click(token=token, ip="203.0.113.9", user_agent=BROWSER)

    assert Click.objects.get().pk == click.pk  # in the table at once, as without a journal
    assert "is not private to this user" in caplog.text
    assert not list(journal_dir.iterdir())


def test_clicks_made_while_their_journal_is_inserted_move_to_a_new_journal(pair, journal_dir):
    """Under steady load clicks keep coming while a round inserts: the journal must not
    keep every click the process ever made until a quiet moment comes."""
    (first,) = record_viewed_clicks(*pair, 1, prefix="first")
    journal = runtime.click_journal
    with connection.cursor() as cursor:  # an insert that takes a while, as under load
        cursor.execute(
            "CREATE FUNCTION slow_click() RETURNS trigger LANGUAGE plpgsql AS "
            "$$ BEGIN PERFORM pg_sleep(0.5); RETURN NEW; END $$"
        )
        cursor.execute(
            "CREATE TRIGGER slow_click BEFORE INSERT ON recommender_click "
            "FOR EACH ROW EXECUTE FUNCTION slow_click()"
        )
    try:
        saving = threading.Thread(target=lambda: close_old_connections_after(journal.save))
        saving.start()
        time.sleep(0.2)
        (second,) = record_viewed_clicks(*pair, 1, prefix="second")  # while the first goes in
        saving.join(10)
    finally:
        stop_refusing("slow_click", table="recommender_click")

    assert [c.pk for c in Click.objects.all()] == [first.pk]
    (only,) = journal.path.read_bytes().splitlines()
    assert json.loads(only)["id"] == second.pk
    assert [p.name for p in journal_dir.glob("clicks-*.jsonl")] == [journal.path.name]

    runtime.reset()  # the process stops (its journal left unlocked, the second unsaved)
    assert click_journal.recover_orphans() == 1
    assert sorted(Click.objects.values_list("pk", flat=True)) == sorted([first.pk, second.pk])


def close_old_connections_after(run) -> None:
    try:
        run()
    finally:
        connection.close()


def test_a_process_stopping_on_purpose_inserts_its_clicks_on_the_way_out(pair, journal_dir):
    host, partner, product = pair
    token = viewed_token(host, partner, product, impression="seen-1")
    stops = FOLLOWS_A_CLICK_AND_WAITS.replace("time.sleep(600)", "sys.exit(0)  # a deploy")

    done = subprocess.run(
        [sys.executable, "-c", stops, token, BROWSER], cwd=ROOT, env=production_env(journal_dir),
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip

    assert done.returncode == 0, done.stderr
    assert Click.objects.get().reason == CLICK_PENDING  # inserted as it stopped
    assert not click_journal.holds_clicks(journal_dir)
    assert not list(journal_dir.glob("clicks-*.jsonl"))


def test_clicks_the_database_refuses_to_insert_stay_journaled_and_are_inserted_later(
    rf,
    pair,
    journal_dir,
):
    """A database that refuses the insert (a full disk, a failover): the shopper is
    redirected anyway, and the process's own thread inserts and bills the click once the
    database takes it again; nothing waits for the minute's sweep."""
    host, partner, product = pair
    token = viewed_token(host, partner, product, impression="seen-1", ip="127.0.0.1")
    refuse("refuse_click", on="INSERT ON recommender_click", message="no space left on device")
    try:
        response = storefront.click(
            rf.get(proxied("click", t=token), HTTP_USER_AGENT=BROWSER, REMOTE_ADDR="127.0.0.1")
        )
        assert response.status_code == 302
        assert response["Location"].startswith(product.url)
        response.close()  # what the WSGI server does once the redirect is sent
        time.sleep(clicks.JOURNAL_GATHER_SECONDS + 0.5)  # a round of its thread: refused
        assert not Click.objects.exists()
        assert runtime.click_journal.unsaved() == 1
    finally:
        stop_refusing("refuse_click", table="recommender_click")

    wait_until_clicks_settled()  # no other click comes: the thread tries again itself

    (click,) = Click.objects.all()
    assert (click.billable, click.reason) == (True, "billable")
    assert ledger.balance(partner) == rules.STARTER_GRANT - rules.SPEND_PER_CLICK


def test_a_landing_reported_before_the_click_is_inserted_is_recorded_once_it_is(
    pair,
    journal_dir,
):
    host, partner, product = pair
    token = tokens.read_click_token(viewed_token(host, partner, product, impression="seen-1"))
    click = clicks.record_click(token=token, ip="203.0.113.9", user_agent=BROWSER)
    assert not Click.objects.filter(pk=click.pk).exists()
    clicks.settle_after_response()  # its thread inserts it a moment later

    reference = attribution.click_reference(click)
    assert attribution.record_landing(store=partner, reference=reference) == "landed"

    assert Click.objects.get(pk=click.pk).landed_at is not None


def test_a_journaled_click_is_settled_once_every_process_had_time_to_insert_earlier_ones(
    pair, journal_dir
):
    """Another process may still hold a click made a moment before this one in its
    journal: settling waits until the click is SETTLE_LAG old, so the rules see both in
    the order they happened."""
    host, partner, product = pair
    token = tokens.read_click_token(viewed_token(host, partner, product, impression="seen-1"))
    clicks.record_click(token=token, ip="203.0.113.9", user_agent=BROWSER)
    assert runtime.click_journal.save() == 1

    assert clicks.settle_clicks() == 0  # too young
    assert Click.objects.get().reason == CLICK_PENDING

    Click.objects.update(created_at=F("created_at") - clicks.SETTLE_LAG)  # a second later
    assert clicks.settle_clicks() == 1
    assert Click.objects.get().reason == "billable"


def test_only_a_fresh_reference_waits_for_a_click_that_is_not_in_the_table(pair, journal_dir):
    """A reference replayed long after its click must not hold a web process: it is
    looked up once and refused."""
    _, partner, _ = pair
    missing = Click(pk=987_654_321, target_store=partner)  # never inserted
    with mock.patch("time.time", return_value=time.time() - 60):
        old = attribution.click_reference(missing)
    fresh = attribution.click_reference(missing)

    lookups = {}
    for name, reference in (("old", old), ("fresh", fresh)):
        with (
            CaptureQueriesContext(connection) as queries,
            pytest.raises(attribution.AttributionRefused),
        ):
            attribution.record_landing(store=partner, reference=reference)
        lookups[name] = sum('FROM "recommender_click"' in q["sql"] for q in queries)

    assert lookups["old"] == 1
    assert lookups["fresh"] > 1  # it waited for the click to be inserted


def test_set_aside_lines_are_kept_no_longer_than_the_shopper_data_they_hold(
    pair, journal_dir, caplog
):
    """Lines set aside (cut short, or refused by the database) hold a shopper's agent and
    hashes, which every click row forgets after rules.SHOPPER_DATA_RETENTION: the journal
    sweep deletes a set-aside file once nothing was added to it for that long."""
    _, lines = journaled(pair, 2)
    old = journal_dir / "rejected-clicks-old.jsonl"
    young = journal_dir / "rejected-clicks-young.jsonl"
    old.write_bytes(lines[0])
    young.write_bytes(lines[1])
    long_ago = time.time() - rules.SHOPPER_DATA_RETENTION.total_seconds() - 3600
    os.utime(old, (long_ago, long_ago))
    lately = time.time() - rules.SHOPPER_DATA_RETENTION.total_seconds() + 3600
    os.utime(young, (lately, lately))

    assert click_journal.recover_orphans() == 0

    assert not old.exists()
    assert young.read_bytes() == lines[1]  # for an operator to look at while it may be kept
    assert "deleted set-aside click journal lines past the shopper data retention" in caplog.text
    assert Click.objects.count() == 0  # deleted, not replayed


def test_set_aside_lines_of_a_redacted_store_go_with_its_other_data(pair, journal_dir):
    """shop/redact erases what is held of a store's shoppers; set-aside lines of clicks to
    or from it hold their agents and hashes, on the web machines' disks where the worker's
    redaction cannot reach. The journal sweep each machine runs drops them (lines of other
    stores' clicks stay, and so does a line nobody can read, until the retention)."""
    host, partner, _ = pair
    _, (line, other) = journaled(pair, 2)
    elsewhere = json.loads(other)
    elsewhere.update(
        source_store_id=make_store("third").pk, target_store_id=make_store("fourth").pk
    )
    unreadable = b'{"id": 7, "user_agent": "cut sh'
    kept = journal_dir / "rejected-20261101-clicks-dead.jsonl"
    kept.write_bytes(line + (json.dumps(elsewhere) + "\n").encode() + unreadable + b"\n")
    written = time.time() - 20 * 86400  # 20 days ago: 10 days of its retention left
    os.utime(kept, (written, written))
    Store.objects.filter(pk=partner.pk).update(status=Store.Status.REDACTED)

    click_journal.recover_orphans()

    left = kept.read_bytes().splitlines()
    assert [json.loads(left[0]), left[1]] == [elsewhere, unreadable]
    # Taking lines out is no new line: the others keep their 10 days, not 30 more.
    assert kept.stat().st_mtime == pytest.approx(written, abs=1)

    Store.objects.exclude(pk__in=[host.pk, partner.pk]).update(status=Store.Status.REDACTED)
    click_journal.recover_orphans()
    assert kept.read_bytes() == unreadable + b"\n"


def test_a_journaled_click_whose_id_the_database_handed_out_again_is_set_aside(
    pair, journal_dir, settings, caplog
):
    """The clicks' sequence set back (a restore, a failover to a replica that was behind):
    the database hands out again an id a process journaled a click under, and another
    click takes it first. The journaled click was logged and forgotten, its journal
    emptied: a click whose shopper got the redirect, lost. It is set aside instead."""
    (journaled,) = record_viewed_clicks(*pair, 1, prefix="j")
    journal = runtime.click_journal
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT setval(pg_get_serial_sequence('recommender_click', 'id'), %s, false)",
            [journaled.pk],
        )
    settings.RECOMMENDER_CLICK_JOURNAL = False  # a process inserting in the request
    (other,) = record_viewed_clicks(*pair, 1, prefix="o")
    settings.RECOMMENDER_CLICK_JOURNAL = True
    assert other.pk == journaled.pk

    journal.save()

    assert Click.objects.get(pk=other.pk).impression_id == other.impression_id  # untouched
    (kept,) = journal_dir.glob("rejected-*")
    assert json.loads(kept.read_text())["impression_id"] == journaled.impression_id
    assert "a journaled click's id is another click's" in caplog.text
