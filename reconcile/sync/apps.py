from django.apps import AppConfig


class SyncConfig(AppConfig):
    name = "reconcile.sync"
    label = "sync"
    verbose_name = "Sync runs"

    def ready(self):
        from django.db.models.signals import post_delete, post_save

        from integrations.models import VendorConnection
        from psa.models import PSAConnection
        from reconcile.core.signals import sync_requested
        from reconcile.sync import services

        sync_requested.connect(services.on_sync_requested, dispatch_uid="sync.request")
        # The sync app keeps each connection's Schedule: made when it is created, removed
        # with it (the apps below cannot import this one).
        for model in (VendorConnection, PSAConnection):
            post_save.connect(
                services.on_connection_saved,
                sender=model,
                dispatch_uid=f"sync.schedule.{model.__name__}",
            )
            post_delete.connect(
                services.on_connection_deleted,
                sender=model,
                dispatch_uid=f"sync.unschedule.{model.__name__}",
            )
