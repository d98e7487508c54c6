"""Command line: ``serve`` the simulator, or ``install`` the app into one of its shops."""

from __future__ import annotations

import argparse
import json
import logging
import os
import signal
import sys
import threading
import time
from pathlib import Path

from simulator import demo_shops
from simulator.install import install
from simulator.server import make_server
from simulator.state import AppConfig, World

ROOT = Path(__file__).resolve().parent.parent


def _serve(args: argparse.Namespace) -> int:
    app = AppConfig.from_toml(
        Path(args.app_config),
        api_key=os.getenv("SHOPIFY_API_KEY", "interlayer-dev-api-key"),
        api_secret=os.getenv("SHOPIFY_API_SECRET", "interlayer-dev-api-secret-not-for-production"),
        app_url=args.app_url,
    )
    public_url = args.public_url or f"http://{args.host}:{args.port}"
    world = World(app, public_url=public_url)
    if args.shops:
        world.load_dir(Path(args.shops))
    else:
        demo_shops.load_into(world)
    state_file = Path(args.state) if args.state else None
    if state_file and state_file.exists():
        world.restore(json.loads(state_file.read_text()))
        print(f"Restored simulator state from {state_file}", flush=True)
    server = make_server(world, args.host, args.port)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    if state_file:
        _save_periodically(world, state_file)
    print(f"Shopify simulator on {public_url} with {len(world.shops)} shops", flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()
        if state_file:
            world.save(state_file)
    return 0


def _save_periodically(world, path: Path, every: float = 3.0) -> None:
    def loop() -> None:
        while True:
            time.sleep(every)
            world.save(path)

    threading.Thread(target=loop, name="state-saver", daemon=True).start()


def _install(args: argparse.Namespace) -> int:
    result = install(
        args.shop,
        app_url=args.app.rstrip("/"),
        simulator_url=args.simulator.rstrip("/"),
        flow=args.flow,
    )
    if args.verbose:
        print("\n".join(result.steps))
    print(f"{args.shop}: {result.detail}")
    return 0 if result.ok else 1


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m simulator")
    commands = parser.add_subparsers(dest="command", required=True)

    serve = commands.add_parser("serve", help="run the simulator")
    serve.add_argument("--host", default="127.0.0.1")
    serve.add_argument("--port", type=int, default=9000)
    serve.add_argument("--shops", help="directory of <name>.json files in the products.json shape")
    serve.add_argument("--app-url", default=os.getenv("SHOPIFY_APP_URL", "http://127.0.0.1:8000"))
    serve.add_argument("--app-config", default=str(ROOT / "shopify.app.toml"))
    serve.add_argument("--public-url", help="the URL browsers reach the simulator at")
    serve.add_argument("--state", help="a JSON file to keep installs, tokens and catalogs in")
    serve.set_defaults(func=_serve)

    install = commands.add_parser("install", help="install the app into a shop as a merchant")
    install.add_argument("shop", help="e.g. coffee-corner.myshopify.com")
    install.add_argument("--app", required=True, help="the app's base URL")
    install.add_argument(
        "--simulator", default=os.getenv("SHOPIFY_SIMULATOR_URL", "http://127.0.0.1:9000")
    )
    install.add_argument("--flow", choices=["managed", "oauth"], default="managed")
    install.add_argument("-v", "--verbose", action="store_true")
    install.set_defaults(func=_install)

    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s simulator %(message)s")
    logging.getLogger("httpx").setLevel(logging.WARNING)
    return args.func(args)


if __name__ == "__main__":
    sys.exit(main())
