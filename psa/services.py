"""PSA connections' data: container types, request budget, import, and changing a line's
quantity with proof."""

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
from reconcile.core.errors import ExternalAPIError, WriteRejected
from reconcile.core.imports import Import, ImportCounts, Step, Table, summary
from reconcile.tenancy import audit

MAX_QUANTITY = Decimal(1_000_000)


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


BUDGET_SETTINGS = ("requests_per_minute", "concurrency")


@transaction.atomic
def set_request_budget(
    connection: PSAConnection, actor, requests_per_minute: int | None, concurrency: int | None
) -> None:
    """The PSA requests per minute TrueUp keeps to and how many it has in flight at once
    (None: the adapter's default)."""
    before = {name: connection.settings.get(name) for name in BUDGET_SETTINGS}
    settings = {k: v for k, v in connection.settings.items() if k not in BUDGET_SETTINGS}
    for name, value in zip(BUDGET_SETTINGS, (requests_per_minute, concurrency), strict=True):
        if value:
            settings[name] = int(value)
    connection.settings = settings
    connection.save(update_fields=["settings"])
    audit.record(
        connection.organization,
        actor,
        "psa.request_budget",
        connection,
        before=before,
        after={name: settings.get(name) for name in BUDGET_SETTINGS},
    )


COMPANIES = Table(PSACompany, ["name", "identifier", "active", "raw"])
PRODUCTS = Table(
    PSAProduct, ["identifier", "name", "description", "unit_price", "unit_cost", "active", "raw"]
)
CONTAINERS = Table(
    BillingContainer,
    ["company_id", "kind", "type_name", "name", "status", "start_date", "end_date", "raw"],
)
LINES = Table(
    BillingLine,
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
)


class PSAImport(Import):
    """One import of a PSA connection, buffered: pages of companies, products and lines are
    kept in memory (lines point at the other tables' ids, known only once those are merged),
    and `finish()` merges the four tables in one transaction."""

    def __init__(self, connection: PSAConnection, sync_run_id: int):
        super().__init__(connection, sync_run_id)
        self.companies: dict[str, CompanyRecord] = {}
        self.products: dict[str, ProductRecord] = {}
        self.lines: dict[str, LineRecord] = {}

    def steps(self, adapter) -> list[Step]:
        return [
            Step("companies", adapter.iter_companies(), self._keep(self.companies)),
            Step("products", adapter.iter_products(), self._keep(self.products)),
            Step(
                "billing lines",
                adapter.iter_billing_lines(self.connection.container_type_ids),
                self._keep(self.lines),
            ),
        ]

    @staticmethod
    def _keep(held: dict):
        return lambda records: held.update((r.external_id, r) for r in records)

    @transaction.atomic
    def finish(self) -> tuple[ImportCounts, list[str]]:
        now = timezone.now()
        connection = self.connection
        scope = {"organization_id": connection.organization_id, "connection_id": connection.pk}
        counts = {}
        counts["companies"] = COMPANIES.merge(scope, _rows(COMPANIES, self.companies), now)
        counts["products"] = PRODUCTS.merge(scope, _rows(PRODUCTS, self.products), now)
        company_ids = _ids(PSACompany, connection)
        product_ids = _ids(PSAProduct, connection)
        containers = {line.container.external_id: line.container for line in self.lines.values()}
        counts["containers"] = CONTAINERS.merge(
            scope,
            {
                c.external_id: CONTAINERS.values(
                    c, company_id=company_ids.get(c.company_external_id)
                )
                for c in containers.values()
            },
            now,
        )
        container_ids = _ids(BillingContainer, connection)
        counts["lines"] = LINES.merge(
            scope,
            {
                r.external_id: LINES.values(
                    r,
                    container_id=container_ids[r.container.external_id],
                    company_id=company_ids.get(r.container.company_external_id),
                    product_id=product_ids.get(r.product_external_id),
                )
                for r in self.lines.values()
            },
            now,
        )
        return counts["lines"], [summary(label.capitalize(), c) for label, c in counts.items()]


def _rows(table: Table, records: dict) -> dict[str, dict]:
    return {external_id: table.values(r) for external_id, r in records.items()}


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
    push = start_push(line, quantity, effective_date, actor)
    refusal = refusal_reason(line, quantity, adapter)
    if refusal:
        return record_push(push, QuantityPush.Outcome.REFUSED, refusal)
    return record_push(push, *exchange(push, line_key(line), adapter))


def line_key(line: BillingLine) -> LineKey:
    return LineKey(container_id=line.container.external_id, line_id=line.external_id, raw=line.raw)


def start_push(line: BillingLine, quantity: Decimal, effective_date: datetime.date, actor):
    """The ledger row of one attempt, not yet saved (`line` with its container loaded)."""
    return QuantityPush(
        organization_id=line.organization_id,
        line=line,
        line_repr=_describe(line)[:300],
        actor=actor if actor and actor.is_authenticated else None,
        actor_email=getattr(actor, "email", "") or "",
        requested_quantity=quantity,
        effective_date=effective_date,
        old_quantity=line.quantity,
    )


def exchange(push: QuantityPush, key: LineKey, adapter) -> tuple[str, str, Decimal | None]:
    """What is said with the PSA for one push that may be sent (`refusal_reason`): read,
    send what is missing, read back. Outcome, message and read-back quantity; the PSA's status
    and answer are set on `push`. Touches no database, so pushes to distinct lines may run in
    threads at once."""
    quantity, effective_date = push.requested_quantity, push.effective_date
    try:
        current = adapter.read_line(key, on=effective_date).quantity
        push.old_quantity = current
        if current == quantity:
            message = f"The PSA already bills {quantity}: nothing sent."
            return QuantityPush.Outcome.CONFIRMED, message, current
        answer = adapter.write_quantity(key, current, quantity, effective_date)
        push.sent_change = quantity - current if adapter.delta_writes else quantity
        push.status_code, push.body_excerpt = answer.status_code, answer.body[:2000]
    except WriteRejected as error:
        push.status_code, push.body_excerpt = error.status_code, error.body
        return QuantityPush.Outcome.REJECTED, str(error), None
    except ExternalAPIError as error:
        return (
            QuantityPush.Outcome.FAILED,
            f"{error} Whether the PSA applied it is unknown; a retry reads the line "
            "first and sends only what is missing.",
            None,
        )
    try:
        readback = adapter.read_line(key, on=effective_date).quantity
    except ExternalAPIError as error:
        return (
            QuantityPush.Outcome.UNCONFIRMED,
            f"The PSA accepted the change but reading it back failed: {error}",
            None,
        )
    if readback != quantity:
        message = f"The PSA answered OK but now bills {readback}, not {quantity}."
        return QuantityPush.Outcome.UNCONFIRMED, message, readback
    return QuantityPush.Outcome.CONFIRMED, f"The PSA now bills {readback}.", readback


def _describe(line: BillingLine) -> str:
    company = line.company.name if line.company_id else "?"
    return f"{company} · {line.container} · {line.description or line.product}"


@transaction.atomic
def record_push(push: QuantityPush, outcome: str, message: str, readback=None) -> QuantityPush:
    """Save the attempt, the line's read-back quantity and its audit event, together."""
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
