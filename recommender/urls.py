from django.urls import path

from recommender import views

app_name = "recommender"

urlpatterns = [
    path("proxy/recommendations", views.recommendations, name="recommendations"),
    path("proxy/click", views.click, name="click"),
    path("proxy/impression", views.impression, name="impression"),
    path("ping", views.ping, name="ping"),
]
