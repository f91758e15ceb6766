"""PSA connections and their data: connect, import, and change a line's quantity with proof."""

import datetime
from decimal import Decimal

from django.db import transaction
from django.utils import timezone

from psa.models import (
    BillingContainer,
    BillingLine,
    PSACompany,
    PSAConnection,
    PSAProduct,
    QuantityPush,
)
from psa.providers.base import CompanyRecord, LineKey, LineRecord, ProductRecord
from reconcile.core.bulk import ImportCounts, upsert_rows
from reconcile.core.errors import ExternalAPIError, WriteRejected
from reconcile.core.signals import connection_deleted
from reconcile.tenancy import audit

MAX_QUANTITY = Decimal(1_000_000)


@transaction.atomic
def connect(organization, actor, *, kind, settings, secrets, description="") -> PSAConnection:
    connection = PSAConnection(
        organization=organization, kind=kind, settings=settings, description=description
    )
    connection.set_secrets(secrets)
    connection.save()
    audit.record(organization, actor, "psa.connected", connection, after=connection.audit_fields())
    return connection


@transaction.atomic
def choose_container_types(connection: PSAConnection, actor, types: list) -> None:
    before = connection.container_type_names
    connection.container_type_ids = [t.external_id for t in types]
    connection.container_type_names = [t.name for t in types]
    connection.save(update_fields=["container_type_ids", "container_type_names"])
    audit.record(
        connection.organization,
        actor,
        "psa.types_chosen",
        connection,
        before={"container_types": before},
        after={"container_types": connection.container_type_names},
    )


@transaction.atomic
def set_request_budget(connection: PSAConnection, actor, requests_per_minute: int | None) -> None:
    """The PSA requests per minute TrueUp keeps to (None: the adapter's default)."""
    before = connection.settings.get("requests_per_minute")
    settings = {k: v for k, v in connection.settings.items() if k != "requests_per_minute"}
    if requests_per_minute:
        settings["requests_per_minute"] = int(requests_per_minute)
    connection.settings = settings
    connection.save(update_fields=["settings"])
    audit.record(
        connection.organization,
        actor,
        "psa.request_budget",
        connection,
        before={"requests_per_minute": before},
        after={"requests_per_minute": settings.get("requests_per_minute")},
    )


@transaction.atomic
def rotate_secrets(connection: PSAConnection, actor, secrets: dict, settings: dict) -> None:
    before = {"secret_last4": connection.secret_hint}
    connection.set_secrets(secrets)
    connection.settings = settings
    connection.save(update_fields=["secrets_encrypted", "secret_hint", "settings"])
    audit.record(
        connection.organization,
        actor,
        "psa.secrets_rotated",
        connection,
        before=before,
        after={"secret_last4": connection.secret_hint},
    )


@transaction.atomic
def disconnect(connection: PSAConnection, actor) -> None:
    """Remove the credentials and everything imported; the audit log and push ledger stay."""
    counts = {
        "companies": PSACompany.objects.filter(connection=connection).count(),
        "lines": BillingLine.objects.filter(connection=connection).count(),
    }
    audit.record(
        connection.organization,
        actor,
        "psa.disconnected",
        connection,
        before=connection.audit_fields() | counts,
    )
    organization = connection.organization
    connection.delete()
    connection_deleted.send(sender=PSAConnection, organization=organization)


class PSAImport:
    """One import of a PSA connection: `add_*` each fetched page, then `finish()`.

    Pages are kept in memory until every page of companies, products and lines was fetched;
    only then does `finish()` write them, in one transaction, so a failed import never
    overwrites or removes the last good data.
    """

    def __init__(self, connection: PSAConnection):
        self.connection = connection
        self.companies: dict[str, CompanyRecord] = {}
        self.products: dict[str, ProductRecord] = {}
        self.lines: dict[str, LineRecord] = {}

    def add_companies(self, records):
        self.companies.update((r.external_id, r) for r in records)

    def add_products(self, records):
        self.products.update((r.external_id, r) for r in records)

    def add_lines(self, records):
        self.lines.update((r.external_id, r) for r in records)

    @transaction.atomic
    def finish(self) -> dict[str, ImportCounts]:
        now = timezone.now()
        connection = self.connection
        scope = {"organization_id": connection.organization_id, "connection_id": connection.pk}
        counts = {}
        counts["companies"] = upsert_rows(
            PSACompany,
            scope,
            {
                r.external_id: {
                    "name": r.name[:300],
                    "identifier": r.identifier[:100],
                    "active": r.active,
                    "raw": r.raw,
                }
                for r in self.companies.values()
            },
            ["name", "identifier", "active", "raw"],
            now,
        )
        counts["products"] = upsert_rows(
            PSAProduct,
            scope,
            {
                r.external_id: {
                    "identifier": r.identifier[:100],
                    "name": r.name[:300],
                    "description": r.description,
                    "unit_price": r.unit_price,
                    "unit_cost": r.unit_cost,
                    "active": r.active,
                    "raw": r.raw,
                }
                for r in self.products.values()
            },
            ["identifier", "name", "description", "unit_price", "unit_cost", "active", "raw"],
            now,
        )
        company_ids = _ids(PSACompany, connection)
        product_ids = _ids(PSAProduct, connection)
        containers = {line.container.external_id: line.container for line in self.lines.values()}
        counts["containers"] = upsert_rows(
            BillingContainer,
            scope,
            {
                c.external_id: {
                    "company_id": company_ids.get(c.company_external_id),
                    "kind": c.kind,
                    "type_name": c.type_name[:200],
                    "name": c.name[:300],
                    "status": c.status[:64],
                    "start_date": c.start_date,
                    "end_date": c.end_date,
                    "raw": c.raw,
                }
                for c in containers.values()
            },
            ["company_id", "kind", "type_name", "name", "status", "start_date", "end_date", "raw"],
            now,
        )
        container_ids = _ids(BillingContainer, connection)
        counts["lines"] = upsert_rows(
            BillingLine,
            scope,
            {
                r.external_id: {
                    "container_id": container_ids[r.container.external_id],
                    "company_id": company_ids.get(r.container.company_external_id),
                    "product_id": product_ids.get(r.product_external_id),
                    "description": r.description[:500],
                    "quantity": r.quantity,
                    "included_quantity": r.included_quantity,
                    "unit_price": r.unit_price,
                    "effective_date": r.effective_date,
                    "cancelled_date": r.cancelled_date,
                    "read_only_reason": r.read_only_reason[:300],
                    "raw": r.raw,
                }
                for r in self.lines.values()
            },
            [
                "container_id",
                "company_id",
                "product_id",
                "description",
                "quantity",
                "included_quantity",
                "unit_price",
                "effective_date",
                "cancelled_date",
                "read_only_reason",
                "raw",
            ],
            now,
        )
        return counts


def _ids(model, connection) -> dict[str, int]:
    return dict(model.objects.filter(connection=connection).values_list("external_id", "id"))


def refusal_reason(line: BillingLine, quantity: Decimal, adapter) -> str:
    """Why a push must not even be sent, or "" when it may."""
    connection = line.connection
    if connection.state == connection.State.DISABLED:
        return "The PSA connection is deactivated: activate it to push."
    if connection.is_quarantined:
        return "The PSA connection is quarantined after failures: test it and resume it first."
    if quantity < 0:
        return "A quantity cannot be negative."
    if quantity > MAX_QUANTITY:
        return f"{quantity} seats is more than TrueUp will push ({MAX_QUANTITY:,}); check it."
    if adapter.whole_units and quantity != quantity.to_integral_value():
        return f"{adapter.label} takes whole units only; {quantity} is not a whole number."
    if line.cancelled_date and line.cancelled_date <= timezone.localdate():
        return f"The line was cancelled on {line.cancelled_date:%Y-%m-%d}."
    if line.read_only_reason:
        return line.read_only_reason
    return ""


def set_quantity(
    line: BillingLine, quantity: Decimal, effective_date: datetime.date, actor, adapter=None
) -> QuantityPush:
    """Change a line's quantity in the PSA and prove it by reading it back.

    Idempotent: the line is read first and only what is still missing is sent, so retrying
    after a timeout never applies a delta twice. Every attempt lands in the QuantityPush
    ledger and the audit log, whatever its outcome. Pass `adapter` to push many lines of one
    connection through one session (and one rate limit).
    """
    adapter = adapter or line.connection.adapter()
    push = QuantityPush(
        organization_id=line.organization_id,
        line=line,
        line_repr=_describe(line)[:300],
        actor=actor if actor and actor.is_authenticated else None,
        actor_email=getattr(actor, "email", "") or "",
        requested_quantity=quantity,
        effective_date=effective_date,
        old_quantity=line.quantity,
    )
    refusal = refusal_reason(line, quantity, adapter)
    if refusal:
        return _record(push, QuantityPush.Outcome.REFUSED, refusal)
    key = LineKey(container_id=line.container.external_id, line_id=line.external_id, raw=line.raw)
    try:
        current = adapter.read_line(key, on=effective_date).quantity
        push.old_quantity = current
        if current == quantity:
            return _record(
                push,
                QuantityPush.Outcome.CONFIRMED,
                f"The PSA already bills {quantity}: nothing sent.",
                readback=current,
            )
        answer = adapter.write_quantity(key, current, quantity, effective_date)
        push.sent_change = quantity - current if adapter.delta_writes else quantity
        push.status_code, push.body_excerpt = answer.status_code, answer.body[:2000]
    except WriteRejected as error:
        push.status_code, push.body_excerpt = error.status_code, error.body
        return _record(push, QuantityPush.Outcome.REJECTED, str(error))
    except ExternalAPIError as error:
        return _record(
            push,
            QuantityPush.Outcome.FAILED,
            f"{error} Whether the PSA applied it is unknown; a retry reads the line "
            "first and sends only what is missing.",
        )
    try:
        readback = adapter.read_line(key, on=effective_date).quantity
    except ExternalAPIError as error:
        return _record(
            push,
            QuantityPush.Outcome.UNCONFIRMED,
            f"The PSA accepted the change but reading it back failed: {error}",
        )
    if readback != quantity:
        return _record(
            push,
            QuantityPush.Outcome.UNCONFIRMED,
            f"The PSA answered OK but now bills {readback}, not {quantity}.",
            readback=readback,
        )
    return _record(
        push, QuantityPush.Outcome.CONFIRMED, f"The PSA now bills {readback}.", readback=readback
    )


def _describe(line: BillingLine) -> str:
    company = line.company.name if line.company_id else "?"
    return f"{company} · {line.container} · {line.description or line.product}"


@transaction.atomic
def _record(push: QuantityPush, outcome: str, message: str, readback=None) -> QuantityPush:
    push.outcome, push.message, push.readback_quantity = outcome, message, readback
    push.save()
    if readback is not None and push.line_id:
        BillingLine.objects.filter(pk=push.line_id).update(quantity=readback)
    audit.record(
        push.line.organization if push.line_id else None,
        push.actor,
        f"psa.push_{outcome}",
        push.line,
        before={"quantity": str(push.old_quantity)},
        after={
            "requested": str(push.requested_quantity),
            "readback": str(readback) if readback is not None else None,
            "effective_date": str(push.effective_date),
            "message": message[:300],
        },
    )
    return push
