"""``python -m simulator install``: a merchant installing the app, click by click.

The merchant's browser is an httpx client that follows redirects; requests for
``https://{shop}.myshopify.com`` go to the simulator (as the app's own client does), the
rest (the app) go where they point.
"""

from __future__ import annotations

import html
import re
from dataclasses import dataclass

import httpx


class _BrowserTransport(httpx.BaseTransport):
    def __init__(self, simulator_url: str):
        self._simulator = httpx.URL(simulator_url)
        self._inner = httpx.HTTPTransport()

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        if request.url.host.endswith(".myshopify.com"):
            request.url = request.url.copy_with(
                scheme=self._simulator.scheme, host=self._simulator.host, port=self._simulator.port
            )
        return self._inner.handle_request(request)


@dataclass
class InstallResult:
    ok: bool
    detail: str
    steps: list[str]


def install(shop: str, *, app_url: str, simulator_url: str, flow: str = "managed") -> InstallResult:
    handle = shop.removesuffix(".myshopify.com")
    steps: list[str] = []

    def record(response: httpx.Response) -> None:
        steps.append(f"{response.status_code} {response.request.method} {response.request.url}")

    transport = _BrowserTransport(simulator_url)
    with httpx.Client(
        transport=transport,
        follow_redirects=True,
        timeout=120,
        event_hooks={"response": [record]},
    ) as browser:
        start = f"{simulator_url}/store/{handle}/admin/apps/interlayer/install"
        response = browser.get(start, params={"flow": flow, "app_url": app_url})
        if response.status_code != 200:
            return InstallResult(False, f"install stopped at HTTP {response.status_code}", steps)
        # The admin page frames the app; a browser would load the frame, so we do too.
        match = re.search(r'<iframe id="app-frame"[^>]*src="([^"]+)"', response.text)
        if not match:
            return InstallResult(False, "the admin page did not frame the app", steps)
        frame = browser.get(html.unescape(match.group(1)))
        if frame.status_code != 200 or 'id="install-state"' not in frame.text:
            return InstallResult(
                False, f"the embedded app answered HTTP {frame.status_code}", steps
            )
    return InstallResult(True, "installed", steps)
