from django.urls import path

from reconcile.sync import views

app_name = "sync"

urlpatterns = [
    path("", views.status_page, name="status"),
    path("all/", views.sync_all, name="sync_all"),
    path("<str:kind>/<int:connection_id>/schedule/", views.set_schedule, name="schedule"),
    path(
        "<str:kind>/<int:connection_id>/status/", views.connection_status, name="connection_status"
    ),
    path("<str:kind>/<int:connection_id>/run/", views.sync_now, name="sync_now"),
    path("<str:kind>/<int:connection_id>/test/", views.test_connection, name="test"),
    path("<str:kind>/<int:connection_id>/deactivate/", views.deactivate, name="deactivate"),
    path("<str:kind>/<int:connection_id>/activate/", views.activate, name="activate"),
    path("<str:kind>/<int:connection_id>/resume/", views.resume, name="resume"),
    path("runs/<int:run_id>/", views.run_detail, name="run_detail"),
]
