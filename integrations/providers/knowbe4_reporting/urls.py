"""KnowBe4 Reporting API pages, included by integrations/urls.py (names in its namespace)."""

from django.urls import path

from integrations.providers.knowbe4_reporting import views

urlpatterns = [
    path("connect/", views.connect_reporting, name="connect_reporting"),
    path("accounts/<int:account_id>/exclusions/", views.exclusions, name="reporting_exclusions"),
    path(
        "accounts/<int:account_id>/exclusions/add/",
        views.add_exclusion,
        name="reporting_exclusion_add",
    ),
    path(
        "accounts/<int:account_id>/exclusions/<int:exclusion_id>/delete/",
        views.delete_exclusion,
        name="reporting_exclusion_delete",
    ),
]
