from django.urls import include, path

from integrations import views

app_name = "integrations"

urlpatterns = [
    path("knowbe4/connect/", views.connect_knowbe4, name="connect_knowbe4"),
    path("<int:connection_id>/", views.detail, name="detail"),
    path("<int:connection_id>/accounts/", views.accounts, name="accounts"),
    path("<int:connection_id>/rotate/", views.rotate_key, name="rotate"),
    path("<int:connection_id>/disconnect/", views.disconnect, name="disconnect"),
    path("csv/", include("integrations.providers.csv_upload.urls")),
    path("knowbe4/reporting/", include("integrations.providers.knowbe4_reporting.urls")),
]
