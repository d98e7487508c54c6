from django.urls import path

from recommender import settings_views, views

app_name = "recommender"

urlpatterns = [
    path("proxy/recommendations", views.recommendations, name="recommendations"),
    path("proxy/click", views.click, name="click"),
    path("proxy/impression", views.impression, name="impression"),
    path("ping", views.ping, name="ping"),
    path("api/overview", settings_views.overview, name="overview"),
    path("api/stats", settings_views.store_stats, name="stats"),
    path("api/settings", settings_views.save_settings, name="save-settings"),
    path("api/partners", settings_views.partners, name="partners"),
    path("api/categories", settings_views.categories, name="categories"),
    path("api/products", settings_views.products, name="products"),
    path("api/products/opt-out", settings_views.opt_out, name="opt-out"),
    path("api/preview", settings_views.preview, name="preview"),
    path("api/sync", settings_views.sync_now, name="sync-now"),
]
