from django.apps import AppConfig


class SyncConfig(AppConfig):
    name = "reconcile.sync"
    label = "sync"
    verbose_name = "Sync runs"

    def ready(self):
        from reconcile.signals import sync_requested
        from reconcile.sync import services

        sync_requested.connect(services.on_sync_requested, dispatch_uid="sync.request")
