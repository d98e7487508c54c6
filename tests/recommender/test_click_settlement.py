"""Clicks are written before the redirect and settled after it: faults on the way lose no
click and bill none twice."""

from __future__ import annotations

import hmac
import os
import subprocess
import sys
import threading
import time
from datetime import timedelta
from decimal import Decimal
from pathlib import Path

import psycopg
import pytest
from django.core.signals import request_finished
from django.db import (
    DatabaseError,
    IntegrityError,
    close_old_connections,
    connection,
    transaction,
)
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from recommender import runtime, tasks
from recommender.exchange import clicks, impressions, ledger, locks, macs, review, rules, tokens
from recommender.models import CLICK_PENDING, Click, Impression, LedgerEntry
from recommender.web import storefront
from tests.conftest import wait_until_clicks_settled
from tests.recommender.test_storefront_endpoints import proxied

ROOT = Path(__file__).resolve().parent.parent.parent
BROWSER = "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 Chrome/156.0 Safari/537.36"

# A storefront process that follows one click and dies the moment its redirect exists,
# before the request could finish (and settle): what a SIGKILL or an OOM kill does.
DIES_AFTER_THE_REDIRECT = """
import os, sys
import django
django.setup()
from recommender.exchange import clicks
from stores.models import Store
host = Store.objects.get(shop_domain="host.myshopify.com")
outcome = clicks.follow_click(host=host, raw_token=sys.argv[1], ip="203.0.113.9",
                              user_agent=sys.argv[2])
print(outcome.location, flush=True)
os._exit(137)
"""


def viewed_token(host, partner, product, *, impression: str, ip: str = "203.0.113.9") -> str:
    """A click token for a view the shopper really saw (impression recorded)."""
    visitor = rules.visitor(ip=ip, user_agent=BROWSER)
    raw = tokens.sign_impression(
        store_id=host.pk, impression_id=impression, items=4, partner_items=3, visitor=visitor
    )
    assert impressions.record_impression(host=host, raw=raw, ip=ip, user_agent=BROWSER) == (
        "counted"
    )
    return tokens.issue_click_token(
        impression_id=impression, source_store_id=host.pk, target_store_id=partner.pk,
        target_product_id=product.shopify_id,
    )  # fmt: skip


def refuse(name: str, *, on: str, message: str, when: str = "") -> None:
    """A fault inside the database: a trigger ``name`` on ``on`` (e.g. "INSERT ON
    recommender_ledgerentry") that raises ``message``, as a full disk or a bad block would."""
    with connection.cursor() as cursor:
        cursor.execute(
            f"CREATE FUNCTION {name}() RETURNS trigger LANGUAGE plpgsql AS "
            f"$$ BEGIN RAISE EXCEPTION '{message}'; END $$"
        )
        cursor.execute(
            f"CREATE TRIGGER {name} BEFORE {on} FOR EACH ROW {when} EXECUTE FUNCTION {name}()"
        )


def stop_refusing(name: str, *, table: str) -> None:
    with connection.cursor() as cursor:
        cursor.execute(f"DROP TRIGGER {name} ON {table}")
        cursor.execute(f"DROP FUNCTION {name}()")


@pytest.mark.django_db(transaction=True)
def test_a_click_whose_process_died_after_the_redirect_is_billed_once_by_the_sweep(pair):
    if connection.vendor != "postgresql":
        pytest.fail("the dying-process check runs against PostgreSQL (scripts/pg.sh)")
    host, partner, product = pair
    token = viewed_token(host, partner, product, impression="seen-1")
    db = connection.settings_dict
    env = {**os.environ, "DJANGO_SETTINGS_MODULE": "interlayer.test_settings",
           "DATABASE_URL": f"postgres://{db['USER']}@{db['HOST']}:{db['PORT']}/{db['NAME']}"}  # fmt: skip

    died = subprocess.run(
        [sys.executable, "-c", DIES_AFTER_THE_REDIRECT, token, BROWSER],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=120,
    )  # fmt: skip

    assert died.returncode == 137, died.stderr
    assert died.stdout.startswith(product.url)  # the shopper got the redirect
    (click,) = Click.objects.all()
    assert click.reason == CLICK_PENDING  # durable, not yet billed
    assert ledger.balance(host) == rules.STARTER_GRANT

    tasks.settle_clicks()  # the worker's sweep
    tasks.settle_clicks()  # and again: nothing is billed twice

    click.refresh_from_db()
    assert (click.billable, click.reason) == (True, "billable")
    assert ledger.balance(host) == rules.STARTER_GRANT + rules.EARN_PER_CLICK
    assert ledger.balance(partner) == rules.STARTER_GRANT - rules.SPEND_PER_CLICK


@pytest.mark.django_db(transaction=True)
def test_a_click_on_a_connection_the_database_dropped_is_recorded_once_and_redirected(rf, pair):
    """The click's INSERT runs without a health check ahead of it, so it is the INSERT that
    meets a connection the database has closed (a restart, a failover, an idle timeout):
    the click is recorded on a new connection, not lost to an error page."""
    if connection.vendor != "postgresql":
        pytest.fail("the fault is a PostgreSQL backend terminated (scripts/pg.sh)")
    host, partner, product = pair
    # A busy storefront process: the store and the partner's product already known to it
    # (another shopper clicked it).
    warm = viewed_token(host, partner, product, impression="seen-0", ip="203.0.113.7")
    storefront.click(
        rf.get(proxied("click", t=warm), HTTP_USER_AGENT=BROWSER, REMOTE_ADDR="203.0.113.7")
    )
    token = viewed_token(host, partner, product, impression="seen-1", ip="127.0.0.1")
    dropped = connection.connection.info.backend_pid
    params = connection.get_connection_params()
    with psycopg.connect(**params, autocommit=True) as operator:  # a restart, as it were
        operator.execute("SELECT pg_terminate_backend(%s)", [dropped])
    request = rf.get(proxied("click", t=token), HTTP_USER_AGENT=BROWSER, REMOTE_ADDR="127.0.0.1")

    response = storefront.click(request)

    assert response.status_code == 302
    assert response["Location"].startswith(product.url)
    assert connection.connection.info.backend_pid != dropped
    (click,) = Click.objects.filter(impression_id="seen-1")  # once, not twice
    assert click.reason == CLICK_PENDING
    tasks.settle_clicks()
    click.refresh_from_db()
    assert (click.billable, click.reason) == (True, "billable")


@pytest.mark.django_db(transaction=True)
def test_a_click_the_database_cancels_is_not_tried_again_on_a_new_connection(pair, caplog):
    """A statement cancelled on a healthy connection (here a statement timeout) is an
    error for this click, not a lost connection: no second INSERT, no new connection."""
    if connection.vendor != "postgresql":
        pytest.fail("the fault is a PostgreSQL statement timeout (scripts/pg.sh)")
    host, partner, product = pair
    token = tokens.read_click_token(viewed_token(host, partner, product, impression="seen-1"))
    with connection.cursor() as cursor:
        cursor.execute(
            "CREATE FUNCTION slow_click() RETURNS trigger LANGUAGE plpgsql AS "
            "$$ BEGIN PERFORM pg_sleep(2); RETURN NEW; END $$"
        )
        cursor.execute(
            "CREATE TRIGGER slow_click BEFORE INSERT ON recommender_click "
            "FOR EACH ROW EXECUTE FUNCTION slow_click()"
        )
        cursor.execute("SET statement_timeout = 200")
    backend = connection.connection.info.backend_pid
    try:
        with pytest.raises(psycopg.errors.QueryCanceled):
            clicks.record_click(token=token, ip="203.0.113.9", user_agent=BROWSER)
        assert connection.connection.info.backend_pid == backend
        assert "trying a new one" not in caplog.text
    finally:
        with connection.cursor() as cursor:
            cursor.execute("SET statement_timeout = 0")
        stop_refusing("slow_click", table="recommender_click")
    assert not Click.objects.exists()


@pytest.mark.django_db
def test_a_settling_batch_that_fails_midway_bills_nothing_and_is_settled_whole_later(pair):
    if connection.vendor != "postgresql":
        pytest.fail("the fault is a PostgreSQL trigger (scripts/pg.sh)")
    host, partner, product = pair
    record_viewed_clicks(host, partner, product, 3)
    # The ledger write fails, as a full disk would.
    refuse(
        "refuse_entry", on="INSERT ON recommender_ledgerentry", message="no space left on device"
    )

    with pytest.raises(DatabaseError, match="no space left"):
        clicks.settle_clicks()

    assert set(Click.objects.values_list("reason", flat=True)) == {CLICK_PENDING}
    assert not Click.objects.filter(billable=True).exists()
    assert not LedgerEntry.objects.exclude(kind=LedgerEntry.Kind.GRANT).exists()

    stop_refusing("refuse_entry", table="recommender_ledgerentry")
    assert clicks.settle_clicks() == 3
    assert clicks.settle_clicks() == 0

    # Three views, three clicks of the same product by three shoppers: each bills once.
    assert Click.objects.filter(billable=True).count() == 3
    assert ledger.balance(partner) == rules.STARTER_GRANT - 3 * rules.SPEND_PER_CLICK


@pytest.mark.django_db
def test_the_click_is_written_before_the_redirect_and_billed_once_the_response_is_done(
    rf, pair, settings
):
    settings.RECOMMENDER_STATE_TTL_SECONDS = 0
    host, partner, product = pair
    token = viewed_token(host, partner, product, impression="seen-1", ip="127.0.0.1")
    request = rf.get(proxied("click", t=token), HTTP_USER_AGENT=BROWSER, REMOTE_ADDR="127.0.0.1")

    response = storefront.click(request)

    assert response.status_code == 302
    assert Click.objects.get().reason == CLICK_PENDING  # durable before the shopper leaves
    assert ledger.balance(host) == rules.STARTER_GRANT

    # What the WSGI server does once the redirect is sent. (As Django's test client does,
    # without closing the test's own database connection at the end of the request.)
    request_finished.disconnect(close_old_connections)
    try:
        response.close()
    finally:
        request_finished.connect(close_old_connections)

    assert Click.objects.get().reason == "billable"
    assert ledger.balance(host) == rules.STARTER_GRANT + rules.EARN_PER_CLICK


@pytest.mark.django_db(transaction=True)
def test_the_settling_thread_survives_a_failing_round_and_settles_on_the_next(pair, settings):
    if connection.vendor != "postgresql":
        pytest.fail("the fault is a PostgreSQL trigger (scripts/pg.sh)")
    settings.RECOMMENDER_SETTLE_CLICKS_BEHIND = True
    host, partner, product = pair
    token = tokens.read_click_token(viewed_token(host, partner, product, impression="seen-1"))
    clicks.record_click(token=token, ip="203.0.113.9", user_agent=BROWSER)
    refuse(
        "refuse_entry", on="INSERT ON recommender_ledgerentry", message="no space left on device"
    )
    try:
        clicks.settle_after_response()  # the thread's round fails inside the database
        time.sleep(1.5)
        assert Click.objects.get().reason == CLICK_PENDING
    finally:
        stop_refusing("refuse_entry", table="recommender_ledgerentry")

    clicks.settle_after_response()  # the next click's response wakes it again
    wait_until_clicks_settled()

    assert Click.objects.get().reason == "billable"
    assert ledger.balance(host) == rules.STARTER_GRANT + rules.EARN_PER_CLICK


@pytest.mark.parametrize("key_length", [0, 16, 32, 64, 65, 200])
def test_the_storefronts_mac_is_hmac_sha256(key_length):
    key = bytes(range(256))[:key_length]
    for message in (b"", b"impression", bytes(range(256)) * 3):
        assert macs.Mac(key).digest(message) == hmac.digest(key, message, "sha256")


def record_viewed_clicks(host, partner, product, count: int, *, prefix: str = "b") -> list[Click]:
    """``count`` clicks of different shoppers (each from its own address, after its own view),
    recorded and not yet settled: what a settling round finds when they came at once."""
    recorded = []
    for n in range(count):
        ip = f"198.51.100.{n + 1}"
        token = viewed_token(host, partner, product, impression=f"{prefix}{n}", ip=ip)
        recorded.append(
            clicks.record_click(token=tokens.read_click_token(token), ip=ip, user_agent=BROWSER)
        )
    return recorded


@pytest.mark.django_db
def test_review_holds_the_clicks_of_one_round_once_the_earlier_ones_make_the_rate_too_high(
    pair, settings
):
    settings.RECOMMENDER_STATE_TTL_SECONDS = 0
    host, partner, product = pair
    allowed = review.CLICKS_BEFORE_A_HOLD
    record_viewed_clicks(host, partner, product, allowed + 3)

    assert clicks.settle_clicks() == allowed + 3  # one round settles them all

    reasons = list(Click.objects.order_by("pk").values_list("reason", flat=True))
    assert reasons == ["billable"] * allowed + [rules.HELD_FOR_REVIEW] * 3
    assert ledger.held_earnings(host) == 3 * rules.EARN_PER_CLICK
    assert ledger.balance(partner) == rules.STARTER_GRANT - allowed * rules.SPEND_PER_CLICK


@pytest.mark.django_db
def test_clicks_are_settled_in_the_order_they_happened_not_the_order_of_their_ids(pair, settings):
    """Journaling processes take ids in blocks, so a later click can have a smaller id
    than an earlier one of another process. Settled by id, each of a script's clicks
    would be judged before the earlier ones had billed, and review would never hold."""
    settings.RECOMMENDER_STATE_TTL_SECONDS = 0
    host, partner, product = pair
    allowed = review.CLICKS_BEFORE_A_HOLD
    recorded = record_viewed_clicks(host, partner, product, allowed + 3)
    start = timezone.now() - timedelta(seconds=30)
    for n, click in enumerate(reversed(recorded)):  # the largest id happened first
        Click.objects.filter(pk=click.pk).update(created_at=start + timedelta(seconds=n))

    assert clicks.settle_clicks() == allowed + 3

    reasons = list(Click.objects.order_by("created_at").values_list("reason", flat=True))
    assert reasons == ["billable"] * allowed + [rules.HELD_FOR_REVIEW] * 3
    assert ledger.held_earnings(host) == 3 * rules.EARN_PER_CLICK


@pytest.mark.django_db
def test_views_a_script_makes_after_its_clicks_do_not_lift_the_hold_on_them(pair, settings):
    """Settling comes a moment after the clicks (the settling thread gathers them), and a
    script goes on viewing meanwhile: each click is judged by the views made up to it."""
    settings.RECOMMENDER_STATE_TTL_SECONDS = 60  # as served: the answer is kept a while
    host, partner, product = pair
    allowed = review.CLICKS_BEFORE_A_HOLD
    record_viewed_clicks(host, partner, product, allowed + 3)
    later = timezone.now() + timedelta(seconds=1)
    visitor = rules.visitor(ip="198.51.100.200", user_agent=BROWSER)
    for n in range(40):  # viewed after every click, never clicked
        Impression.objects.create(
            store=host, impression_id=f"later-{n}", visitor_hash=visitor.current,
            items=4, partner_items=3, created_at=later,
        )  # fmt: skip

    clicks.settle_clicks()

    reasons = list(Click.objects.order_by("pk").values_list("reason", flat=True))
    assert reasons == ["billable"] * allowed + [rules.HELD_FOR_REVIEW] * 3
    assert ledger.held_earnings(host) == 3 * rules.EARN_PER_CLICK


@pytest.mark.django_db
def test_a_partner_that_can_pay_one_click_pays_one_click_of_a_round(pair):
    host, partner, product = pair
    LedgerEntry.objects.create(store=partner, kind=LedgerEntry.Kind.SPEND,
                               amount=-(rules.STARTER_GRANT - Decimal("1.50")))  # fmt: skip
    record_viewed_clicks(host, partner, product, 2)

    assert clicks.settle_clicks() == 2

    reasons = list(Click.objects.order_by("pk").values_list("reason", flat=True))
    assert reasons == ["billable", "partner cannot pay"]
    assert ledger.balance(partner) == Decimal("0.50")
    assert ledger.balance(host) == rules.STARTER_GRANT + rules.EARN_PER_CLICK


@pytest.mark.django_db
def test_held_clicks_of_a_round_charge_nobody_and_leave_the_partners_credit_to_later_ones(
    pair, settings
):
    settings.RECOMMENDER_STATE_TTL_SECONDS = 0
    host, partner, product = pair
    LedgerEntry.objects.create(store=partner, kind=LedgerEntry.Kind.SPEND,
                               amount=-(rules.STARTER_GRANT - Decimal("1.50")))  # fmt: skip
    # The host clicked far more than it was viewed today: its new earnings are held.
    Click.objects.bulk_create(
        Click(source_store=host, target_store=partner, target_product_id=10_000 + n,
              impression_id=f"before-{n}", token_id=f"before-{n}", visitor_hash=f"other-{n}",
              ip_hash=f"address-{n}", billable=True, reason="billable")
        for n in range(review.CLICKS_BEFORE_A_HOLD)
    )  # fmt: skip
    record_viewed_clicks(host, partner, product, 2)

    assert clicks.settle_clicks() == 2

    settled = Click.objects.filter(reason__in=[CLICK_PENDING, rules.HELD_FOR_REVIEW,
                                                "partner cannot pay"])  # fmt: skip
    assert list(settled.order_by("pk").values_list("reason", flat=True)) == [
        rules.HELD_FOR_REVIEW, rules.HELD_FOR_REVIEW,
    ]  # fmt: skip
    assert ledger.balance(partner) == Decimal("1.50")  # charged for neither while held
    assert ledger.held_earnings(host) == 2 * rules.EARN_PER_CLICK


@pytest.mark.django_db(transaction=True)
def test_the_settling_thread_stops_when_asked_while_it_lets_clicks_gather(settings):
    settings.RECOMMENDER_SETTLE_CLICKS_BEHIND = True
    clicks.settle_after_response()  # this process's settling thread starts and is woken
    time.sleep(clicks.JOURNAL_GATHER_SECONDS / 2)  # it lets the clicks of the moment gather

    asked = time.monotonic()
    runtime.reset()  # stops it (a test's fresh start, a forked worker's)

    assert time.monotonic() - asked < 2
    assert not [t for t in threading.enumerate() if t.name == "click-settler" and t.is_alive()]


@pytest.mark.django_db
def test_a_click_the_database_refuses_to_settle_holds_up_no_click_after_it(pair):
    if connection.vendor != "postgresql":
        pytest.fail("the fault is a PostgreSQL trigger (scripts/pg.sh)")
    host, partner, product = pair
    poison, *others = record_viewed_clicks(host, partner, product, 3)
    refuse("refuse_click", on="UPDATE ON recommender_click",  # one row it will not change
           message="could not read block 7 of relation", when=f"WHEN (OLD.id = {int(poison.pk)})")  # fmt: skip

    with pytest.raises(DatabaseError, match="could not read block"):  # reported, not hidden
        clicks.settle_clicks()
    with pytest.raises(DatabaseError, match="could not read block"):  # the next round
        clicks.settle_clicks()

    poison.refresh_from_db()
    assert poison.reason == CLICK_PENDING  # left for a later round, not dropped
    assert [Click.objects.get(pk=c.pk).reason for c in others] == ["billable", "billable"]
    assert ledger.balance(partner) == rules.STARTER_GRANT - 2 * rules.SPEND_PER_CLICK

    stop_refusing("refuse_click", table="recommender_click")
    assert clicks.settle_clicks() == 1
    assert ledger.balance(partner) == rules.STARTER_GRANT - 3 * rules.SPEND_PER_CLICK


def _rows_examined(plan: dict) -> int:
    """Rows a plan node and its children read (returned or filtered away), per EXPLAIN. A
    bitmap index scan's rows are not counted: its heap scan counts again the live rows they
    lead to, and its own count includes index entries of rows other tests' rolled-back
    transactions left dead (until a vacuum), which no query reads."""
    own = plan.get("Actual Rows", 0) + plan.get("Rows Removed by Filter", 0)
    own += plan.get("Rows Removed by Index Recheck", 0)
    if plan.get("Node Type") == "Bitmap Index Scan":
        own = 0
    return own + sum(_rows_examined(child) for child in plan.get("Plans", []))


@pytest.mark.django_db
def test_settling_reads_a_shoppers_billable_history_not_every_click_they_made(pair):
    """A bot that has clicked thousands of times without billing must not make every
    settling round read all of those clicks: no query of a round does, the rules need only
    the billable ones."""
    if connection.vendor != "postgresql":
        pytest.fail("the plans are PostgreSQL's (scripts/pg.sh)")
    host, partner, product = pair
    visitor = rules.visitor(ip="203.0.113.9", user_agent=BROWSER)
    address = rules.ip_hashes("203.0.113.9")[0]
    earlier = timezone.now() - timedelta(minutes=5)
    Click.objects.bulk_create(
        Click(source_store=host, target_store=partner, target_product_id=product.shopify_id,
              impression_id=f"earlier-{n}", token_id=f"token-{n}", visitor_hash=visitor.current,
              ip_hash=address, reason="impression already clicked", user_agent=BROWSER,
              created_at=earlier)
        for n in range(3000)
    )  # fmt: skip
    token = tokens.read_click_token(viewed_token(host, partner, product, impression="new"))
    clicks.record_click(token=token, ip="203.0.113.9", user_agent=BROWSER)
    with connection.cursor() as cursor:
        cursor.execute("ANALYZE recommender_click")

    with CaptureQueriesContext(connection) as queries:
        assert clicks.settle_clicks() == 1

    reads = [
        query["sql"] for query in queries
        if query["sql"].startswith("SELECT") and 'FROM "recommender_click"' in query["sql"]
    ]  # fmt: skip
    assert any('"billable"' in sql for sql in reads)  # the rules did look at the history
    for sql in reads:
        with connection.cursor() as cursor:
            cursor.execute(f"EXPLAIN (ANALYZE, FORMAT JSON) {sql}")
            (plan,) = cursor.fetchone()[0]
        assert _rows_examined(plan["Plan"]) < 20, sql
    assert Click.objects.get(impression_id="new").billable


@pytest.mark.django_db(transaction=True)
def test_the_settling_thread_settles_its_click_once_another_settler_lets_go(pair, settings):
    """Another process holding the billing lock when this one's click came (a settler that
    read its batch before the click was written, or review releasing held clicks) must not
    leave that click to the minute's sweep."""
    settings.RECOMMENDER_SETTLE_CLICKS_BEHIND = True
    host, partner, product = pair
    holding, let_go = threading.Event(), threading.Event()

    def another_settler() -> None:
        try:
            with transaction.atomic():
                assert locks.try_lock_for_transaction(locks.BILLING)
                holding.set()
                let_go.wait(10)  # settles nothing: its batch was read before the click
        finally:
            close_old_connections()

    other = threading.Thread(target=another_settler)
    other.start()
    try:
        assert holding.wait(10)
        token = tokens.read_click_token(viewed_token(host, partner, product, impression="seen-1"))
        clicks.record_click(token=token, ip="203.0.113.9", user_agent=BROWSER)
        clicks.settle_after_response()  # wakes this process's thread: the lock is taken
        time.sleep(clicks.SETTLE_GATHER_SECONDS + 0.5)  # its round: the click inserted
        assert Click.objects.get().reason == CLICK_PENDING
    finally:
        let_go.set()
        other.join()

    wait_until_clicks_settled(timeout=5)  # no other click comes to wake the thread
    assert Click.objects.get().reason == "billable"


@pytest.mark.django_db(transaction=True)
def test_the_database_itself_refuses_a_second_billed_click_of_one_impression(pair):
    """Behind the settler's own check: the table takes any number of clicks of an impression
    that did not bill, and refuses to mark a second one billed."""
    host, _, product = pair
    token = tokens.read_click_token(viewed_token(host, pair[1], product, impression="imp-1"))
    first, second, third = (
        clicks.record_click(token=token, ip="203.0.113.9", user_agent=BROWSER) for _ in range(3)
    )
    Click.objects.filter(pk__in=[first.pk, second.pk, third.pk]).update(reason="repeat")
    Click.objects.filter(pk=first.pk).update(billable=True, billed_impression="imp-1")

    with pytest.raises(IntegrityError), transaction.atomic():
        Click.objects.filter(pk=second.pk).update(billable=True, billed_impression="imp-1")
    assert list(
        Click.objects.filter(impression_id="imp-1", billed_impression__isnull=False).values_list(
            "pk", flat=True
        )
    ) == [first.pk]
    assert Click.objects.filter(impression_id="imp-1").count() == 3
