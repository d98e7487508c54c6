from django.urls import path

from stores import views

app_name = "stores"

urlpatterns = [
    path("auth/callback", views.oauth_callback, name="oauth-callback"),
    path("auth/session-token", views.session_token_bounce, name="session-token"),
    path("webhooks", views.webhook, name="webhooks"),
    path("privacy", views.privacy_policy, name="privacy"),
    path("support", views.support, name="support"),
]
