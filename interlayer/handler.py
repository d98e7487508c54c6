"""The WSGI handler web processes serve with: Django's, with a short lane for the
storefront's two hottest requests.

GET /proxy/recommendations and GET /proxy/click are asked for on every product page and
every partner click of every participating store. Django's general request cycle (five
middleware in turn, resolving the path, checking the response) is about a fifth of what
answering one costs here. The lane does for them what that cycle would, in one place:
the request signals sent (the database connections checked as a request starts and as
its response closes), the host checked against ALLOWED_HOSTS, the HTTPS redirect and the
security headers of SecurityMiddleware, no shop bound to the log until the signature
names one, an exception answered and logged as Django answers it, a 4xx or 5xx logged as
Django logs it. Any other path or method takes Django's cycle, and every request does
where the settings are not the ones the lane mirrors (DEBUG, another middleware list,
ATOMIC_REQUESTS, another Django release).

tests/recommender/test_storefront_lane.py holds the lane to Django's answers."""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable
from importlib import import_module
from typing import Any

import django
from django.conf import settings
from django.core import signals
from django.core.handlers.exception import response_for_exception
from django.core.handlers.wsgi import WSGIHandler, get_script_name
from django.http import HttpRequest, HttpResponse
from django.middleware.security import SecurityMiddleware
from django.urls import get_script_prefix, resolve, reverse, set_script_prefix
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

# The Django whose request cycle the lane mirrors (requirements.txt pins it): another
# release sends every request through its own cycle until the lane is checked against it.
MIRRORED_DJANGO = (5, 2)


class Handler(WSGIHandler):
    def __init__(self) -> None:
        super().__init__()
        self.lane = _lane_views()
        self._security = SecurityMiddleware(_never_called)

    def __call__(self, environ: dict[str, Any], start_response: Callable) -> Iterable[bytes]:
        view = self.lane.get(environ.get("PATH_INFO", ""))
        if view is None or environ.get("REQUEST_METHOD") != "GET":
            return super().__call__(environ, start_response)
        set_script_prefix(get_script_name(environ))
        signals.request_started.send(sender=self.__class__, environ=environ)
        request = self.request_class(environ)
        try:
            response = self._answer(request, view)
        except Exception as exc:  # from the security headers: answered as Django does
            response = response_for_exception(request, exc)
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
        except Exception as exc:  # a host refused as the redirect was built
            return response_for_exception(request, exc)
        if response is None:
            try:
                request.get_host()  # ALLOWED_HOSTS, which CommonMiddleware checks
            except Exception as exc:  # a host refused: 400
                response = response_for_exception(request, exc)
            else:
                response = self._view_response(request, view)
        return self._security.process_response(request, response)

    def _view_response(
        self, request: HttpRequest, view: Callable[..., HttpResponse]
    ) -> HttpResponse:
        try:
            response = view(request)
            self.check_response(response, view)
            if callable(getattr(response, "render", None)):  # a TemplateResponse
                response = response.render()
        except Exception as exc:  # answered as Django answers it: 400, 403, 404 or 500
            response = response_for_exception(request, exc)
        if not response.streaming and not response.has_header("Content-Length"):
            response["Content-Length"] = str(len(response.content))  # CommonMiddleware
        return response


def _lane_views() -> dict[str, Callable[..., HttpResponse]]:
    """The lane's paths and views, or none when this process's settings are not the
    ones it mirrors."""
    if (
        django.VERSION[:2] != MIRRORED_DJANGO
        or settings.DEBUG
        or tuple(settings.MIDDLEWARE) != MIRRORED_MIDDLEWARE
        or settings.DISALLOWED_USER_AGENTS
        or settings.PREPEND_WWW
        or any(database.get("ATOMIC_REQUESTS") for database in settings.DATABASES.values())
    ):
        # Said where an operator sees it: in production this costs every storefront request.
        (log.info if settings.DEBUG else log.warning)(
            "the storefront lane is off: the settings are not the ones it mirrors"
        )
        return {}
    # Paths as PATH_INFO has them: below the script name a request of this thread set.
    names = getattr(import_module(settings.ROOT_URLCONF), "LANE_ROUTES", ())  # interlayer.urls
    paths = ["/" + reverse(name).removeprefix(get_script_prefix()) for name in names]
    return {path: resolve(path).func for path in paths}


def _never_called(request: HttpRequest) -> HttpResponse:
    raise AssertionError("the lane calls SecurityMiddleware's hooks, never the middleware")
