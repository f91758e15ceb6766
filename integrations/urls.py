from django.urls import include, path

from integrations import views
from reconcile.sync import views as sync_views

app_name = "integrations"

urlpatterns = [
    path("knowbe4/connect/", views.connect_knowbe4, name="connect_knowbe4"),
    path("<int:connection_id>/", views.detail, name="detail"),
    path("<int:connection_id>/accounts/", views.accounts, name="accounts"),
    # The lifecycle views both sides share (reconcile.sync), at this side's addresses.
    path("<int:connection_id>/rotate/", sync_views.rotate, {"kind": "vendor"}, name="rotate"),
    path(
        "<int:connection_id>/disconnect/", sync_views.delete, {"kind": "vendor"}, name="disconnect"
    ),
    path("csv/", include("integrations.providers.csv_upload.urls")),
    path("knowbe4/reporting/", include("integrations.providers.knowbe4_reporting.urls")),
]
