"""Notifications: who is told what (signal receivers and the daily credential check), and the
worker that e-mails them.

Receivers run where the signals are sent, in the worker after a sync or a push: they write one
Notification per member who wants the kind (in the app, by e-mail or both) and queue
`tasks.send_pending` on commit. Sending never happens in a request. A mail server that is down
leaves the rows pending; the every-five-minutes schedule retries them with a back-off and gives
up after TRUEUP_NOTIFICATION_MAX_ATTEMPTS (the notification stays visible in the app).
"""

import logging
import smtplib
from dataclasses import dataclass, field
from datetime import timedelta
from functools import wraps

from django.conf import settings
from django.core.mail import EmailMessage, get_connection
from django.db import transaction
from django.db.models import Count, Exists, Max, OuterRef, Q, Subquery
from django.template.loader import render_to_string
from django.urls import reverse
from django.utils import timezone
from django_q.tasks import async_task

from integrations.models import UsageSnapshot, VendorAccount, VendorConnection
from reconcile.mapping.models import MappingState
from reconcile.notifications.models import Kind, Notification, NotificationPreference, channels
from reconcile.review.models import PushBatch, PushItem
from reconcile.sync.models import SyncRun
from reconcile.tenancy import audit
from reconcile.tenancy.models import Membership

logger = logging.getLogger(__name__)

EXPIRY_WARNING_DAYS = 14
DIGEST_LIST_LIMIT = 30
SEND_BATCH = 200
# How long a worker holds a notification it is sending before another may try it.
SEND_LEASE = timedelta(minutes=10)
# SMTP answers about one message (a refused address): the next message may still go.
MESSAGE_ERRORS = (smtplib.SMTPRecipientsRefused, smtplib.SMTPSenderRefused, smtplib.SMTPDataError)


def base_url() -> str:
    return settings.TRUEUP_BASE_URL.rstrip("/")


def absolute(path: str) -> str:
    return base_url() + path


# --- writing notifications ---------------------------------------------------------------------


def recipients(organization_id: int, kinds: list[str]) -> list[tuple[Membership, bool, bool]]:
    """Members who want any of `kinds`: (membership, by e-mail, in the app). Two queries."""
    memberships = (
        Membership.objects.filter(organization_id=organization_id)
        .select_related("user")
        .prefetch_related("notification_preferences")
    )
    found = []
    for membership in memberships:
        chosen = channels(membership)
        email = any(chosen[kind][0] for kind in kinds)
        in_app = any(chosen[kind][1] for kind in kinds)
        if email or in_app:
            found.append((membership, email, in_app))
    return found


def notify(
    organization_id: int,
    kind: str,
    *,
    subject: str,
    body: str,
    url: str,
    dedupe_key: str,
    also_for: tuple[str, ...] = (),
) -> int:
    """One notification per member who wants `kind` (or one of `also_for`), each at most once
    per `dedupe_key`; e-mails are queued for the worker. Returns the number of recipients."""
    subject = " ".join(subject.split())[:200]  # one line: a header must not break
    rows = [
        Notification(
            organization_id=organization_id,
            user=membership.user,
            kind=kind,
            subject=subject,
            body=body,
            url=url,
            dedupe_key=dedupe_key[:200],
            in_app=in_app,
            email_state=Notification.EmailState.PENDING
            if email and membership.user.email
            else Notification.EmailState.SKIPPED,
        )
        for membership, email, in_app in recipients(organization_id, [kind, *also_for])
    ]
    if not rows:
        return 0
    with transaction.atomic():
        Notification.objects.bulk_create(rows, ignore_conflicts=True)
        if any(row.email_state == Notification.EmailState.PENDING for row in rows):
            transaction.on_commit(queue_sending)
    return len(rows)


def queue_sending() -> None:
    async_task("reconcile.notifications.tasks.send_pending", task_name="notifications-send")


def _message(template: str, **context) -> str:
    return render_to_string(f"notifications/messages/{template}.txt", context).strip() + "\n"


def connection_url(connection) -> str:
    return connection.get_absolute_url()


def _quietly(receiver):
    """A receiver's failure is logged, never raised into the sync or push that sent it (and
    rolled back to its own savepoint, so an enclosing transaction goes on)."""

    @wraps(receiver)
    def wrapper(*args, **kwargs):
        try:
            with transaction.atomic():
                return receiver(*args, **kwargs)
        except Exception:
            logger.exception("Notification receiver %s failed", receiver.__name__)
            return None

    return wrapper


# --- receivers ---------------------------------------------------------------------------------


def _quarantined_by(run: SyncRun, connection) -> bool:
    started = run.started_at or run.queued_at
    return bool(connection.quarantined_at and started and connection.quarantined_at >= started)


@_quietly
def on_sync_failed(sender, *, run: SyncRun, **kwargs) -> int:
    connection = type(run.connection).objects.get(pk=run.connection.pk)
    if _quarantined_by(run, connection):
        return 0  # the quarantine notice (sent next) says it, to whoever follows either kind
    return notify(
        run.organization_id,
        Kind.SYNC_FAILED,
        subject=f"Sync failed: {connection}",
        body=_message("sync_failed", run=run, connection=connection),
        url=reverse("sync:run_detail", args=[run.pk]),
        dedupe_key=f"sync_failed:{run.pk}",
    )


@_quietly
def on_connection_quarantined(sender, *, connection, run: SyncRun | None = None, **kwargs) -> int:
    connection.refresh_from_db()
    if not connection.quarantined_at:
        return 0
    kind = connection.side
    return notify(
        connection.organization_id,
        Kind.QUARANTINED,
        subject=f"Connection quarantined: {connection}",
        body=_message(
            "quarantined",
            connection=connection,
            run=run,
            run_url=absolute(reverse("sync:run_detail", args=[run.pk])) if run else "",
        ),
        url=connection_url(connection),
        dedupe_key=f"quarantined:{kind}:{connection.pk}:{connection.quarantined_at.isoformat()}",
        also_for=(Kind.SYNC_FAILED,),
    )


PUSH_STATES = [
    PushItem.State.CONFIRMED,
    PushItem.State.REJECTED,
    PushItem.State.UNCONFIRMED,
    PushItem.State.FAILED,
    PushItem.State.INTERRUPTED,
    PushItem.State.BLOCKED,
]


@_quietly
def on_push_batch_finished(sender, *, batch: PushBatch, **kwargs) -> int:
    counts = dict(
        batch.items.order_by().values("state").annotate(n=Count("id")).values_list("state", "n")
    )
    problems = list(
        batch.items.filter(
            state__in=[PushItem.State.REJECTED, PushItem.State.UNCONFIRMED, PushItem.State.FAILED]
        ).order_by("id")[:DIGEST_LIST_LIMIT]
    )
    headline = ", ".join(
        f"{counts.get(state, 0)} {state}"
        for state in (PushItem.State.CONFIRMED, PushItem.State.REJECTED, PushItem.State.UNCONFIRMED)
    )
    finished = batch.finished_at.isoformat() if batch.finished_at else "-"
    return notify(
        batch.organization_id,
        Kind.PUSH_FINISHED,
        subject=f"Push {batch.pk} finished: {headline}",
        body=_message(
            "push_finished",
            batch=batch,
            counts=[
                (PushItem.State(state).label, counts[state])
                for state in PUSH_STATES
                if counts.get(state)
            ],
            problems=problems,
            retryable=sum(counts.get(state, 0) for state in PushItem.RETRYABLE),
        ),
        url=reverse("review:batch", args=[batch.pk]),
        dedupe_key=f"push_finished:{batch.pk}:{finished}",
    )


@dataclass
class Digest:
    moved: list[tuple[str, int | None, int | None]] = field(default_factory=list)
    new_unmapped: list[str] = field(default_factory=list)
    disappeared: list[str] = field(default_factory=list)

    def __bool__(self) -> bool:
        return bool(self.moved or self.new_unmapped or self.disappeared)


def crossed(before: int | None, now: int | None, percent: int, users: int) -> bool:
    """Whether a move from `before` to `now` active users reaches the threshold: at least
    `users` users, or at least `percent` % of the previous count."""
    before, now = before or 0, now or 0
    delta = abs(now - before)
    if delta == 0:
        return False
    if delta >= users:
        return True
    return before == 0 or delta * 100 >= percent * before


def digest(run: SyncRun) -> Digest:
    """What changed in a successful vendor run, in a constant number of queries.

    The import writes a change point (UsageSnapshot with the run's id) for every service of each
    account whose record changed, all at one time; the account's previous points are the ones
    with the latest earlier time. An account's active users are the largest count among its
    services (KnowBe4 reports the same count for the subscription and each add-on). New accounts
    were first seen, and vanished ones marked missing, during the run.
    """
    result = Digest()
    connection = run.vendor_connection
    if connection is None:
        return result
    organization = run.organization
    not_excluded = ~Q(account__mapping__state=MappingState.EXCLUDED)
    current = {
        row["account_id"]: row
        for row in UsageSnapshot.objects.filter(sync_run_id=run.pk, account__connection=connection)
        .filter(not_excluded)
        .order_by()
        .values("account_id", "account__name")
        .annotate(users=Max("active_users"), at=Max("taken_at"))
    }
    if current:
        taken_at = max(row["at"] for row in current.values())
        latest_before = (
            UsageSnapshot.objects.filter(account=OuterRef("account"), taken_at__lt=taken_at)
            .order_by("-taken_at")
            .values("taken_at")[:1]
        )
        previous = dict(
            UsageSnapshot.objects.filter(
                account_id__in=UsageSnapshot.objects.filter(sync_run_id=run.pk).values(
                    "account_id"
                ),
                taken_at=Subquery(latest_before),
            )
            .order_by()
            .values("account_id")
            .annotate(users=Max("active_users"))
            .values_list("account_id", "users")
        )
        for account_id, row in current.items():
            if account_id in previous and crossed(
                previous[account_id],
                row["users"],
                organization.digest_threshold_percent,
                organization.digest_threshold_users,
            ):
                result.moved.append((row["account__name"], previous[account_id], row["users"]))
        result.moved.sort(key=lambda m: (-abs((m[2] or 0) - (m[1] or 0)), m[0]))
    start = run.started_at or run.queued_at
    end = run.finished_at or timezone.now()
    accounts = VendorAccount.objects.filter(connection=connection).order_by("name")
    result.new_unmapped = list(
        accounts.filter(
            first_seen_at__gte=start,
            first_seen_at__lte=end,
            missing_since=None,
            mapping__isnull=True,
        ).values_list("name", flat=True)
    )
    result.disappeared = list(
        accounts.filter(missing_since__gte=start, missing_since__lte=end)
        .exclude(mapping__state=MappingState.EXCLUDED)
        .values_list("name", flat=True)
    )
    return result


def _first_import(run: SyncRun) -> bool:
    return (
        not SyncRun.objects.filter(
            vendor_connection_id=run.vendor_connection_id, state=SyncRun.State.SUCCEEDED
        )
        .exclude(pk=run.pk)
        .exists()
    )


def _listed(items: list, limit: int = DIGEST_LIST_LIMIT) -> tuple[list, int]:
    return items[:limit], max(0, len(items) - limit)


@_quietly
def on_sync_succeeded(sender, *, run: SyncRun, **kwargs) -> int:
    """The change digest of a vendor sync; nothing after the first import (everything is new
    then: the setup wizard covers it) or when nothing crossed the threshold."""
    if not run.vendor_connection_id or _first_import(run):
        return 0
    found = digest(run)
    if not found:
        return 0
    organization = run.organization
    parts = [
        f"{len(items)} {label}"
        for items, label in (
            (found.moved, "moved"),
            (found.new_unmapped, "new unmapped"),
            (found.disappeared, "gone"),
        )
        if items
    ]
    moved, more_moved = _listed(found.moved)
    new, more_new = _listed(found.new_unmapped)
    gone, more_gone = _listed(found.disappeared)
    return notify(
        run.organization_id,
        Kind.DIGEST,
        subject=f"Changes after the sync of {run.connection}: {', '.join(parts)}",
        body=_message(
            "digest",
            run=run,
            connection=run.connection,
            organization=organization,
            moved=[(name, before, now, (now or 0) - (before or 0)) for name, before, now in moved],
            more_moved=more_moved,
            moved_count=len(found.moved),
            new=new,
            more_new=more_new,
            new_count=len(found.new_unmapped),
            gone=gone,
            more_gone=more_gone,
            gone_count=len(found.disappeared),
            mapping_url=absolute(reverse("mapping:accounts")),
            review_url=absolute(reverse("review:index")),
        ),
        url=reverse("sync:run_detail", args=[run.pk]),
        dedupe_key=f"digest:{run.pk}",
    )


def check_credential_expiry(today=None) -> int:
    """Tell about credentials expiring within 14 days, and expired ones; each once per
    connection and expiry date (a rotated key with a new date is told about again)."""
    today = today or timezone.localdate()
    written = 0
    connections = (
        VendorConnection.objects.filter(
            credential_expires_on__isnull=False,
            credential_expires_on__lte=today + timedelta(days=EXPIRY_WARNING_DAYS),
        )
        .exclude(state=VendorConnection.State.DISABLED)
        .order_by("organization_id", "pk")
    )
    for connection in connections:
        expires_on = connection.credential_expires_on
        expired = expires_on < today
        kind = Kind.CREDENTIAL_EXPIRED if expired else Kind.CREDENTIAL_EXPIRING
        days = (expires_on - today).days
        if expired:
            subject = f"Credential expired: {connection}"
        elif days == 0:
            subject = f"Credential expires today: {connection}"
        else:
            subject = f"Credential expires in {days} day{'s' if days != 1 else ''}: {connection}"
        written += notify(
            connection.organization_id,
            kind,
            subject=subject,
            body=_message(
                "credential",
                connection=connection,
                expired=expired,
                days=days,
                rotate_url=absolute(reverse("integrations:rotate", args=[connection.pk])),
            ),
            url=connection_url(connection),
            dedupe_key=f"{kind}:{connection.pk}:{expires_on.isoformat()}",
        )
    return written


# --- sending -----------------------------------------------------------------------------------


def backoff(attempts: int) -> timedelta:
    """Wait after the n-th failed attempt: 5, 10, 20 … minutes, at most 4 hours."""
    return timedelta(minutes=min(5 * 2 ** max(attempts - 1, 0), 240))


def _due(now):
    return Notification.objects.filter(email_state=Notification.EmailState.PENDING).filter(
        Q(email_next_attempt_at__isnull=True) | Q(email_next_attempt_at__lte=now)
    )


def email_message(notification: Notification, connection=None) -> EmailMessage:
    body = render_to_string(
        "notifications/email.txt",
        {
            "notification": notification,
            "link": absolute(notification.url),
            "settings_link": absolute(reverse("notifications:settings")),
        },
    )
    return EmailMessage(
        subject=f"[TrueUp · {notification.organization.name}] {notification.subject}",
        body=body,
        to=[notification.user.email],
        connection=connection,
    )


def _failed(notification: Notification, error: Exception) -> None:
    attempts = notification.email_attempts + 1
    gave_up = attempts >= settings.TRUEUP_NOTIFICATION_MAX_ATTEMPTS
    Notification.objects.filter(pk=notification.pk).update(
        email_attempts=attempts,
        email_last_error=f"{type(error).__name__}: {error}"[:500],
        email_state=Notification.EmailState.FAILED if gave_up else Notification.EmailState.PENDING,
        email_next_attempt_at=None if gave_up else timezone.now() + backoff(attempts),
    )


def send_pending(limit: int = SEND_BATCH) -> dict[str, int]:
    """E-mail the notifications that are due, each claimed first so that two workers never
    send one twice. A mail server that is down stops the round; its rows stay pending."""
    now = timezone.now()
    sent = failed = 0
    due = _due(now)
    # Left the organization, or no address: nothing to send.
    due.filter(
        ~Exists(
            Membership.objects.filter(user=OuterRef("user"), organization=OuterRef("organization"))
        )
        | Q(user__email="")
    ).update(email_state=Notification.EmailState.SKIPPED)
    ids = list(due.order_by("created_at", "id").values_list("id", flat=True)[:limit])
    if not ids:
        return {"sent": 0, "failed": 0}
    connection = get_connection()
    try:
        for notification_id in ids:
            claimed = (
                _due(timezone.now())
                .filter(pk=notification_id)
                .update(email_next_attempt_at=timezone.now() + SEND_LEASE)
            )
            if not claimed:
                continue  # another worker has it
            notification = Notification.objects.select_related("user", "organization").get(
                pk=notification_id
            )
            try:
                email_message(notification, connection).send()
            except OSError as error:  # smtplib.SMTPException is an OSError
                logger.warning("E-mailing notification %s failed: %s", notification_id, error)
                _failed(notification, error)
                failed += 1
                connection.close()
                if isinstance(error, MESSAGE_ERRORS):
                    continue
                break  # the server is unreachable or refuses us: retry all later
            except Exception as error:
                logger.exception("E-mailing notification %s failed", notification_id)
                _failed(notification, error)
                failed += 1
                continue
            Notification.objects.filter(pk=notification_id).update(
                email_state=Notification.EmailState.SENT,
                email_sent_at=timezone.now(),
                email_attempts=notification.email_attempts + 1,
                email_next_attempt_at=None,
                email_last_error="",
            )
            sent += 1
    finally:
        connection.close()
    return {"sent": sent, "failed": failed}


# --- what members do ---------------------------------------------------------------------------


def unread(user, organization_id: int):
    return Notification.objects.filter(
        user=user, organization_id=organization_id, in_app=True, read_at=None
    )


def mark_read(notification: Notification) -> None:
    if notification.read_at is None:
        notification.read_at = timezone.now()
        Notification.objects.filter(pk=notification.pk, read_at=None).update(
            read_at=notification.read_at
        )


def mark_all_read(user, organization_id: int) -> int:
    return unread(user, organization_id).update(read_at=timezone.now())


@transaction.atomic
def save_preferences(membership: Membership, actor, chosen: dict[str, tuple[bool, bool]]) -> bool:
    """Store a member's (e-mail, in-app) choice per kind; audited. False when nothing changed."""
    before = channels(membership)
    after = before | {kind: chosen[kind] for kind in chosen if kind in before}
    if after == before:
        return False
    NotificationPreference.objects.bulk_create(
        [
            NotificationPreference(membership=membership, kind=kind, email=email, in_app=in_app)
            for kind, (email, in_app) in after.items()
        ],
        update_conflicts=True,
        unique_fields=["membership", "kind"],
        update_fields=["email", "in_app"],
    )
    changed = [kind for kind in after if after[kind] != before[kind]]
    audit.record(
        membership.organization,
        actor,
        "notifications.preferences_changed",
        membership,
        before={kind: _pair(before[kind]) for kind in changed},
        after={kind: _pair(after[kind]) for kind in changed},
    )
    return True


def _pair(value: tuple[bool, bool]) -> dict:
    return {"email": value[0], "in_app": value[1]}
