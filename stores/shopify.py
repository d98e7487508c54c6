"""The only module that speaks HTTP to Shopify.

Everything goes through Shopify's own packages (``shopifyapp`` for token exchange,
refresh and Admin GraphQL; ``ShopifyAPI`` for the authorization-code permission URL) over
one httpx client. With ``SHOPIFY_SIMULATOR_URL`` set, that client's transport sends every
``https://{shop}`` request to the local simulator instead, keeping the Host header, so the
code path is exactly the production one and only the network destination differs.
"""

from __future__ import annotations

import json
import logging
import ssl
import time
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from functools import cache
from typing import Any

import httpx
import shopify
import shopify_app
from django.conf import settings

from interlayer.text import made_storable

log = logging.getLogger(__name__)


class ShopifyError(Exception):
    """Shopify could not do what we asked; ``detail`` is safe to log and show."""

    def __init__(self, detail: str, *, status: int = 0):
        super().__init__(detail)
        self.detail = detail
        self.status = status


class ShopifyAuthError(ShopifyError):
    """Our credentials are not (or no longer) accepted: 401, invalid_client, invalid_grant."""


class ShopifyThrottled(ShopifyError):
    """Shopify asked us to slow down; ``retry_after`` is how long to wait (seconds)."""

    def __init__(self, detail: str, *, retry_after: float, status: int = 429):
        super().__init__(detail, status=status)
        self.retry_after = retry_after


class ShopifyUnavailable(ShopifyError):
    """Shopify failed (5xx), timed out or could not be reached; worth retrying later."""


class ShopUnavailable(ShopifyError):
    """Shopify closed the shop's Admin API: frozen for unpaid bills (402) or locked (423).
    https://shopify.dev/docs/api/usage/response-codes"""


@dataclass(frozen=True)
class TokenGrant:
    """An expiring offline access token and its refresh token, as Shopify issued them."""

    access_token: str
    scopes: str
    expires_at: datetime | None
    refresh_token: str
    refresh_token_expires_at: datetime | None


@dataclass(frozen=True)
class GraphQLResponse:
    data: dict[str, Any]
    extensions: dict[str, Any]

    @property
    def throttle_status(self) -> dict[str, float]:
        return (self.extensions.get("cost") or {}).get("throttleStatus") or {}


class SimulatorTransport(httpx.BaseTransport):
    """Sends requests for any host to the simulator, keeping the original Host header."""

    def __init__(self, simulator_url: str):
        self._target = httpx.URL(simulator_url)
        self._inner = httpx.HTTPTransport(verify=_tls_context())

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        request.url = request.url.copy_with(
            scheme=self._target.scheme, host=self._target.host, port=self._target.port
        )
        return self._inner.handle_request(request)

    def close(self) -> None:
        self._inner.close()


@cache
def _tls_context() -> ssl.SSLContext:
    """One TLS context per process: building one loads the CA bundle (60 ms and more,
    which every Admin API call of a catalog sync paid). A context is safe to share."""
    return httpx.create_ssl_context()


def http_client(timeout: float | None = None) -> httpx.Client:
    """A new client for Shopify requests (the caller closes it)."""
    timeout = settings.SHOPIFY_HTTP_TIMEOUT if timeout is None else timeout
    if settings.SHOPIFY_SIMULATOR_URL:
        transport = SimulatorTransport(settings.SHOPIFY_SIMULATOR_URL)
        return httpx.Client(transport=transport, timeout=timeout)
    return httpx.Client(timeout=timeout, verify=_tls_context())


@cache
def _app(client_id: str, client_secret: str, old_secret: str | None) -> shopify_app.ShopifyApp:
    return shopify_app.ShopifyApp(
        client_id=client_id, client_secret=client_secret, old_client_secret=old_secret
    )


def app() -> shopify_app.ShopifyApp:
    return _app(
        settings.SHOPIFY_API_KEY, settings.SHOPIFY_API_SECRET, settings.SHOPIFY_API_SECRET_OLD
    )


def _parse_expiry(value: str | None) -> datetime | None:
    if not value:
        return None
    return datetime.fromisoformat(value.replace("Z", "+00:00"))


def _grant_from_result(result: Any, action: str) -> TokenGrant:
    if result.ok and result.access_token is not None:
        token = result.access_token
        return TokenGrant(
            access_token=token.token,
            scopes=token.scope or "",
            expires_at=_parse_expiry(token.expires),
            refresh_token=token.refresh_token or "",
            refresh_token_expires_at=_parse_expiry(token.refresh_token_expires),
        )
    code = result.log.code
    detail = f"{action} failed: {code}"
    if code in {
        "invalid_subject_token",
        "invalid_client",
        "invalid_grant",
        "refresh_token_expired",
    }:
        raise ShopifyAuthError(detail, status=result.response.status)
    if code in {"rate_limit_exceeded"}:
        raise ShopifyThrottled(detail, retry_after=2.0)
    raise ShopifyUnavailable(detail, status=result.response.status)


def exchange_id_token(id_token: Any) -> TokenGrant:
    """Token exchange: a verified App Bridge ID token for an expiring offline token.

    https://shopify.dev/docs/apps/build/authentication-authorization/access-tokens/token-exchange
    """
    with http_client() as client:
        result = app().exchange_using_token_exchange(
            "offline", id_token=id_token, expiring=True, http_client=client
        )
    return _grant_from_result(result, "token exchange")


def refresh_access_token(*, shop_domain: str, refresh_token: str) -> TokenGrant:
    """Refresh an expiring offline token; Shopify rotates the refresh token too.

    https://shopify.dev/docs/apps/build/authentication-authorization/access-tokens/offline-access-tokens
    """
    # The package skips the call while the access token is still fresh; we only get here
    # when we decided to refresh, so present it as already expired.
    stale = datetime.now(UTC) - timedelta(seconds=1)
    with http_client() as client:
        result = app().refresh_token_exchanged_access_token(
            {
                "access_mode": "offline",
                "shop": shop_domain.removesuffix(".myshopify.com"),
                "refresh_token": refresh_token,
                "expires": stale.strftime("%Y-%m-%dT%H:%M:%SZ"),
                "refresh_token_expires": "",
            },
            http_client=client,
        )
    return _grant_from_result(result, "token refresh")


def authorization_url(*, shop_domain: str, redirect_uri: str, state: str) -> str:
    """The authorize URL of the authorization-code grant, built by ShopifyAPI."""
    shopify.Session.setup(api_key=settings.SHOPIFY_API_KEY, secret=settings.SHOPIFY_API_SECRET)
    session = shopify.Session(shop_domain, settings.SHOPIFY_API_VERSION)
    return session.create_permission_url(settings.SHOPIFY_SCOPES, redirect_uri, state=state)


# How often, and after how long, a failing code exchange is retried before we give up.
_CODE_EXCHANGE_ATTEMPTS = 3
_CODE_EXCHANGE_MAX_WAIT = 5.0


def exchange_authorization_code(*, shop_domain: str, code: str) -> TokenGrant:
    """Authorization-code grant, asking for an expiring offline token (``expiring=1``).

    ShopifyAPI's ``Session.request_token`` predates expiring tokens (it cannot send
    ``expiring``), so the documented POST is made here with the shared client.
    https://shopify.dev/docs/apps/build/authentication-authorization/access-tokens/authorization-code-grant
    """
    body = {
        "client_id": settings.SHOPIFY_API_KEY,
        "client_secret": settings.SHOPIFY_API_SECRET,
        "code": code,
        "expiring": 1,
    }
    url = f"https://{shop_domain}/admin/oauth/access_token"
    with http_client() as client:
        for attempt in range(1, _CODE_EXCHANGE_ATTEMPTS + 1):
            last = attempt == _CODE_EXCHANGE_ATTEMPTS
            try:
                response = client.post(url, json=body, headers={"Accept": "application/json"})
            except httpx.TimeoutException:
                raise ShopifyUnavailable("code exchange timed out") from None
            except httpx.RequestError:
                raise ShopifyUnavailable("code exchange could not reach the shop") from None
            if response.status_code == 200:
                return _grant_from_payload(response)
            if response.status_code == 429 and not last:
                time.sleep(_retry_after(response))
                continue
            if response.status_code >= 500 and not last:
                time.sleep(min(0.5 * attempt, _CODE_EXCHANGE_MAX_WAIT))
                continue
            break
    if response.status_code in {400, 401, 403}:
        raise ShopifyAuthError(
            f"code exchange refused ({response.status_code})", status=response.status_code
        )
    if response.status_code == 429:
        raise ShopifyThrottled("code exchange throttled", retry_after=_retry_after(response))
    raise ShopifyUnavailable(
        f"code exchange failed ({response.status_code})", status=response.status_code
    )


def _retry_after(response: httpx.Response) -> float:
    try:
        return min(float(response.headers.get("Retry-After", "1")), _CODE_EXCHANGE_MAX_WAIT)
    except ValueError:
        return 1.0


def _grant_from_payload(response: httpx.Response) -> TokenGrant:
    try:
        payload = response.json()
        access_token = payload["access_token"]
    except (ValueError, KeyError, TypeError):
        raise ShopifyUnavailable("code exchange returned a malformed response") from None
    now = datetime.now(UTC)
    expires_in = payload.get("expires_in")
    refresh_in = payload.get("refresh_token_expires_in")
    return TokenGrant(
        access_token=access_token,
        scopes=payload.get("scope", ""),
        expires_at=now + timedelta(seconds=int(expires_in)) if expires_in else None,
        refresh_token=payload.get("refresh_token", ""),
        refresh_token_expires_at=now + timedelta(seconds=int(refresh_in)) if refresh_in else None,
    )


def graphql(
    *, shop_domain: str, access_token: str, query: str, variables: dict[str, Any] | None = None
) -> GraphQLResponse:
    """One Admin GraphQL request at the pinned API version.

    shopifyapp retries 429 (honouring Retry-After) and 5xx itself. Cost-based throttling
    arrives as HTTP 200 with ``errors[].extensions.code == "THROTTLED"``, which it reports
    as a GraphQL error; we turn that into ``ShopifyThrottled`` with the wait the cost data
    implies. https://shopify.dev/docs/api/usage/limits#graphql-admin-api-rate-limits
    """
    with http_client() as client:
        result = app().admin_graphql_request(
            query,
            shop=shop_domain.removesuffix(".myshopify.com"),
            access_token=access_token,
            api_version=settings.SHOPIFY_API_VERSION,
            variables=variables,
            http_client=client,
        )
    if result.ok:
        if result.data is None:
            # shopifyapp reads an unparsable 200 body as an empty success; it is not.
            raise ShopifyUnavailable("Admin API returned malformed JSON", status=200)
        return GraphQLResponse(data=result.data, extensions=result.extensions or {})
    status = result.response.status
    if status == 401:
        raise ShopifyAuthError("Admin API rejected the access token", status=401)
    if result.log.code == "graphql_errors":
        return _raise_for_graphql_errors(result.response.body)
    if status in (402, 423):
        raise ShopUnavailable(
            f"the shop is {'frozen' if status == 402 else 'locked'}", status=status
        )
    if status == 429:
        raise ShopifyThrottled("Admin API rate limit (429)", retry_after=2.0)
    if status == 0 or status >= 500:
        raise ShopifyUnavailable(f"Admin API unavailable ({result.log.code})", status=status)
    raise ShopifyError(f"Admin API error {status}", status=status)


def _raise_for_graphql_errors(body: str) -> GraphQLResponse:
    try:
        payload = json.loads(body)
    except ValueError:
        raise ShopifyUnavailable("Admin API returned malformed JSON") from None
    errors = payload.get("errors") or []
    if isinstance(errors, list) and any(
        (error.get("extensions") or {}).get("code") == "THROTTLED"
        for error in errors
        if isinstance(error, dict)
    ):
        cost = (payload.get("extensions") or {}).get("cost") or {}
        raise ShopifyThrottled(
            "Admin API cost limit reached (THROTTLED)",
            retry_after=throttle_wait(cost),
            status=200,
        )
    messages = "; ".join(
        str(error.get("message", error)) if isinstance(error, dict) else str(error)
        for error in (errors if isinstance(errors, list) else [errors])
    )
    # Shown and stored (a sync's last error): a NUL or a lone surrogate as U+FFFD.
    raise ShopifyError(f"Admin API query failed: {made_storable(messages[:300])}", status=200)


def download_lines(url: str):
    """Stream a bulk operation's JSONL result line by line (it can be large)."""
    try:
        with http_client(timeout=120) as client, client.stream("GET", url) as response:
            if response.status_code != 200:
                raise ShopifyUnavailable(f"bulk result download failed ({response.status_code})")
            yield from response.iter_lines()
    except httpx.HTTPError as error:  # cut off, timed out, unreachable: as Shopify's 5xx
        raise ShopifyUnavailable(f"bulk result download failed ({type(error).__name__})") from None


def throttle_wait(cost: dict[str, Any], *, next_cost: float | None = None) -> float:
    """Seconds until the leaky bucket holds enough points for the next query."""
    status = cost.get("throttleStatus") or {}
    needed = next_cost if next_cost is not None else cost.get("requestedQueryCost") or 0
    available = status.get("currentlyAvailable")
    restore = status.get("restoreRate") or 0
    if available is None or restore <= 0 or needed <= available:
        return 0.0 if available is not None and needed <= available else 1.0
    return round((needed - available) / restore, 3)
