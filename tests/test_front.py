"""The web tier as deployed: gunicorn behind nginx with deploy/nginx-interlayer.conf as it
ships. A handful of slow clients must not take the app down."""

from __future__ import annotations

import os
import pwd
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path

import httpx
import pytest

from tests.test_operations import free_port, wait_until

ROOT = Path(__file__).resolve().parent.parent
SHIPPED = ROOT / "deploy" / "nginx-interlayer.conf"


def _up(url: str) -> bool:
    try:
        return httpx.get(url + "/ping", timeout=1).status_code == 200
    except httpx.HTTPError:
        return False


@contextmanager
def _process(args: list[str], log: Path, env: dict | None = None) -> Iterator[None]:
    with open(log, "wb") as out:
        process = subprocess.Popen(args, cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT)
        try:
            yield
        finally:
            process.terminate()
            try:
                process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                process.kill()


@pytest.fixture
def web(tmp_path) -> Iterator[str]:
    """gunicorn as the README deploys it (sync workers; one, which a single slow client
    holds as it would hold each of four)."""
    port = free_port()
    env = {
        **os.environ,
        "INTERLAYER_URLCONF": "interlayer.diagnostics_urls",  # /ping
        "LOG_LEVEL": "WARNING",
    }
    args = [sys.executable, "-m", "gunicorn", "interlayer.wsgi", "--workers", "1",
            "--bind", f"127.0.0.1:{port}"]  # fmt: skip
    with _process(args, tmp_path / "gunicorn.log", env):
        url = f"http://127.0.0.1:{port}"
        wait_until(lambda: _up(url), timeout=60, what="gunicorn to start")
        yield url


@pytest.fixture
def front(web, tmp_path) -> Iterator[str]:
    """nginx in front of ``web``, with the shipped directives in its server block."""
    nginx = shutil.which("nginx") or "/usr/sbin/nginx"
    if not Path(nginx).exists():
        pytest.fail("the front's check needs nginx (scripts/setup.sh --system)")
    port = free_port()
    temp = tmp_path / "nginx"
    temp.mkdir()
    # As root, nginx's workers would drop to "nobody", who cannot write this temp dir.
    user = f"user {pwd.getpwuid(os.geteuid()).pw_name};" if os.geteuid() == 0 else ""
    (temp / "nginx.conf").write_text(f"""
        {user}
        daemon off;
        worker_processes 1;
        pid {temp}/nginx.pid;
        error_log {temp}/error.log warn;
        events {{ worker_connections 1024; }}
        http {{
            # nginx's default: every request, in the combined format (address, request
            # line with its query, user agent).
            access_log {temp}/access.log;
            client_body_temp_path {temp}/body;
            proxy_temp_path {temp}/proxy;
            fastcgi_temp_path {temp}/fastcgi;
            uwsgi_temp_path {temp}/uwsgi;
            scgi_temp_path {temp}/scgi;
            upstream interlayer_web {{ server {web.removeprefix("http://")}; }}
            server {{
                listen 127.0.0.1:{port};
                include {SHIPPED};
            }}
        }}
    """)
    args = [nginx, "-p", str(temp), "-c", str(temp / "nginx.conf"), "-e", str(temp / "error.log")]
    with _process(args, temp / "stdout.log"):
        url = f"http://127.0.0.1:{port}"
        wait_until(lambda: _up(url), timeout=20, what="nginx to start")
        yield url


def _slow_clients(url: str, each: int, stack: ExitStack) -> None:
    """Connections that hold a server: headers never finished, a body never finished, and
    a whole request whose client never reads its answer or closes."""
    host, port = url.removeprefix("http://").split(":")
    for opening in (
        b"GET /ping HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: ",
        b'POST /ping HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: 5000\r\n\r\n{"a": ',
        b"GET /ping HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n",
    ):
        for _ in range(each):
            sock = stack.enter_context(socket.create_connection((host, int(port))))
            sock.sendall(opening)


@pytest.mark.integration
def test_a_slow_client_holds_gunicorn_alone(web):
    """The attack, against the web processes without their front: one connection that
    never finishes its headers, and nobody else is served."""
    with ExitStack() as stack:
        _slow_clients(web, 1, stack)
        with pytest.raises(httpx.TimeoutException):
            httpx.get(web + "/ping", timeout=3)


@pytest.mark.integration
def test_slow_clients_do_not_hold_the_app_behind_its_front(front):
    with ExitStack() as stack:
        _slow_clients(front, 20, stack)  # 60 connections against one worker
        for _ in range(5):
            response = httpx.get(front + "/ping", timeout=5)
            assert response.status_code == 200 and response.json() == {"ok": True}


@pytest.mark.integration
def test_a_client_that_never_finishes_its_headers_is_let_go(front):
    """nginx's own default waits 60 s for a request's headers; the front gives 10."""
    host, port = front.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port))) as slow:
        slow.sendall(b"GET /ping HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: ")
        slow.settimeout(30)
        started = time.monotonic()
        assert slow.recv(1024) == b""  # closed by the front
        assert time.monotonic() - started < 25


@pytest.mark.integration
def test_the_front_takes_the_bodies_and_queries_the_app_takes_and_no_larger_body(front):
    """Up to 2 MB reaches the app (a webhook may carry up to 1 MB; nginx's own default
    refuses more than 1 MB); more is refused by the front. A query as long as gunicorn
    takes (its request line is at most 4094 bytes: a click token and the app proxy's
    signature need a few hundred) gets through."""
    body = b"x" * (1536 * 1024)
    taken = httpx.post(front + "/echo-forwarded", content=body, timeout=10)
    long_query = httpx.get(front + "/echo-forwarded", params={"t": "a" * 3_800}, timeout=10)
    too_large = httpx.post(front + "/webhooks", content=b"x" * (2 * 1024 * 1024 + 1), timeout=10)

    assert taken.status_code == 200 and taken.json()["body"] == len(body)
    assert long_query.status_code == 200 and long_query.json()["query"] > 3_800
    assert too_large.status_code == 413


@pytest.mark.integration
def test_the_front_says_which_scheme_the_client_used(front, web):
    """Django trusts X-Forwarded-Proto in production (SECURE_PROXY_SSL_HEADER): the front
    replaces what a client claims with the scheme it was reached by, and appends the
    connecting address to X-Forwarded-For."""
    echoed = httpx.get(
        front + "/echo-forwarded",
        headers={"X-Forwarded-Proto": "https", "X-Forwarded-For": "198.51.100.7"},
        timeout=5,
    ).json()
    assert (echoed["proto"], echoed["for"]) == ("http", "198.51.100.7, 127.0.0.1")


@pytest.mark.integration
def test_the_front_keeps_no_shoppers_data_in_its_access_log(front, tmp_path):
    """Storefront requests carry the logged-in customer's id (the app proxy adds it) and
    click tokens in their query, and the shopper's address and browser; the privacy page
    says none of these are stored. nginx's default log keeps all of them for every
    request: the shipped front keeps none (the application's own logs are what operators
    read)."""
    httpx.get(
        front + "/echo-forwarded",
        params={"logged_in_customer_id": "207119551", "t": "click-token"},
        headers={"User-Agent": "Shopper's phone", "X-Forwarded-For": "198.51.100.7"},
        timeout=5,
    )
    httpx.post(front + "/echo-forwarded", content=b"{}", headers={"User-Agent": "Shopper's phone"},
               timeout=5)  # fmt: skip

    log = tmp_path / "nginx" / "access.log"
    kept = log.read_text() if log.exists() else ""
    for shoppers in ("207119551", "click-token", "Shopper's phone", "198.51.100.7"):
        assert shoppers not in kept
