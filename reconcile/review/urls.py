from django.urls import path

from reconcile.review import batch_views, views

app_name = "review"

urlpatterns = [
    path("", views.index, name="index"),
    path("export.csv", views.export, name="export"),
    path("bulk/", views.bulk, name="bulk"),
    path("cards/<int:card_id>/", views.card, name="card"),
    path("cards/<int:card_id>/approve/", views.approve, name="approve"),
    path("cards/<int:card_id>/adjust/", views.adjust, name="adjust"),
    path("cards/<int:card_id>/dismiss/", views.dismiss, name="dismiss"),
    path("cards/<int:card_id>/undo/", views.undo, name="undo"),
    path("cards/<int:card_id>/details/", views.details, name="details"),
    path("cards/<int:card_id>/rule/", views.set_rule, name="rule"),
    path("test-mode/", batch_views.test_mode, name="test_mode"),
    path("pushes/", batch_views.batches, name="batches"),
    path("pushes/<int:batch_id>/", batch_views.batch, name="batch"),
    path("pushes/<int:batch_id>.csv", batch_views.batch_csv, name="batch_csv"),
    path(
        "pushes/<int:batch_id>/effective-date/", batch_views.batch_effective_date, name="batch_date"
    ),
    path("pushes/<int:batch_id>/confirm/", batch_views.confirm, name="confirm"),
    path("pushes/<int:batch_id>/discard/", batch_views.discard, name="discard"),
    path("pushes/<int:batch_id>/retry/", batch_views.retry, name="retry"),
]
