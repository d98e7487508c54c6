from django.urls import path

from recommender.web import pixel, settings_page, storefront

app_name = "recommender"

urlpatterns = [
    path("proxy/recommendations", storefront.recommendations, name="recommendations"),
    path("proxy/click", storefront.click, name="click"),
    path("proxy/impression", storefront.impression, name="impression"),
    path("pixel/events", pixel.pixel_events, name="pixel-events"),
    path("api/overview", settings_page.overview, name="overview"),
    path("api/setup", settings_page.setup, name="setup"),
    path("api/stats", settings_page.store_stats, name="stats"),
    path("api/settings", settings_page.save_settings, name="save-settings"),
    path("api/partners", settings_page.partners, name="partners"),
    path("api/categories", settings_page.categories, name="categories"),
    path("api/products", settings_page.products, name="products"),
    path("api/products/opt-out", settings_page.opt_out, name="opt-out"),
    path("api/preview", settings_page.preview, name="preview"),
    path("api/sync", settings_page.sync_now, name="sync-now"),
]
