from django.apps import AppConfig


class ReviewConfig(AppConfig):
    name = "reconcile.review"
    label = "review"
    verbose_name = "Review"

    def ready(self):
        from reconcile.review import services
        from reconcile.signals import connection_deleted, sync_succeeded

        sync_succeeded.connect(services.on_sync_succeeded, dispatch_uid="review.reconcile")
        connection_deleted.connect(
            services.on_connection_deleted, dispatch_uid="review.reconcile_after_delete"
        )
