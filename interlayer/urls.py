from django.urls import include, path

from stores import views as store_views

# The routes interlayer.handler serves past Django's general request cycle: the
# storefront's two hottest requests.
LANE_ROUTES = ("recommender:recommendations", "recommender:click")

urlpatterns = [
    # First: its storefront endpoints are the most requested, and no route overlaps another.
    path("", include("recommender.urls")),
    path("", store_views.app_home, name="app-home"),
    path("", include("stores.urls")),
]
