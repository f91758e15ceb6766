from django.apps import AppConfig


class TenancyConfig(AppConfig):
    name = "reconcile.tenancy"
    label = "tenancy"
    verbose_name = "Organizations and access"
