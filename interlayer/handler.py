"""The WSGI handler web processes serve with: Django's, with a short lane for the
storefront's two hottest requests.

GET /proxy/recommendations and GET /proxy/click are asked for on every product page and
every partner click of every participating store. Django's general request cycle (the
request signals, five middleware in turn, resolving the path) is about a fifth of what
answering one costs here. The lane does for them what that cycle would, in one place:
the database connections checked as a request starts, the host checked against
ALLOWED_HOSTS, the HTTPS redirect and the security headers of SecurityMiddleware, no shop
bound to the log until the signature names one, an exception answered and logged as
Django answers it, a 4xx or 5xx logged as Django logs it; the response's close still
ends the request (Django's request_finished). Anything else (another path or method, a
script name, DEBUG, a middleware list other than the one the lane mirrors) takes
Django's cycle.

tests/test_storefront_lane.py holds the lane to the same answers as Django's cycle."""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable
from typing import Any

from django.conf import settings
from django.core.handlers.exception import response_for_exception
from django.core.handlers.wsgi import WSGIHandler
from django.db import close_old_connections
from django.http import HttpRequest, HttpResponse
from django.middleware.security import SecurityMiddleware
from django.urls import resolve, reverse
from django.utils.log import log_response

from interlayer.logs import bind_shop

log = logging.getLogger(__name__)

# The middleware the lane does the work of (interlayer.settings.MIDDLEWARE): with any
# other list, every request takes Django's cycle.
MIRRORED_MIDDLEWARE = (
    "interlayer.health.HealthMiddleware",  # answers /health alone
    "interlayer.logs.RequestShopMiddleware",
    "django.middleware.security.SecurityMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",  # static files alone
    "django.middleware.common.CommonMiddleware",
)

LANE_ROUTES = ("recommender:recommendations", "recommender:click")


class Handler(WSGIHandler):
    def __init__(self) -> None:
        super().__init__()
        self.lane = _lane_views()
        self._security = SecurityMiddleware(_never_called)

    def __call__(self, environ: dict[str, Any], start_response: Callable) -> Iterable[bytes]:
        view = self.lane.get(environ.get("PATH_INFO", "")) if self.lane else None
        if view is None or environ.get("REQUEST_METHOD") != "GET" or environ.get("SCRIPT_NAME"):
            return super().__call__(environ, start_response)
        # What request_started does (its other receiver resets the query log: DEBUG only).
        close_old_connections()
        request = self.request_class(environ)
        response = self._answer(request, view)
        response._resource_closers.append(request.close)
        if response.status_code >= 400:
            log_response(
                "%s: %s", response.reason_phrase, request.path, response=response, request=request
            )
        # Its close sends request_finished, as a response of Django's cycle does.
        response._handler_class = self.__class__
        start_response(
            f"{response.status_code} {response.reason_phrase}",
            [*response.items(), *(("Set-Cookie", c.output(header="")) for c in response.cookies.values())],
        )  # fmt: skip
        return response

    def _answer(self, request: HttpRequest, view: Callable[..., HttpResponse]) -> HttpResponse:
        bind_shop(None)  # RequestShopMiddleware
        try:
            response = self._security.process_request(request)  # the HTTPS redirect
            if response is None:
                request.get_host()  # ALLOWED_HOSTS, which CommonMiddleware checks
                response = self._view_response(request, view)
        except Exception as exc:  # a host refused: answered as Django answers it (400)
            response = response_for_exception(request, exc)
        return self._security.process_response(request, response)

    def _view_response(
        self, request: HttpRequest, view: Callable[..., HttpResponse]
    ) -> HttpResponse:
        try:
            response = view(request)
        except Exception as exc:  # answered as Django answers it: 400, 403, 404 or 500
            response = response_for_exception(request, exc)
        if not response.streaming and not response.has_header("Content-Length"):
            response["Content-Length"] = str(len(response.content))  # CommonMiddleware
        return response


def _lane_views() -> dict[str, Callable[..., HttpResponse]]:
    """The lane's paths and views, or none when this process's settings are not the
    ones it mirrors."""
    if (
        settings.DEBUG
        or tuple(settings.MIDDLEWARE) != MIRRORED_MIDDLEWARE
        or settings.DISALLOWED_USER_AGENTS
        or settings.PREPEND_WWW
        or settings.FORCE_SCRIPT_NAME
    ):
        return {}
    return {reverse(name): resolve(reverse(name)).func for name in LANE_ROUTES}


def _never_called(request: HttpRequest) -> HttpResponse:
    raise AssertionError("the lane calls SecurityMiddleware's hooks, never the middleware")
