"""The sync pipeline: queue a run, claim it, fetch every page, store only a complete import."""

import logging
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta

from django.conf import settings
from django.db import IntegrityError, transaction
from django.db.models import Q
from django.utils import timezone
from django_q.tasks import async_task

from integrations import registry
from integrations import services as vendor_services
from integrations.models import VendorConnection
from reconcile.errors import ExternalAPIError
from reconcile.sync.models import SyncRun

logger = logging.getLogger(__name__)


def mark_stale_runs(connection: VendorConnection) -> int:
    """Runs whose worker stopped reporting (killed, host lost) or never started become unknown."""
    cutoff = timezone.now() - timedelta(seconds=settings.TRUEUP_SYNC_STALE_AFTER)
    return SyncRun.objects.filter(
        Q(state=SyncRun.State.RUNNING, heartbeat_at__lt=cutoff)
        | Q(state=SyncRun.State.QUEUED, queued_at__lt=cutoff),
        vendor_connection=connection,
    ).update(
        state=SyncRun.State.UNKNOWN,
        finished_at=timezone.now(),
        error_message="The worker stopped reporting; the outcome of this run is unknown.",
    )


def queue_sync(connection: VendorConnection, *, trigger: str, actor=None) -> SyncRun:
    """Queue a run of `connection`, or return the one already queued or running."""
    mark_stale_runs(connection)
    try:
        with transaction.atomic():
            run = SyncRun.objects.create(
                organization_id=connection.organization_id,
                vendor_connection=connection,
                trigger=trigger,
                requested_by=actor if actor and actor.is_authenticated else None,
            )
    except IntegrityError:
        return SyncRun.objects.get(vendor_connection=connection, state__in=SyncRun.ACTIVE_STATES)
    transaction.on_commit(
        lambda: async_task(
            "reconcile.sync.tasks.sync_connection",
            run.pk,
            task_name=f"sync-{connection.pk}-{run.pk}",
        )
    )
    return run


def on_sync_requested(sender, *, connection, trigger, actor=None, **kwargs) -> SyncRun:
    return queue_sync(connection, trigger=trigger, actor=actor)


def claim(run_id: int) -> SyncRun | None:
    """Move a queued run to running; only one worker can win this UPDATE."""
    now = timezone.now()
    claimed = SyncRun.objects.filter(pk=run_id, state=SyncRun.State.QUEUED).update(
        state=SyncRun.State.RUNNING, started_at=now, heartbeat_at=now
    )
    if not claimed:
        return None
    return SyncRun.objects.select_related("vendor_connection").get(pk=run_id)


def _save_progress(run: SyncRun) -> None:
    run.heartbeat_at = timezone.now()
    run.save(update_fields=["progress_done", "progress_total", "heartbeat_at", "log"])


def prefetched(pages: Iterator) -> Iterator:
    """Yield from `pages` while a thread already fetches the next one, so each page's HTTP
    wait overlaps the previous page's staging. The thread touches no database."""
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="fetch") as pool:
        upcoming = pool.submit(next, pages, None)
        while (page := upcoming.result()) is not None:
            upcoming = pool.submit(next, pages, None)
            yield page


def run_sync(run_id: int) -> SyncRun | None:
    """Run a claimed sync to its end. The live data changes only in the final merge, after
    every page was fetched; a failure leaves the last good import as it was."""
    run = claim(run_id)
    if run is None:
        return None
    connection = run.vendor_connection
    run.note(f"Started ({run.get_trigger_display().lower()}).")
    _save_progress(run)
    staging = None
    try:
        adapter = registry.adapter_for(connection)
        staging = vendor_services.AccountImport(connection, run.pk)
        for page in prefetched(adapter.iter_account_pages()):
            run.progress_done, run.progress_total = page.number, page.total_pages
            run.note(
                f"Fetched page {page.number} of {page.total_pages} ({len(page.accounts)} accounts)."
            )
            with transaction.atomic():  # one commit per page: its staged rows and progress
                staging.stage(page.accounts)
                _save_progress(run)
        counts = staging.finish()
        vendor_services.mark_succeeded(connection, adapter.api_schema)
    except Exception as error:
        if staging:
            staging.discard()
        if isinstance(error, ExternalAPIError):
            return _fail(run, connection, error, str(error))
        logger.exception("Sync run %s of connection %s crashed", run.pk, connection.pk)
        return _fail(
            run,
            connection,
            error,
            f"Unexpected error ({type(error).__name__}); the details are in the "
            "worker log. The data of the last good import is unchanged.",
        )
    for field, value in counts.as_dict().items():
        setattr(run, field, value)
    run.state = SyncRun.State.SUCCEEDED
    run.finished_at = timezone.now()
    stored = counts.added + counts.updated + counts.unchanged
    run.note(
        f"Stored {stored} accounts: {counts.added} added, {counts.updated} updated, "
        f"{counts.unchanged} unchanged, {counts.removed} no longer listed."
    )
    run.save()
    return run


def _fail(run: SyncRun, connection: VendorConnection, error: Exception, message: str) -> SyncRun:
    run.state = SyncRun.State.FAILED
    run.finished_at = timezone.now()
    run.error_class = type(error).__name__
    run.error_message = message
    run.note(message, level="error")
    run.save()
    vendor_services.mark_failed(connection, message)
    return run
