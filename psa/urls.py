from django.urls import path

from psa import views
from reconcile.sync import views as sync_views

app_name = "psa"

urlpatterns = [
    path("connect/<str:kind>/", views.connect, name="connect"),
    path("connect/<str:kind>/test/", views.test_connection, name="test"),
    path("<int:connection_id>/", views.detail, name="detail"),
    path("<int:connection_id>/types/", views.choose_types, name="types"),
    path("<int:connection_id>/budget/", views.request_budget, name="budget"),
    path("<int:connection_id>/companies/", views.companies, name="companies"),
    path("<int:connection_id>/products/", views.products, name="products"),
    path("<int:connection_id>/lines/", views.lines, name="lines"),
    path("<int:connection_id>/pushes/", views.pushes, name="pushes"),
    # The lifecycle views both sides share (reconcile.sync), at this side's addresses.
    path("<int:connection_id>/rotate/", sync_views.rotate, {"kind": "psa"}, name="rotate"),
    path("<int:connection_id>/disconnect/", sync_views.delete, {"kind": "psa"}, name="disconnect"),
]
