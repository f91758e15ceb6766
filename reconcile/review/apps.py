from django.apps import AppConfig


class ReviewConfig(AppConfig):
    name = "reconcile.review"
    label = "review"
    verbose_name = "Review"

    def ready(self):
        from reconcile.core.signals import connection_deleted, sync_succeeded
        from reconcile.review import services

        sync_succeeded.connect(services.on_sync_succeeded, dispatch_uid="review.reconcile")
        connection_deleted.connect(
            services.on_connection_deleted, dispatch_uid="review.reconcile_after_delete"
        )
        # One structured log line per worker task (the top app, so it may name every model).
        from django_q.signals import post_execute

        from reconcile.observability import log_task

        post_execute.connect(log_task, dispatch_uid="trueup.log_task")
