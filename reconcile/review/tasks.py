"""Worker entry points of the review app (django-q2)."""

from reconcile.review import push


def push_batch(batch_id: int) -> str:
    batch = push.run_batch(batch_id)
    return batch.state if batch else "not claimed"
