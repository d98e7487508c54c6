from django.urls import include, path

from stores import views as store_views

urlpatterns = [
    # First: its storefront endpoints are the most requested, and no route overlaps another.
    path("", include("recommender.urls")),
    path("", store_views.app_home, name="app-home"),
    path("", include("stores.urls")),
]
