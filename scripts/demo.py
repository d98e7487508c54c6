"""The demo: simulator + app + worker, every demo store installed through the real flow.

Run through ``make demo`` (which sets up the environment first). Ctrl-C stops everything.
Running it again reuses the database and the simulator's state in ``var/demo``.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
VAR = Path(os.getenv("DEMO_VAR", str(ROOT / "var" / "demo")))
PYTHON = sys.executable
APP_PORT = int(os.getenv("DEMO_APP_PORT", "8000"))
SIM_PORT = int(os.getenv("DEMO_SIMULATOR_PORT", "9000"))
APP_URL = f"http://127.0.0.1:{APP_PORT}"
SIM_URL = f"http://127.0.0.1:{SIM_PORT}"


def step(message: str) -> None:
    print(f"\033[1m==> {message}\033[0m", flush=True)


def app_env() -> dict[str, str]:
    env = dict(os.environ)
    env.setdefault("INTERLAYER_ENV", "development")  # the demo's throwaway secrets
    env.setdefault("DATABASE_URL", f"sqlite:///{VAR / 'interlayer.sqlite3'}")
    # The index belongs with its database (its ids are the database's product ids).
    env.setdefault("RECOMMENDER_INDEX_DIR", str(VAR / "index"))
    env.update(
        SHOPIFY_SIMULATOR_URL=SIM_URL,
        SHOPIFY_APP_URL=APP_URL,
        HF_HUB_OFFLINE="1",
        TRANSFORMERS_OFFLINE="1",
        PYTHONUNBUFFERED="1",
    )
    return env


def wait_for(url: str, what: str, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(url, timeout=2):  # noqa: S310 - loopback only
                return
        except OSError:
            time.sleep(0.3)
    raise SystemExit(f"{what} did not start within {timeout:.0f}s (see {VAR}/*.log)")


class Processes:
    def __init__(self) -> None:
        self.running: list[tuple[str, subprocess.Popen]] = []

    def start(self, name: str, args: list[str], env: dict[str, str]) -> None:
        log = open(VAR / f"{name}.log", "ab")  # noqa: SIM115 - lives as long as the process
        process = subprocess.Popen(
            args, cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
        )
        self.running.append((name, process))

    def check(self) -> None:
        for name, process in self.running:
            if process.poll() is not None:
                raise SystemExit(f"{name} exited with {process.returncode}; see {VAR}/{name}.log")

    def stop(self) -> None:
        for _, process in reversed(self.running):
            if process.poll() is None:
                os.killpg(process.pid, signal.SIGTERM)
        for _, process in self.running:
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)


def manage(env: dict[str, str], *args: str) -> str:
    result = subprocess.run(
        [PYTHON, "manage.py", *args], cwd=ROOT, env=env, capture_output=True, text=True, check=True
    )
    return result.stdout


def wait_for_catalogs(env: dict[str, str], processes: Processes, *, expected: int) -> None:
    """Show progress until every store's catalog is synced and embedded."""
    deadline = time.monotonic() + 900
    last = ""
    while time.monotonic() < deadline:
        processes.check()
        state = json.loads(manage(env, "network_status", "--json"))
        syncs, products = state["catalog_syncs"], state["products"]
        finished = syncs.get("done", 0) + syncs.get("failed", 0)
        line = (
            f"    {finished}/{expected} catalogs synced, {products['embedded']}/"
            f"{products['eligible']} eligible products embedded"
        )
        if line != last:
            print(line, flush=True)
            last = line
        if finished >= expected and products["embedded"] >= products["eligible"]:
            if syncs.get("failed"):
                print(f"    {syncs['failed']} sync(s) failed; see {VAR}/worker.log", flush=True)
            return
        time.sleep(2)
    raise SystemExit("catalogs did not finish syncing within 15 minutes; see the worker log")


def product_page(handle: str) -> str:
    url = f"{SIM_URL}/store/{handle}/products.json"
    with urllib.request.urlopen(url, timeout=5) as response:  # noqa: S310 - loopback only
        products = [p for p in json.load(response)["products"] if p.get("status") == "active"]
    return f"http://{handle}.localhost:{SIM_PORT}/products/{products[0]['handle']}"


def shops() -> dict:
    with urllib.request.urlopen(f"{SIM_URL}/_sim/state", timeout=5) as response:  # noqa: S310
        return json.load(response)["shops"]


def main() -> int:
    VAR.mkdir(parents=True, exist_ok=True)
    env = app_env()
    processes = Processes()
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    try:
        step("Preparing the database")
        subprocess.run(
            [PYTHON, "manage.py", "migrate", "--noinput", "-v0"], cwd=ROOT, env=env, check=True
        )
        subprocess.run([PYTHON, "manage.py", "setup_schedules"], cwd=ROOT, env=env, check=True)
        # A previous run stopped mid-sync leaves work to pick up (before the worker starts).
        manage(env, "sync_catalog", "--stalled")

        step(f"Starting the Shopify simulator on {SIM_URL}")
        processes.start(
            "simulator",
            [
                PYTHON,
                "-m",
                "simulator",
                "serve",
                "--port",
                str(SIM_PORT),
                "--app-url",
                APP_URL,
                "--state",
                str(VAR / "simulator-state.json"),
            ],
            env,
        )
        step(f"Starting the app on {APP_URL} and a background worker")
        processes.start(
            "web",
            [
                PYTHON,
                "-m",
                "gunicorn",
                "interlayer.wsgi",
                "--bind",
                f"127.0.0.1:{APP_PORT}",
                "--workers",
                "2",
                "--access-logfile",
                "-",
                "--access-logformat",
                "%(m)s %(U)s %(s)s",
            ],
            env,
        )
        processes.start("worker", [PYTHON, "manage.py", "qcluster"], env)
        wait_for(f"{SIM_URL}/_sim/state", "the simulator")
        wait_for(f"{APP_URL}/", "the app")

        handles = sorted(shops())
        step(f"Installing Interlayer into {len(handles)} demo stores (the merchant's clicks)")
        for index, handle in enumerate(handles):
            flow = "oauth" if index % 4 == 3 else "managed"  # both install paths, for real
            result = subprocess.run(
                [
                    PYTHON,
                    "-m",
                    "simulator",
                    "install",
                    f"{handle}.myshopify.com",
                    "--app",
                    APP_URL,
                    "--simulator",
                    SIM_URL,
                    "--flow",
                    flow,
                ],
                cwd=ROOT,
                env=env,
                capture_output=True,
                text=True,
            )
            mark = "ok" if result.returncode == 0 else "FAILED"
            print(f"    {handle:<18} {flow:<8} {mark}  {result.stdout.strip().split(': ', 1)[-1]}")
            if result.returncode != 0:
                raise SystemExit(result.stdout + result.stderr)

        step("Reading and embedding every catalog in the background worker")
        wait_for_catalogs(env, processes, expected=len(handles))
        step("Building the cross-store index")
        manage(env, "rebuild_index")
        shoppers = os.getenv("DEMO_SHOPPERS", "1") != "0"
        if shoppers:
            step("Sending shoppers to the storefronts (DEMO_SHOPPERS=0 turns them off)")
            processes.start(
                "shoppers", [PYTHON, "scripts/demo_shoppers.py", "--simulator", SIM_URL], env
            )

        first = "coffee-corner" if "coffee-corner" in handles else handles[0]
        step("Interlayer is running")
        print(
            f"""
    A storefront product page with the widget:
        {product_page(first)}
    The embedded settings page (in the simulated Shopify admin):
        {SIM_URL}/store/{first}/admin/apps/interlayer
    All demo stores and their storefronts:
        {SIM_URL}/
    {"Shoppers browse, click and buy in the background: every settings page moves within a minute." if shoppers else "No shoppers (DEMO_SHOPPERS=0)."}
    Network state: INTERLAYER_ENV=development DATABASE_URL={env["DATABASE_URL"]} RECOMMENDER_INDEX_DIR={env["RECOMMENDER_INDEX_DIR"]} .venv/bin/python manage.py network_status
    Logs: {VAR}/{{simulator,web,worker,shoppers}}.log

    Press Ctrl-C to stop.""",
            flush=True,
        )
        while True:
            processes.check()
            time.sleep(1)
    except KeyboardInterrupt:
        print()
    finally:
        step("Stopping")
        processes.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
