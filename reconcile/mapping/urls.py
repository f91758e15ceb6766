from django.urls import path

from reconcile.mapping import views

app_name = "mapping"

urlpatterns = [
    path("accounts/", views.accounts, name="accounts"),
    path("accounts/unmapped/", views.unmapped_counter, name="unmapped_counter"),
    path("accounts/<int:account_id>/map/", views.map_account, name="map"),
    path("accounts/<int:account_id>/unmap/", views.unmap_account, name="unmap"),
    path("accounts/<int:account_id>/exclude/", views.exclude_account, name="exclude"),
    path("accounts/<int:account_id>/accept/", views.accept_suggestion, name="accept"),
    path("accounts/<int:account_id>/reject/", views.reject_suggestion, name="reject"),
    path("accounts/<int:account_id>/companies/", views.company_choices, name="company_choices"),
]
