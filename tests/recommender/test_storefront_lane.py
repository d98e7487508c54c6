"""The web processes' handler (interlayer.handler): the storefront's two hottest requests
take a short lane past Django's general request cycle, and must be answered exactly as
that cycle answers them. Each case is sent, as the same WSGI request, to Django's own
handler and to the lane."""

from __future__ import annotations

import io
import json
import logging
import sys
from dataclasses import dataclass

import httpx
import pytest
from django.conf import settings as django_settings
from django.core import signals
from django.core.handlers.wsgi import WSGIHandler
from django.db import connection
from django.http import HttpRequest
from django.urls import get_script_prefix, set_script_prefix
from django.views.defaults import server_error

from interlayer.handler import Handler
from interlayer.logs import ShopFilter, bind_shop
from recommender.exchange import ledger, rules
from recommender.models import Click, Product
from stores.models import Store
from tests.recommender.test_click_journal import production_env
from tests.recommender.test_storefront_endpoints import BROWSER, proxied
from tests.test_front import _process
from tests.test_operations import free_port, wait_until

# Not inside a test's transaction: a request starts, as in Django's cycle, by closing a
# connection left outside autocommit, which a test's transaction is.
pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture(autouse=True)
def index(private_index, settings):
    settings.RECOMMENDER_STATE_TTL_SECONDS = 0
    settings.RECOMMENDER_RELEVANCE_FLOOR = 0.3


@pytest.fixture(autouse=True)
def thread_state():
    """What a request leaves on the thread (the script prefix links are built under, the
    shop logs name), put back for the tests after these."""
    yield
    set_script_prefix("/")
    bind_shop(None)


@pytest.fixture
def viewed(shops):
    """The host's product page, whose widget shows the partner's one product."""
    return shops[2]


@dataclass
class Served:
    status: int
    headers: dict[str, str]
    body: bytes
    # (logger, level, message, shop) of Django's request logs
    logged: list[tuple[str, int, str, str]]

    def json(self):
        return json.loads(self.body)


def served(app, url: str, *, method: str = "GET", **meta) -> Served:
    """``url`` asked of the WSGI application ``app`` as a server asks: the response's body
    read, then the response closed."""
    path, _, query = url.partition("?")
    environ = {
        "REQUEST_METHOD": method, "PATH_INFO": path, "QUERY_STRING": query,
        "SCRIPT_NAME": "", "SERVER_NAME": "testserver", "SERVER_PORT": "80",
        "SERVER_PROTOCOL": "HTTP/1.1", "HTTP_HOST": "testserver", "REMOTE_ADDR": "127.0.0.1",
        "HTTP_USER_AGENT": BROWSER, "HTTP_X_FORWARDED_FOR": "203.0.113.5",
        "wsgi.url_scheme": "http", "wsgi.input": io.BytesIO(b""), "wsgi.errors": io.StringIO(),
        **meta,
    }  # fmt: skip
    started = {}

    def start_response(status, headers, exc_info=None):
        started.update(status=status, headers=headers)

    records = _Records()
    loggers = [logging.getLogger(name) for name in ("django.request", "django.security")]
    for logger in loggers:
        logger.addHandler(records)
    try:
        result = app(environ, start_response)
        try:
            body = b"".join(result)
        finally:
            result.close()
    finally:
        for logger in loggers:
            logger.removeHandler(records)
    headers = dict(started["headers"])
    assert len(headers) == len(started["headers"])  # no header given twice
    return Served(int(started["status"].split()[0]), headers, body, records.seen)


class _Records(logging.Handler):
    def __init__(self):
        super().__init__(logging.DEBUG)
        self.seen = []

    def emit(self, record):
        ShopFilter().filter(record)
        self.seen.append((record.name, record.levelno, record.getMessage(), record.shop))


def both(url: str, **kwargs) -> tuple[Served, Served]:
    return served(WSGIHandler(), url, **kwargs), served(Handler(), url, **kwargs)


def test_the_lane_takes_the_widget_and_the_click_only():
    assert set(Handler().lane) == {"/proxy/recommendations", "/proxy/click"}


@pytest.mark.urls("interlayer.diagnostics_urls")
def test_the_benchmarks_trivial_endpoint_through_the_lane_answers_as_through_djangos_cycle():
    # bench/storefront_load.py gives its ratios against both.
    assert {"/lane/ping", "/proxy/lane-checked"} <= set(Handler().lane)
    through_django = served(WSGIHandler(), "/ping")
    through_lane = served(Handler(), "/lane/ping")
    assert (through_django.status, through_django.body, through_django.headers) == (
        through_lane.status, through_lane.body, through_lane.headers)  # fmt: skip


@pytest.mark.parametrize("script_name", ["", "/app"])
def test_a_widget_is_answered_as_djangos_cycle_answers_it(viewed, script_name):
    url = proxied("recommendations", product_id=viewed.shopify_id, page_type="product")
    prefixes = []

    def served_by(app):
        set_script_prefix("/elsewhere/")  # what an earlier request of the thread left
        answer = served(app, url, SCRIPT_NAME=script_name)
        prefixes.append(get_script_prefix())  # links the view would build
        return answer

    django, lane = served_by(WSGIHandler()), served_by(Handler())

    assert prefixes == [script_name + "/"] * 2

    assert django.status == lane.status == 200
    assert django.headers == lane.headers | {"Content-Length": django.headers["Content-Length"]}
    assert lane.headers["X-Content-Type-Options"] == "nosniff"
    assert int(lane.headers["Content-Length"]) == len(lane.body)
    # The tokens and the impression are minted for each response; all else is the same.
    payloads = django.json(), lane.json()
    for payload in payloads:
        for item in payload["items"]:
            assert item.pop("token")
        assert payload.pop("impression")
    assert payloads[0] == payloads[1]
    assert [item["title"] for item in payloads[1]["items"]] == [
        '<img src=x onerror="alert(1)">Coffee Book'
    ]


@pytest.mark.parametrize(
    ("case", "status"),
    [
        ("forged signature", 401),
        ("stale signature", 401),
        ("unknown shop", 404),
        ("malformed product id", 400),
        ("tampered click token", 400),
        ("host not allowed", 400),
        ("POST", 405),
    ],
)
def test_refusals_are_answered_and_logged_as_djangos_cycle_does(viewed, settings, case, status):
    settings.ALLOWED_HOSTS = ["testserver"]
    url = proxied("recommendations", product_id=viewed.shopify_id, page_type="product")
    meta = {}
    if case == "forged signature":
        url = url.replace("product_id=", "product_id=1")
    elif case == "stale signature":
        url = proxied("recommendations", product_id=viewed.shopify_id, age=120)
    elif case == "unknown shop":
        url = proxied("recommendations", shop="nobody.myshopify.com")
    elif case == "malformed product id":
        url = proxied("recommendations", product_id="1;DROP")
    elif case == "tampered click token":
        url = proxied("click", t="eyJ0IjoxfQ.forged")
    elif case == "host not allowed":
        meta["HTTP_HOST"] = "attacker.example"

    def served_by(app):
        bind_shop("earlier.myshopify.com")  # the thread's request before
        return served(app, url, method="POST" if case == "POST" else "GET", **meta)

    django, lane = served_by(WSGIHandler()), served_by(Handler())

    assert django.status == lane.status == status
    assert django.body == lane.body
    assert django.headers == lane.headers
    assert django.logged == lane.logged
    assert lane.logged  # a refusal is logged (django.request, or django.security for a host)
    assert "earlier.myshopify.com" not in {shop for *_, shop in lane.logged}


def test_a_click_is_recorded_and_redirected_as_djangos_cycle_does(viewed, client):
    url = proxied("recommendations", product_id=viewed.shopify_id, page_type="product")
    first, second = (
        next(i["token"] for i in served(WSGIHandler(), url).json()["items"] if i.get("token"))
        for _ in range(2)
    )

    django = served(WSGIHandler(), proxied("click", t=first))
    lane = served(Handler(), proxied("click", t=second))

    assert django.status == lane.status == 302
    # The same product page; only the sealed order reference is minted for each click.
    assert (
        django.headers["Location"].split("il_ref=")[0]
        == lane.headers["Location"].split("il_ref=")[0]
    )
    assert "il_ref=" in lane.headers["Location"]
    assert {**django.headers, "Location": ""} == {**lane.headers, "Location": ""}
    assert lane.headers["Cache-Control"] == "no-store"
    # Each followed link is one click, judged alike.
    clicks = list(Click.objects.order_by("pk").values_list("reason", flat=True))
    assert len(clicks) == 2
    assert clicks[0] == clicks[1] != "pending"


@pytest.mark.parametrize("request_", ["http", "https", "http to a host not allowed"])
def test_https_is_required_and_announced_as_djangos_cycle_does(viewed, settings, request_):
    settings.SECURE_SSL_REDIRECT = True
    settings.SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
    settings.SECURE_HSTS_SECONDS = 3600
    settings.ALLOWED_HOSTS = ["testserver"]
    url = proxied("recommendations", product_id=viewed.shopify_id, page_type="product")
    meta = {
        "http": {},
        "https": {"HTTP_X_FORWARDED_PROTO": "https"},
        "http to a host not allowed": {"HTTP_HOST": "attacker.example"},
    }[request_]

    django, lane = both(url, **meta)

    if request_ == "http to a host not allowed":  # refused as the redirect is built
        assert django.status == lane.status == 400
        assert django.headers == lane.headers
        assert django.body == lane.body
        return
    forwarded_https = request_ == "https"
    if forwarded_https:
        assert django.status == lane.status == 200
        assert django.headers["Strict-Transport-Security"] == "max-age=3600; includeSubDomains"
    else:
        assert django.status == lane.status == 301
        assert lane.headers["Location"].startswith("https://testserver/proxy/recommendations?")
    assert django.headers.keys() == lane.headers.keys()
    assert django.headers.get("Strict-Transport-Security") == lane.headers.get(
        "Strict-Transport-Security"
    )


def test_an_exception_is_answered_500_and_logged_with_its_traceback(viewed):
    handler = Handler()

    def failing(request):
        raise RuntimeError("the database went away")

    handler.lane["/proxy/recommendations"] = failing

    lane = served(handler, proxied("recommendations", product_id=viewed.shopify_id))

    assert lane.status == 500
    assert lane.body == server_error(HttpRequest()).content  # no detail of the fault
    assert b"database" not in lane.body
    assert lane.headers["X-Content-Type-Options"] == "nosniff"
    assert lane.logged == [
        ("django.request", logging.ERROR, "Internal Server Error: /proxy/recommendations", "-")
    ]


def test_a_lane_request_starts_and_ends_with_djangos_request_signals(viewed):
    seen = []

    def on_started(sender, environ, **kwargs):
        seen.append(("started", environ["PATH_INFO"]))

    def on_finished(sender, **kwargs):
        seen.append(("finished", sender))

    signals.request_started.connect(on_started)
    signals.request_finished.connect(on_finished)
    try:
        served(Handler(), proxied("recommendations", product_id=viewed.shopify_id))
    finally:
        signals.request_started.disconnect(on_started)
        signals.request_finished.disconnect(on_finished)

    # The database connections are checked as it starts and once its response is closed,
    # and what listens to every request (an error tracker's instrumentation) hears it.
    assert seen == [("started", "/proxy/recommendations"), ("finished", Handler)]


# The lane only reads it: no connection is set up again.
@pytest.mark.filterwarnings("ignore:Overriding setting DATABASES")
@pytest.mark.parametrize(
    "change",
    [
        {"MIDDLEWARE": ["django.middleware.common.CommonMiddleware"]},
        {"DEBUG": True},
        {"DISALLOWED_USER_AGENTS": ["curl"]},
        {"PREPEND_WWW": True},
        {"ATOMIC_REQUESTS": True},
    ],
)
def test_settings_the_lane_does_not_mirror_send_every_request_through_djangos_cycle(
    settings, change
):
    for name, value in change.items():
        if name == "ATOMIC_REQUESTS":  # a database's
            settings.DATABASES = {
                alias: {**database, name: value} for alias, database in settings.DATABASES.items()
            }
        else:
            setattr(settings, name, value)

    assert Handler().lane == {}


def test_a_web_process_serves_the_widget_and_the_click_through_the_lane(viewed, tmp_path):
    """gunicorn as deployed (DEBUG off, clicks journaled and settled behind): a shopper's
    widget, its view and its click, over HTTP."""
    if connection.vendor != "postgresql":
        pytest.fail("clicks are journaled on PostgreSQL only (scripts/pg.sh)")
    host, partner = viewed.store, Store.objects.get(shop_domain="partner.myshopify.com")
    port = free_port()
    env = {**production_env(tmp_path / "journal"), "DEBUG": "false", "LOG_LEVEL": "INFO",
           "RECOMMENDER_INDEX_DIR": str(django_settings.RECOMMENDER_INDEX_DIR)}  # fmt: skip
    log = tmp_path / "gunicorn.log"
    gunicorn = [sys.executable, "-m", "gunicorn", "interlayer.wsgi", "--workers", "1",
                "--bind", f"127.0.0.1:{port}"]  # fmt: skip
    with _process(gunicorn, log, env):
        app = httpx.Client(
            base_url=f"http://127.0.0.1:{port}",
            headers={"User-Agent": BROWSER, "X-Forwarded-For": "203.0.113.5"},
        )
        wait_until(lambda: _up(app), timeout=60, what="gunicorn to start")
        widget = app.get(proxied("recommendations", product_id=viewed.shopify_id)).json()
        seen = app.post(proxied("impression"), content=widget["impression"])
        assert seen.json() == {"result": "counted"}
        (token,) = [item["token"] for item in widget["items"] if item.get("token")]

        clicked = app.get(proxied("click", t=token))

        assert clicked.status_code == 302
        assert clicked.headers["Location"].startswith(Product.objects.get(store=partner).url)
        wait_until(
            lambda: Click.objects.filter(reason="billable").exists(),
            timeout=30,
            what="the click to be inserted and settled behind its redirect",
        )
    (click,) = Click.objects.all()
    assert (click.source_store_id, click.target_store_id) == (host.pk, partner.pk)
    assert ledger.balance(host) == rules.STARTER_GRANT + rules.EARN_PER_CLICK
    assert "storefront lane is off" not in log.read_text()


def _up(app: httpx.Client) -> bool:
    try:
        return app.get("/health").status_code == 200
    except httpx.HTTPError:
        return False
