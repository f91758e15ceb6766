"""Structured logs: one line per request and one per worker task, with the organization and
the run (or batch) they concern. Never a body, header or query string: secrets travel there.

The lines go through the standard `logging` module; settings.LOGGING renders them as JSON
(python-json-logger) unless TRUEUP_LOG_FORMAT=plain.
"""

import logging
import time

from reconcile.review.models import PushBatch
from reconcile.sync.models import SyncRun

requests_log = logging.getLogger("trueup.requests")
tasks_log = logging.getLogger("trueup.tasks")

# Worker entry points whose first argument names a row that belongs to an organization.
TASK_SUBJECTS = {
    "reconcile.sync.tasks.sync_connection": ("run_id", SyncRun),
    "reconcile.review.tasks.push_batch": ("batch_id", PushBatch),
    "reconcile.review.tasks.reconcile": ("organization_id", None),
}


class RequestLogMiddleware:
    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        started = time.monotonic()
        response = self.get_response(request)
        membership = getattr(request, "membership", None)
        user = getattr(request, "user", None)
        duration_ms = round((time.monotonic() - started) * 1000, 1)
        requests_log.info(
            "%s %s %s %.0f ms",
            request.method,
            request.path,
            response.status_code,
            duration_ms,
            extra={
                "method": request.method,
                "path": request.path,
                "status": response.status_code,
                "duration_ms": duration_ms,
                "user_id": user.pk if user is not None and user.is_authenticated else None,
                "organization_id": membership.organization_id if membership else None,
                "htmx": bool(getattr(request, "htmx", False)),
            },
        )
        return response


def log_task(sender, task, **kwargs) -> None:
    """django-q2's post_execute: one line per finished task."""
    func = task.get("func")
    name = func if isinstance(func, str) else getattr(func, "__name__", repr(func))
    fields = {
        "task": task.get("name"),
        "func": name,
        "success": bool(task.get("success")),
        "duration_ms": None,
    }
    started, stopped = task.get("started"), task.get("stopped")
    if started and stopped:
        fields["duration_ms"] = round((stopped - started).total_seconds() * 1000, 1)
    args = task.get("args") or ()
    subject = TASK_SUBJECTS.get(name)
    if subject and args and isinstance(args[0], int):
        key, model = subject
        fields[key] = args[0]
        if model is not None:
            fields["organization_id"] = (
                model.objects.filter(pk=args[0]).values_list("organization_id", flat=True).first()
            )
    if not fields["success"]:
        # The result of a failed task is its traceback text: the type is enough here.
        fields["error"] = str(task.get("result", ""))[:200]
    tasks_log.log(
        logging.INFO if fields["success"] else logging.ERROR,
        "task %s %s",
        name,
        "ok" if fields["success"] else "failed",
        extra=fields,
    )
