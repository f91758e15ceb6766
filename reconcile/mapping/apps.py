from django.apps import AppConfig


class MappingConfig(AppConfig):
    name = "reconcile.mapping"
    label = "mapping"
    verbose_name = "Mapping"
