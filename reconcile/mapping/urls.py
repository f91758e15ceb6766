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
    path("accounts/accept-all/", views.accept_all, name="accept_all"),
    path("services/", views.services_page, name="services"),
    path("services/<int:service_id>/map/", views.map_service, name="map_service"),
    path("services/<int:service_id>/exclude/", views.exclude_service, name="exclude_service"),
    path("services/<int:service_id>/products/", views.product_choices, name="product_choices"),
    path("service-mappings/<int:mapping_id>/unmap/", views.unmap_service, name="unmap_service"),
    path("finish/<int:connection_id>/", views.finish, name="finish"),
]
