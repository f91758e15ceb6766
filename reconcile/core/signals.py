"""How the lower apps ask for a sync without importing the sync app (imports point down).

`sync_requested.send(sender=..., connection=..., trigger=..., actor=...)`; the sync app is its
one receiver (reconcile/sync/apps.py) and answers with the queued SyncRun.
"""

from django.dispatch import Signal

sync_requested = Signal()


def request_sync(connection, *, trigger: str, actor=None):
    """Ask for a sync of `connection`; returns the SyncRun that will do it."""
    responses = sync_requested.send(
        sender=type(connection), connection=connection, trigger=trigger, actor=actor
    )
    return responses[0][1] if responses else None


# Sent by the sync app when a run succeeded (`run=`); the review app reconciles on it.
sync_succeeded = Signal()

# Sent by the sync app when a run failed (`run=`), and when that failure quarantined its
# connection (`connection=`, `run=`); notifications listen.
sync_failed = Signal()
connection_quarantined = Signal()

# Sent by the review app when the worker finished a push batch (`batch=`).
push_batch_finished = Signal()

# Sent when a connection and everything imported through it was deleted (`organization=`):
# the review app reconciles again.
connection_deleted = Signal()
