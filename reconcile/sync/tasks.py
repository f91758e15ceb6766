"""Worker entry points of the sync app (django-q2)."""

from reconcile.sync import services


def sync_connection(run_id: int) -> str:
    run = services.run_sync(run_id)
    return run.state if run else "not claimed"


def scheduled_sync(kind: str, connection_id: int) -> str:
    """Entry point of a connection's Schedule: queue a run unless one is active."""
    connection = services.CONNECTION_MODELS[kind].objects.filter(pk=connection_id).first()
    if connection is None or connection.is_paused:
        return "skipped"
    return services.queue_sync(connection, trigger="schedule").state


def heartbeat() -> str:
    """Run every minute by the `worker-heartbeat` Schedule; /healthz reads its age."""
    return "ok"
