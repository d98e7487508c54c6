"""Helpers the benchmarks share for the servers they start on loopback."""

from __future__ import annotations

import os
import platform
import socket
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import httpx


@dataclass(frozen=True)
class Stack:
    """Where a full-stack benchmark runs: a scratch directory and two loopback servers."""

    work: Path
    sim_port: int
    app_port: int

    @property
    def sim_url(self) -> str:
        return f"http://127.0.0.1:{self.sim_port}"

    @property
    def app_url(self) -> str:
        return f"http://127.0.0.1:{self.app_port}"


def full_stack(name: str) -> Stack:
    """A scratch directory and free ports for the simulator and the app, once a PostgreSQL
    database to run against is given."""
    if "DATABASE_URL" not in os.environ:
        raise SystemExit("set DATABASE_URL to an empty PostgreSQL database (see scripts/pg.sh)")
    work = Path(tempfile.mkdtemp(prefix=f"interlayer-{name}-"))
    return Stack(work=work, sim_port=free_port(), app_port=free_port())


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_for(url: str, *, seconds: float = 30) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        try:
            httpx.get(url, timeout=1)
            return
        except httpx.HTTPError:
            time.sleep(0.1)
    raise SystemExit(f"{url} did not come up")


# The instructions int8 matrix products run on, fastest first: machines here report the
# same model name with and without them, and the int8 embedding's speed-up over fp32 is
# about half as large again with them (3.6x against 2.1-2.5x, bench/embedding_throughput.py).
_INT8_INSTRUCTIONS = (
    ("amx_int8", "AMX"),
    ("avx512_vnni", "AVX-512 VNNI"),
    ("avx_vnni", "AVX-VNNI"),
)


def cpu_model() -> str:
    """The processor the figures were measured on (machines here differ up to 3x), with
    the int8 instructions it has."""
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        return platform.processor() or "unknown processor"
    # The first processor's lines (read last, so they win): all processors are alike here.
    fields = {
        key.strip(): value.strip()
        for key, value in (
            line.split(":", 1) for line in reversed(text.splitlines()) if ":" in line
        )
    }
    model = fields.get("model name", "unknown processor")
    flags = set(fields.get("flags", "").split())
    fast = next((name for flag, name in _INT8_INSTRUCTIONS if flag in flags), None)
    return f"{model}, int8 on {fast or ('AVX2' if 'avx2' in flags else 'no vector units')}"


def install_app(simulator_url: str, handle: str):
    """Install the app into a simulator shop the managed way (Django set up in-process):
    the simulator grants it, then the product's own token exchange stores the token.
    Returns the Store."""
    import jwt
    from django.conf import settings

    from stores import services

    httpx.get(
        f"{simulator_url}/store/{handle}/admin/apps/interlayer/install", params={"flow": "managed"}
    )
    token = httpx.post(f"{simulator_url}/_sim/shops/{handle}/id-token", json={}).json()["id_token"]
    claims = jwt.decode(
        token, settings.SHOPIFY_API_SECRET, algorithms=["HS256"], audience=settings.SHOPIFY_API_KEY
    )
    return services.exchange_session_token(
        shop_domain=f"{handle}.myshopify.com",
        id_token={"exchangeable": True, "token": token, "claims": claims},
    )
