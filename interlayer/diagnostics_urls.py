"""The production URLconf plus routes only tests and benchmarks use: a trivial JSON
endpoint (the storefront benchmark's baseline), the same behind the app-proxy check alone
(what any storefront endpoint pays before its own work), both again served past Django's
general request cycle as the storefront's endpoints are (interlayer.handler), the embedded
session echo, and what a front proxy forwarded (tests/test_front.py).
Selected with INTERLAYER_URLCONF=interlayer.diagnostics_urls; never in production."""

from django.http import HttpRequest, JsonResponse
from django.urls import path
from django.views.decorators.csrf import csrf_exempt

from interlayer.urls import LANE_ROUTES as production_lane_routes
from interlayer.urls import urlpatterns as production_urlpatterns
from stores import auth
from stores import views as store_views


def ping(request: HttpRequest) -> JsonResponse:
    return JsonResponse({"ok": True})


def proxy_checked(request: HttpRequest) -> JsonResponse:
    try:
        auth.verify_proxy_request(request)
    except auth.AuthError as error:
        return JsonResponse({"error": error.message}, status=error.status)
    return JsonResponse({"ok": True})


@csrf_exempt
def echo_forwarded(request: HttpRequest) -> JsonResponse:
    return JsonResponse({
        "proto": request.META.get("HTTP_X_FORWARDED_PROTO", ""),
        "for": request.META.get("HTTP_X_FORWARDED_FOR", ""),
        "query": len(request.META.get("QUERY_STRING", "")),
        "body": len(request.body),
    })  # fmt: skip


# The same two served past Django's general request cycle, as the storefront's endpoints
# are (interlayer.handler): the benchmark gives its ratios against both.
LANE_ROUTES = (*production_lane_routes, "lane-ping", "lane-proxy-checked")

urlpatterns = [
    path("ping", ping, name="ping"),
    path("proxy/checked", proxy_checked, name="proxy-checked"),
    path("lane/ping", ping, name="lane-ping"),
    path("proxy/lane-checked", proxy_checked, name="lane-proxy-checked"),
    path("echo-forwarded", echo_forwarded, name="echo-forwarded"),
    path("api/session", store_views.session_state, name="session-state"),
    *production_urlpatterns,
]
