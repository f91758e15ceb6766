"""The sync pipeline: queue a run, claim it, fetch every page, store only a complete import."""

import logging
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta

from django.conf import settings
from django.db import IntegrityError, transaction
from django.db.models import Q
from django.utils import timezone
from django_q.models import Schedule
from django_q.tasks import async_task

from integrations.models import VendorConnection
from psa.models import PSAConnection
from reconcile.core.errors import CredentialRejected, ExternalAPIError
from reconcile.core.signals import (
    connection_deleted,
    connection_quarantined,
    sync_failed,
    sync_succeeded,
)
from reconcile.sync.models import SyncRun
from reconcile.tenancy import audit

logger = logging.getLogger(__name__)


def _scope(connection) -> dict:
    """The SyncRun filter of a vendor or PSA connection."""
    return {f"{connection.side}_connection": connection}


def mark_stale_runs(connection) -> int:
    """Runs whose worker stopped reporting (killed, host lost) or never started become unknown."""
    cutoff = timezone.now() - timedelta(seconds=settings.TRUEUP_SYNC_STALE_AFTER)
    return SyncRun.objects.filter(
        Q(state=SyncRun.State.RUNNING, heartbeat_at__lt=cutoff)
        | Q(state=SyncRun.State.QUEUED, queued_at__lt=cutoff),
        **_scope(connection),
    ).update(
        state=SyncRun.State.UNKNOWN,
        finished_at=timezone.now(),
        error_message="The worker stopped reporting; the outcome of this run is unknown.",
    )


def queue_sync(connection, *, trigger: str, actor=None) -> SyncRun:
    """Queue a run of `connection`, or return the one already queued or running."""
    mark_stale_runs(connection)
    try:
        with transaction.atomic():
            run = SyncRun.objects.create(
                organization_id=connection.organization_id,
                **_scope(connection),
                trigger=trigger,
                requested_by=actor if actor and actor.is_authenticated else None,
            )
    except IntegrityError:
        return SyncRun.objects.get(**_scope(connection), state__in=SyncRun.ACTIVE_STATES)
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
    return SyncRun.objects.select_related("vendor_connection", "psa_connection").get(pk=run_id)


def _save_progress(run: SyncRun) -> None:
    run.heartbeat_at = timezone.now()
    run.save(update_fields=["progress_done", "progress_total", "heartbeat_at", "log"])


class Prefetched:
    """A step's pages fetched one ahead in a thread of their own, from the moment it is made:
    the steps of an import (companies, catalogue, lines) are asked for at once, and the next
    page arrives while this one is staged."""

    def __init__(self, pages: Iterator):
        self.pages = pages
        self.pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="fetch")
        self.upcoming = self.pool.submit(next, pages, None)

    def __iter__(self) -> Iterator:
        while (page := self.upcoming.result()) is not None:
            self.upcoming = self.pool.submit(next, self.pages, None)
            yield page

    def close(self) -> None:
        """Stop fetching (waits for a request already sent)."""
        self.pool.shutdown(wait=True, cancel_futures=True)


def run_sync(run_id: int) -> SyncRun | None:
    """Run a claimed sync to its end. The live data changes only once every page was
    fetched; a failure leaves the last good import as it was."""
    run = claim(run_id)
    if run is None:
        return None
    connection = run.connection
    run.note(f"Started ({run.get_trigger_display().lower()}).")
    _save_progress(run)
    try:
        counts = _import(run, connection)
    except ExternalAPIError as error:
        return _fail(run, connection, error, str(error))
    except Exception as error:
        logger.exception("Sync run %s of %s crashed", run.pk, connection)
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
    run.save()
    sync_succeeded.send(sender=SyncRun, run=run)
    return run


def _import(run: SyncRun, connection):
    """Fetch every page of every step of the connection's import, then merge it all."""
    adapter = connection.adapter()
    staging = connection.start_import(run.pk)
    feeds = []
    try:
        steps = staging.steps(adapter)
        # With requests at once, the steps too are asked for at once; else one after another.
        at_once = adapter.concurrency > 1
        if at_once:
            feeds = [Prefetched(step.pages) for step in steps]
        for index, step in enumerate(steps):
            if not at_once:
                feeds.append(Prefetched(step.pages))
            for page in feeds[index]:
                run.progress_done += 1
                if len(steps) == 1 and page.total_pages:  # else the total is not known yet
                    run.progress_total = page.total_pages
                of = f" of {page.total_pages}" if page.total_pages else ""
                run.note(f"Fetched {step.label} page {page.number}{of} ({len(page.items)}).")
                with transaction.atomic():  # one commit per page: what it staged, and progress
                    step.add(page.items)
                    _save_progress(run)
        counts, summary = staging.finish()
    except Exception:
        staging.discard()
        raise
    finally:
        for feed in feeds:
            feed.close()
        adapter.close()
    connection.mark_succeeded(**staging.learnt(adapter))
    for line in summary:
        run.note(line)
    return counts


def _fail(run: SyncRun, connection, error: Exception, message: str) -> SyncRun:
    run.state = SyncRun.State.FAILED
    run.finished_at = timezone.now()
    run.error_class = type(error).__name__
    run.error_message = message
    run.note(message, level="error")
    # An error that knows when trying again makes sense (a daily cap) moves the schedule there
    # and does not count toward quarantine.
    retry_at = getattr(error, "retry_at", None)
    quarantined = connection.mark_failed(
        message, credential_rejected=isinstance(error, CredentialRejected), counts=not retry_at
    )
    if retry_at:
        postponed = Schedule.objects.filter(
            name=schedule_name(connection), next_run__lt=retry_at
        ).update(next_run=retry_at)
        if postponed:
            run.note(f"Next scheduled sync moved to {retry_at:%Y-%m-%d %H:%M} UTC.")
    if quarantined:
        run.note(
            "Connection quarantined: its schedule is paused until someone tests it and resumes it.",
            level="error",
        )
    # Only the outcome: whatever else the failed import left on the run object is not saved.
    run.save(update_fields=["state", "finished_at", "error_class", "error_message", "log"])
    sync_failed.send(sender=SyncRun, run=run)
    if quarantined:
        apply_schedule(connection)
        connection_quarantined.send(sender=type(connection), connection=connection, run=run)
    return run


CONNECTION_MODELS = {"vendor": VendorConnection, "psa": PSAConnection}


def schedule_name(connection) -> str:
    return f"sync-{connection.side}-{connection.pk}"


def apply_schedule(connection) -> Schedule | None:
    """Make the connection's django-q2 Schedule match its polling interval (none if disabled)."""
    name = schedule_name(connection)
    interval = connection.polling_interval
    if not interval or connection.is_paused:
        Schedule.objects.filter(name=name).delete()
        return None
    current = Schedule.objects.filter(name=name).first()
    if current and current.minutes == interval:
        return current
    schedule, _ = Schedule.objects.update_or_create(
        name=name,
        defaults={
            "func": "reconcile.sync.tasks.scheduled_sync",
            "args": repr((connection.side, connection.pk)),
            "schedule_type": Schedule.MINUTES,
            "minutes": interval,
            "repeats": -1,
            "next_run": timezone.now() + timedelta(minutes=interval),
        },
    )
    return schedule


def next_scheduled_run(connection):
    return (
        Schedule.objects.filter(name=schedule_name(connection))
        .values_list("next_run", flat=True)
        .first()
    )


def manual_sync_refusal(connection) -> str:
    """Why "Sync now" must wait, or "" (a per-connection minimum between manual syncs)."""
    if connection.is_quarantined:
        return "This connection is quarantined: test it and resume it first."
    if connection.state == connection.State.DISABLED:
        return "This connection is deactivated: activate it first."
    last = (
        SyncRun.objects.filter(**_scope(connection))
        .order_by("-queued_at")
        .values_list("queued_at", flat=True)
        .first()
    )
    if last is None:
        return ""
    possible = last + timedelta(minutes=connection.min_manual_interval)
    if possible <= timezone.now():
        return ""
    at = timezone.localtime(possible)
    return (
        f"The last sync started less than {connection.min_manual_interval} minutes ago: "
        f"next manual sync possible at {at:%H:%M}."
    )


def on_connection_saved(sender, instance, created, **kwargs) -> None:
    if created:
        apply_schedule(instance)


def on_connection_deleted(sender, instance, **kwargs) -> None:
    Schedule.objects.filter(name=schedule_name(instance)).delete()


# A connection's life: connect, test, rotate its credentials, deactivate / activate, resume
# after quarantine, delete. One set for both sides; what differs lives in the provider.


@transaction.atomic
def connect(
    model,
    organization,
    actor,
    *,
    kind: str,
    settings: dict,
    secrets: dict,
    description: str = "",
    expires_on=None,
    **fields,
):
    """Save a connection whose credentials the caller already tested; `model` is the side's
    connection model, `fields` further model fields (an account name, a polling interval)."""
    connection = model(
        organization=organization,
        kind=kind,
        settings=settings,
        description=description,
        credential_expires_on=expires_on,
        state=model.State.PENDING,
        **fields,
    )
    connection.set_secrets(secrets)
    connection.save()
    audit.record(
        organization,
        actor,
        "connection.created",
        connection,
        after=connection.audit_fields() | {key: str(value) for key, value in fields.items()},
    )
    return connection


@transaction.atomic
def rotate_credentials(connection, actor, *, secrets: dict, settings: dict, expires_on=None):
    """Replace the credentials (already tested by the caller); `settings` are merged into the
    stored ones, so what the form does not ask for (a request budget) is kept."""
    before = {
        "secret_last4": connection.secret_hint,
        "expires_on": str(connection.credential_expires_on or ""),
    }
    connection.set_secrets(secrets)
    connection.settings = connection.settings | settings
    connection.credential_expires_on = expires_on
    connection.save(
        update_fields=["secrets_encrypted", "secret_hint", "settings", "credential_expires_on"]
    )
    audit.record(
        connection.organization,
        actor,
        "connection.credentials_rotated",
        connection,
        before=before,
        after={"secret_last4": connection.secret_hint, "expires_on": str(expires_on or "")},
    )


@transaction.atomic
def delete_connection(connection, actor) -> None:
    """Remove the credentials and everything imported through the connection; the audit log
    and the push ledger keep the record of what happened."""
    audit.record(
        connection.organization,
        actor,
        "connection.disconnected",
        connection,
        before=connection.audit_fields() | connection.contents(),
    )
    organization = connection.organization
    connection.delete()
    connection_deleted.send(sender=type(connection), organization=organization)


def test_connection(connection) -> tuple[bool, str]:
    """Call the cheapest authenticated endpoint; (worked, what to tell the person)."""
    adapter = connection.adapter()
    try:
        check = adapter.test()
    except ExternalAPIError as error:
        return False, str(error)
    finally:
        adapter.close()
    return True, f"{check.message} ({check.latency_ms} ms)"


def _audit(connection, actor, action: str, **after) -> None:
    audit.record(
        connection.organization,
        actor,
        action,
        connection,
        after={"state": connection.state, **after},
    )


@transaction.atomic
def deactivate(connection, actor) -> None:
    """Stop schedules and pushes; every row and mapping stays."""
    connection.state = connection.State.DISABLED
    connection.save(update_fields=["state"])
    apply_schedule(connection)
    _audit(connection, actor, "connection.deactivated")


def activate(connection, actor) -> tuple[bool, str]:
    """Back in service once a test passes; the schedule restarts."""
    worked, message = test_connection(connection)
    if worked:
        with transaction.atomic():
            connection.state = (
                connection.State.ACTIVE if connection.last_success_at else connection.State.PENDING
            )
            connection.save(update_fields=["state"])
            apply_schedule(connection)
            _audit(connection, actor, "connection.activated", test=message)
    return worked, message


def resume(connection, actor) -> tuple[bool, str]:
    """Lift a quarantine once a test passes; the schedule restarts."""
    worked, message = test_connection(connection)
    if worked:
        with transaction.atomic():
            reason = connection.quarantine_reason
            connection.resume()
            apply_schedule(connection)
            _audit(connection, actor, "connection.resumed", test=message, quarantine=reason)
    return worked, message
