from django.apps import AppConfig


class NotificationsConfig(AppConfig):
    name = "reconcile.notifications"
    label = "notifications"
    verbose_name = "Notifications"

    def ready(self):
        from integrations.models import VendorConnection
        from psa.models import PSAConnection
        from reconcile.core.signals import (
            connection_quarantined,
            push_batch_finished,
            sync_failed,
            sync_succeeded,
        )
        from reconcile.notifications import services

        # Sent in the worker (after a sync or a push); this app sits above every other one,
        # which only send signals and never import it.
        sync_failed.connect(services.on_sync_failed, dispatch_uid="notifications.sync_failed")
        sync_succeeded.connect(services.on_sync_succeeded, dispatch_uid="notifications.digest")
        push_batch_finished.connect(
            services.on_push_batch_finished, dispatch_uid="notifications.push_finished"
        )
        for model in (VendorConnection, PSAConnection):
            connection_quarantined.connect(
                services.on_connection_quarantined,
                sender=model,
                dispatch_uid=f"notifications.quarantined.{model.__name__}",
            )
