from django.urls import include, path

from stores import views as store_views

urlpatterns = [
    path("", store_views.app_home, name="app-home"),
    path("", include("stores.urls")),
    path("", include("recommender.urls")),
]
