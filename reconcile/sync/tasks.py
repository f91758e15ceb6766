"""Worker entry points of the sync app (django-q2)."""

from reconcile.sync import services


def sync_connection(run_id: int) -> str:
    run = services.run_sync(run_id)
    return run.state if run else "not claimed"
