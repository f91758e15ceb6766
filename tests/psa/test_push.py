"""psa.services.set_quantity against the sandboxes: proof, ledger, audit, refusals."""

import datetime
from decimal import Decimal

import pytest

from psa import services
from psa.models import BillingLine, QuantityPush
from psa.providers import PROVIDERS
from psa.providers.base import LineKey
from reconcile.tenancy.models import AuditEvent

pytestmark = pytest.mark.django_db
NEXT_MONTH = (datetime.date.today().replace(day=1) + datetime.timedelta(days=32)).replace(day=1)


def pushable(connection):
    return (
        BillingLine.objects.filter(
            connection=connection, read_only_reason="", cancelled_date=None, quantity__gte=3
        )
        .select_related("container")
        .order_by("id")
        .first()
    )


def psa_quantity(line, on=None):
    adapter = line.connection.adapter()
    key = LineKey(line.container.external_id, line.external_id, line.raw)
    return adapter.read_line(key, on=on).quantity


@pytest.mark.parametrize("kind", PROVIDERS.kinds())
def test_a_confirmed_push_changes_the_psa_and_is_recorded(make_psa_connection, owner, kind):
    line = pushable(make_psa_connection(kind))
    target = line.quantity + 5
    push = services.set_quantity(line, target, NEXT_MONTH, owner)
    assert push.outcome == QuantityPush.Outcome.CONFIRMED, push.message
    assert (push.old_quantity, push.requested_quantity, push.readback_quantity) == (
        line.quantity,
        target,
        target,
    )
    assert psa_quantity(line, on=NEXT_MONTH) == target
    line.refresh_from_db()
    assert line.quantity == target
    event = AuditEvent.objects.get(action="psa.push_confirmed")
    assert event.after["requested"] == str(target) and event.actor == owner


def test_retrying_an_autotask_push_never_applies_the_delta_twice(
    make_psa_connection, owner, psa_state
):
    line = pushable(make_psa_connection("autotask"))
    target = line.quantity + 4
    first = services.set_quantity(line, target, NEXT_MONTH, owner)
    second = services.set_quantity(line, target, NEXT_MONTH, owner)  # e.g. after a timeout
    assert first.outcome == second.outcome == QuantityPush.Outcome.CONFIRMED
    assert first.sent_change == 4 and second.sent_change is None
    assert "nothing sent" in second.message
    assert len(psa_state("autotask")["writes"]) == 1
    assert psa_quantity(line, on=NEXT_MONTH) == target


def test_a_push_the_psa_rejects_keeps_its_reason(make_psa_connection, owner, psa_faults):
    line = pushable(make_psa_connection("connectwise"))
    psa_faults("connectwise", reject_writes="Agreement is locked for invoicing.")
    push = services.set_quantity(line, line.quantity + 1, NEXT_MONTH, owner)
    assert push.outcome == QuantityPush.Outcome.REJECTED
    assert "Agreement is locked for invoicing." in push.message and push.status_code == 400
    assert "locked" in push.body_excerpt
    before = line.quantity
    line.refresh_from_db()
    assert line.quantity == before and psa_quantity(line) == before
    assert AuditEvent.objects.filter(action="psa.push_rejected").count() == 1


def test_a_push_whose_read_back_differs_is_unconfirmed(make_psa_connection, owner, psa_faults):
    line = pushable(make_psa_connection("connectwise"))
    psa_faults("connectwise", ignore_writes=True)
    push = services.set_quantity(line, line.quantity + 2, NEXT_MONTH, owner)
    assert push.outcome == QuantityPush.Outcome.UNCONFIRMED
    assert push.readback_quantity == line.quantity
    assert "now bills" in push.message


@pytest.mark.parametrize(
    "kind, pick, quantity, reason",
    [
        ("autotask", {}, Decimal("2.5"), "whole units only"),
        ("autotask", {}, Decimal(-3), "cannot be negative"),
        ("connectwise", {}, Decimal(-1), "cannot be negative"),
        ("connectwise", {}, Decimal(2_000_000), "more than TrueUp will push"),
        ("halo", {"read_only_reason__gt": ""}, Decimal(10), "Halo calculates this quantity"),
        ("connectwise", {"cancelled_date__isnull": False}, Decimal(10), "cancelled"),
    ],
)
def test_pushes_that_cannot_work_are_refused_before_any_request(
    make_psa_connection, owner, psa_state, kind, pick, quantity, reason
):
    connection = make_psa_connection(kind)
    line = (
        BillingLine.objects.filter(connection=connection, **pick).filter(
            cancelled_date__lte=datetime.date.today()
        )
        if "cancelled_date__isnull" in pick
        else BillingLine.objects.filter(connection=connection, **pick)
    ).first()
    sent = psa_state(kind)["requests"]
    push = services.set_quantity(line, quantity, NEXT_MONTH, owner)
    assert push.outcome == QuantityPush.Outcome.REFUSED
    assert reason in push.message
    assert psa_state(kind)["requests"] == sent
