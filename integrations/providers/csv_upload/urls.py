"""Included by integrations/urls.py under csv/, in its `integrations` namespace."""

from django.urls import path

from integrations.providers.csv_upload import views

urlpatterns = [
    path("new/", views.new_connection, name="csv_new"),
    path("<int:connection_id>/", views.connection, name="csv_connection"),
    path("uploads/<int:upload_id>/", views.preview, name="csv_preview"),
    path("uploads/<int:upload_id>/mapping/", views.mapping, name="csv_mapping"),
    path("uploads/<int:upload_id>/confirm/", views.confirm, name="csv_confirm"),
    path("uploads/<int:upload_id>/discard/", views.discard, name="csv_discard"),
]
