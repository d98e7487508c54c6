"""Running Interlayer: health, structured logs, the operator's view, and the multi-process
deployment (two web processes, two workers, one PostgreSQL, Redis as the broker)."""

from __future__ import annotations

import copy
import io
import json
import logging
import logging.config
import os
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path
from urllib.parse import urlencode

import httpx
import pytest
from django.core.management import call_command
from django.db import connection

from interlayer.logs import ShopFilter, bind_shop
from recommender import runtime
from recommender.catalog import index_events
from recommender.catalog import sync as catalog_sync
from recommender.models import CatalogSync, Product
from recommender.ranking import live_index
from recommender.web import storefront
from simulator.install import install as merchant_installs
from simulator.server import sign_proxy_query
from tests.factories import make_product, make_store, topic_vector

ROOT = Path(__file__).resolve().parent.parent


@pytest.mark.django_db
def test_health_reports_database_broker_and_index(client, settings, tmp_path):
    settings.RECOMMENDER_INDEX_DIR = tmp_path / "index"

    response = client.get("/health")

    body = response.json()
    assert response.status_code == 200 and body["ok"] is True
    assert body["checks"]["database"] == {"ok": True, "vendor": connection.vendor}
    assert body["checks"]["broker"]["ok"] is True
    assert body["checks"]["index"]["version"] is None  # nothing published yet
    assert body["checks"]["index"]["ok"] is True  # and nothing waiting to be


@pytest.mark.django_db
def test_health_says_the_index_is_not_ok_while_products_wait_for_a_build(
    client, settings, tmp_path
):
    settings.RECOMMENDER_INDEX_DIR = tmp_path / "index"
    store = make_store("alpha")
    make_product(store, "Burr Grinder", topic_vector("coffee", seed=1))

    waiting = client.get("/health").json()["checks"]["index"]
    index_events.rebuild_index()
    runtime.reset()
    built = client.get("/health").json()["checks"]["index"]

    assert (waiting["ok"], waiting["version"]) == (False, None)
    assert built["ok"] is True and built["size"] == 1


@pytest.mark.django_db
def test_log_lines_name_the_shop(client, simulator, install):
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.addFilter(ShopFilter())
    handler.setFormatter(logging.Formatter("shop=%(shop)s %(name)s %(message)s"))
    logger = logging.getLogger("stores")
    logger.addHandler(handler)
    try:
        install("alpha")
    finally:
        logger.removeHandler(handler)

    lines = [line for line in stream.getvalue().splitlines() if "store installed" in line]
    assert lines == [
        "shop=alpha.myshopify.com stores.services store installed shop=alpha.myshopify.com"
    ]


def test_json_log_format_from_the_settings_writes_one_object_per_line(settings):
    """LOG_FORMAT=json as settings.LOGGING configures it: its formatter, its shop filter."""
    stream = io.StringIO()
    config = copy.deepcopy(settings.LOGGING)
    config["handlers"]["console"].update(formatter="json", stream=stream)
    logging.config.dictConfig(config)
    try:
        bind_shop("alpha.myshopify.com")
        logging.getLogger("stores.services").info("synced %s", "9 products")
        bind_shop(None)
    finally:
        logging.config.dictConfig(settings.LOGGING)

    lines = stream.getvalue().splitlines()
    assert len(lines) == 1
    entry = json.loads(lines[0])
    assert entry["shop"] == "alpha.myshopify.com" and entry["message"] == "synced 9 products"
    assert entry["logger"] == "stores.services"


@pytest.mark.django_db
def test_network_status_command_prints_the_networks_state(simulator, install, settings, tmp_path):
    settings.RECOMMENDER_INDEX_DIR = tmp_path / "index"
    settings.RECOMMENDER_EMBEDDER = "hash"

    catalog_sync.sync_catalog(install("alpha"))
    out = io.StringIO()

    call_command("network_status", "--json", stdout=out)

    state = json.loads(out.getvalue())
    assert state["stores"] == {"active": 1}
    assert state["products"] == {"total": 2, "eligible": 2, "embedded": 2}
    assert state["catalog_syncs"] == {"done": 1}
    assert {"queue_depth", "failed_tasks", "failed_webhooks", "index"} <= set(state)


# --- two web processes, two workers, PostgreSQL and Redis ---------------------------------


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_until(check, *, timeout: float, what: str):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        result = check()
        if result:
            return result
        time.sleep(0.3)
    raise AssertionError(f"timed out waiting for {what}")


def widget_titles(web_url: str, shop: str, product_id: int, secret: str) -> list[str]:
    pairs = [("product_id", str(product_id)), ("page_type", "product"), ("shop", shop),
             ("logged_in_customer_id", ""), ("path_prefix", "/apps/interlayer"),
             ("timestamp", str(int(time.time())))]  # fmt: skip
    pairs.append(("signature", sign_proxy_query(pairs, secret)))
    response = httpx.get(f"{web_url}/proxy/recommendations?{urlencode(pairs)}", timeout=10)
    return [item["title"] for item in response.json().get("items", [])]


@pytest.mark.integration
@pytest.mark.django_db(transaction=True)
def test_a_webhook_change_reaches_recommendations_in_both_web_processes(
    simulator, settings, tmp_path
):
    if connection.vendor != "postgresql" or shutil.which("redis-server") is None:
        pytest.fail(
            "the multi-process check needs PostgreSQL and redis-server (scripts/setup.sh --system)"
        )
    redis_port, port_a, port_b = free_port(), free_port(), free_port()
    db = connection.settings_dict
    env = {
        **os.environ,
        "DATABASE_URL": f"postgres://{db['USER']}@{db['HOST']}:{db['PORT']}/{db['NAME']}",
        "DATABASE_CONN_MAX_AGE": "0",
        "REDIS_URL": f"redis://127.0.0.1:{redis_port}/0",
        "SHOPIFY_SIMULATOR_URL": simulator.url,
        "SHOPIFY_APP_URL": f"http://127.0.0.1:{port_a}",
        "RECOMMENDER_INDEX_DIR": str(tmp_path / "index"),
        "RECOMMENDER_INDEX_POLL_SECONDS": "0.5",
        "RECOMMENDER_STATE_TTL_SECONDS": "0",
        "RECOMMENDER_EMBEDDER": "onnx",
        "RECOMMENDER_EMBED_QUIET_SECONDS": "0.5",
        "HF_HUB_OFFLINE": "1",
        "LOG_LEVEL": "WARNING",
        "INTERLAYER_URLCONF": "interlayer.diagnostics_urls",  # /ping
    }
    logs = tmp_path / "logs"
    logs.mkdir()

    def start(name: str, *args: str) -> subprocess.Popen:
        out = open(logs / f"{name}.log", "wb")  # noqa: SIM115 - closed with the process
        return subprocess.Popen(args, cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT)

    gunicorn = [sys.executable, "-m", "gunicorn", "interlayer.wsgi", "--workers", "1"]
    processes = [
        start(
            "redis", "redis-server", "--port", str(redis_port), "--save", "", "--appendonly", "no"
        ),
        start("web-a", *gunicorn, "--bind", f"127.0.0.1:{port_a}"),
        start("web-b", *gunicorn, "--bind", f"127.0.0.1:{port_b}"),
        start("worker-1", sys.executable, "manage.py", "qcluster"),
        start("worker-2", sys.executable, "manage.py", "qcluster"),
    ]
    try:
        webs = [f"http://127.0.0.1:{port_a}", f"http://127.0.0.1:{port_b}"]
        for web in webs:
            wait_until(lambda web=web: _up(web), timeout=60, what=f"{web} to start")
        health = httpx.get(webs[1] + "/health").json()
        assert health["checks"]["broker"] == {"ok": True, "kind": "Redis"}
        simulator.world.app.app_url = webs[0]
        for handle in ("alpha", "beta"):
            assert merchant_installs(handle, app_url=webs[0], simulator_url=simulator.url).ok
        wait_until(
            lambda: (
                CatalogSync.objects.filter(state="done").count() == 2
                and not Product.objects.filter(eligible=True, vector__isnull=True).exists()
            ),
            timeout=120,
            what="both catalogs to be synced and embedded by the workers",
        )
        call_command("rebuild_index")
        grinder = Product.objects.get(
            store__shop_domain="alpha.myshopify.com", title="Burr Grinder"
        )
        secret = settings.SHOPIFY_API_SECRET

        simulator.world.save_product("beta", {
            "title": "Espresso Burr Grinder Cleaning Brush", "handle": "grinder-brush",
            "body_html": "<p>Cleans the burrs of any coffee grinder.</p>", "product_type": "Coffee Accessories",
            "variants": [{"price": "12.00", "inventory_quantity": 20}],
        })  # fmt: skip

        for web in webs:
            titles = wait_until(
                lambda web=web: (
                    (t := widget_titles(web, "alpha.myshopify.com", grinder.shopify_id, secret))
                    and "Espresso Burr Grinder Cleaning Brush" in t
                    and t
                ),
                timeout=90,
                what=f"the new product in recommendations served by {web}",
            )
            assert "Espresso Burr Grinder Cleaning Brush" in titles
    finally:
        for process in reversed(processes):
            process.terminate()
        for process in processes:
            try:
                process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                process.kill()


def _up(url: str) -> bool:
    try:
        return httpx.get(url + "/ping", timeout=1).status_code == 200
    except httpx.HTTPError:
        return False


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("headers", "details"),
    [
        ({"REMOTE_ADDR": "203.0.113.1"}, False),  # the public internet
        ({"REMOTE_ADDR": "127.0.0.1", "HTTP_X_FORWARDED_FOR": "203.0.113.1"}, False),  # proxied
        ({"REMOTE_ADDR": "203.0.113.1", "HTTP_AUTHORIZATION": "Bearer wrong"}, False),
        ({"REMOTE_ADDR": "203.0.113.1", "HTTP_AUTHORIZATION": "Bearer ops-token-1234"}, True),
        ({"REMOTE_ADDR": "127.0.0.1"}, True),  # on the machine itself
    ],
)
@pytest.mark.parametrize("production", [False, True])
def test_health_details_are_for_operators_only(client, settings, headers, details, production):
    settings.INTERLAYER_HEALTH_TOKEN = "ops-token-1234"
    settings.PRODUCTION = production
    if production and "HTTP_AUTHORIZATION" not in headers:
        details = False  # in production only the token shows them, not being local

    response = client.get("/health", **headers)

    assert response.status_code == 200
    assert ("checks" in response.json()) is details
    assert response.json()["ok"] is True


@pytest.mark.django_db
def test_health_answers_a_probe_that_names_the_machine_by_its_address(client, settings):
    """Load balancers and orchestrators probe a machine at its address (Host: 10.0.0.5),
    which ALLOWED_HOSTS rightly refuses for every other page: refused here too, every
    process would be taken out of service."""
    settings.ALLOWED_HOSTS = ["interlayer.example.com"]
    settings.PRODUCTION = True

    probed = client.get("/health", HTTP_HOST="10.0.0.5:8000")
    page = client.get("/support", HTTP_HOST="10.0.0.5:8000")

    assert probed.status_code == 200 and probed.json() == {"ok": True}
    assert page.status_code == 400  # the host check still holds for everything else


@pytest.mark.django_db(transaction=True)
def test_a_web_process_holds_the_index_before_its_first_storefront_request(settings, tmp_path):
    """What wsgi.py runs as a web process starts: the first shopper's page does not wait
    for the index to load, and no refresh thread is started before a server forks."""
    settings.RECOMMENDER_INDEX_DIR = tmp_path / "index"
    settings.RECOMMENDER_INDEX_POLL_SECONDS = 30
    store = make_store("warm")
    for n in range(3):
        make_product(store, f"Pour-Over Kettle {n}", topic_vector("coffee", seed=n))
    index_events.rebuild_index()
    runtime.reset()

    storefront.warm_up()

    assert live_index.status()["loaded"] and live_index.status()["size"] == 3
    assert all(holder.thread is None for holder in runtime.index_holders.values())


def test_a_web_process_starts_while_its_database_is_down(tmp_path):
    """A database that is not there yet (a deploy racing a failover) is logged, and the
    process serves anyway: its first request loads what the warm-up could not."""
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "interlayer.settings",
        "INTERLAYER_ENV": "development",
        "DATABASE_URL": f"postgres://interlayer@127.0.0.1:{free_port()}/nowhere",
        "RECOMMENDER_INDEX_DIR": str(tmp_path / "index"),
    }
    started = subprocess.run(
        [sys.executable, "-c", "import interlayer.wsgi; print('serving')"],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=120,
    )  # fmt: skip

    assert started.returncode == 0, started.stderr
    assert started.stdout.strip() == "serving"
    assert "warming up the storefront failed" in started.stderr


@pytest.mark.django_db(transaction=True)
def test_a_web_process_warmed_before_an_index_was_published_serves_the_published_one(
    settings, tmp_path
):
    """A process that starts before the first build (or a rebuild) does not keep the
    index its warm-up found until the refresh thread's first round."""
    settings.RECOMMENDER_INDEX_DIR = tmp_path / "index"
    settings.RECOMMENDER_INDEX_POLL_SECONDS = 30
    runtime.reset()
    storefront.warm_up()
    assert live_index.status()["size"] == 0
    store = make_store("late")
    make_product(store, "Pour-Over Kettle", topic_vector("coffee", seed=1))
    index_events.rebuild_index()

    assert len(live_index.current()) == 1


def _health_in_a_process(env: dict, remote_addr: str = "127.0.0.1") -> tuple[int, dict]:
    """/health as a process started with ``env`` answers it (status, body), asked from
    ``remote_addr`` (loopback: an operator in development)."""
    probe = (
        "import json, django; django.setup()\n"
        "from django.test import Client\n"
        f"response = Client(raise_request_exception=False, REMOTE_ADDR={remote_addr!r})"
        ".get('/health')\n"
        "print(json.dumps([response.status_code, response.content.decode()]))\n"
    )
    ran = subprocess.run(
        [sys.executable, "-c", probe], cwd=ROOT, env=env, capture_output=True, text=True,
        timeout=120,
    )  # fmt: skip
    assert ran.returncode == 0, ran.stderr
    status, body = json.loads(ran.stdout.strip().splitlines()[-1])
    return status, json.loads(body)


def test_health_keeps_the_process_in_service_while_the_broker_is_down(tmp_path):
    """Widgets, clicks and the settings page need no broker, and a webhook that cannot be
    queued is answered 503 for Shopify to send again: a broker outage is reported to the
    operator, and does not take every web process out of the load balancer."""
    status, body = _health_in_a_process({
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "interlayer.settings",
        "INTERLAYER_ENV": "development",
        "DATABASE_URL": f"sqlite:///{tmp_path / 'up.sqlite3'}",  # a database that answers
        "REDIS_URL": f"redis://127.0.0.1:{free_port()}/0",  # nothing listens there
        "RECOMMENDER_INDEX_DIR": str(tmp_path / "index"),
        "LOG_LEVEL": "CRITICAL",
    })  # fmt: skip

    assert status == 200 and body["ok"] is True
    assert body["checks"]["broker"]["ok"] is False  # the operator sees it
    assert body["checks"]["database"]["ok"] is True


def test_a_probe_does_not_wait_on_a_broker_that_hangs(tmp_path):
    """A broker that accepts connections and never answers held each probe for seconds,
    past a load balancer's probe timeout: a probe is told up or down, which the broker
    does not decide, so the broker is not asked."""
    with socket.socket() as hanging:
        hanging.bind(("127.0.0.1", 0))
        hanging.listen()
        status, body = _health_in_a_process(
            {
                **os.environ,
                "DJANGO_SETTINGS_MODULE": "interlayer.settings",
                "INTERLAYER_ENV": "development",
                "DATABASE_URL": f"sqlite:///{tmp_path / 'up.sqlite3'}",
                "REDIS_URL": f"redis://127.0.0.1:{hanging.getsockname()[1]}/0",
                "RECOMMENDER_INDEX_DIR": str(tmp_path / "index"),
                "LOG_LEVEL": "CRITICAL",
            },
            remote_addr="10.0.0.9",  # a load balancer, not an operator
        )
        hanging.setblocking(False)
        with pytest.raises(BlockingIOError):
            hanging.accept()  # nobody connected to the broker

    assert (status, body) == (200, {"ok": True})


def test_health_answers_503_with_its_checks_while_the_database_is_down(tmp_path):
    """A load balancer's first probe of a process that started while its database was
    away: the endpoint says what is down, it does not fail with a 500."""
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "interlayer.settings",
        "INTERLAYER_ENV": "development",
        "DATABASE_URL": f"postgres://interlayer@127.0.0.1:{free_port()}/nowhere",
        "RECOMMENDER_INDEX_DIR": str(tmp_path / "index"),
        "LOG_LEVEL": "CRITICAL",
    }
    status, body = _health_in_a_process(env)

    assert status == 503
    assert body["checks"]["database"]["ok"] is False
