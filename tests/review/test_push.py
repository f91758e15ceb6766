"""Approve → Test Mode → confirm → the worker pushes, against the PSA sandboxes over HTTP."""

import datetime
from decimal import Decimal

import pytest
from django.db.models import Sum
from django.urls import reverse
from django.utils import timezone

from psa.models import QuantityPush
from psa.providers.base import LineKey
from reconcile.review import push, services
from reconcile.review.models import PushBatch, PushItem, SeatDiscrepancy
from reconcile.tenancy.models import AuditEvent
from tests.conftest import login

pytestmark = pytest.mark.django_db
State = PushItem.State


def psa_quantity(line):
    adapter = line.connection.adapter()
    key = LineKey(line.container.external_id, line.external_id, line.raw)
    return adapter.read_line(key, on=services.first_of_next_month()).quantity


def writes(psa_state, kind="connectwise"):
    return psa_state(kind)["writes"]


def test_test_mode_sends_nothing_and_lists_exactly_what_will_change(
    reconciled, organization, owner, psa_state, client
):
    cards = reconciled()
    services.approve(organization, owner, [c.pk for c in cards])
    batch = push.test_mode(organization, owner)
    items = list(batch.items.order_by("id"))
    assert writes(psa_state) == []
    assert {(i.current_quantity, i.new_quantity) for i in items} == {
        (c.billed, c.target) for c in cards
    }
    assert all(i.state == State.PLANNED for i in items)
    assert all(i.effective_date == services.first_of_next_month() for i in items)
    login(client, owner)
    page = client.get(reverse("review:batch", args=[batch.pk]))
    assert page.status_code == 200
    assert "Nothing has been sent" in page.content.decode()
    csv_text = b"".join(client.get(reverse("review:batch_csv", args=[batch.pk]))).decode()
    assert csv_text.splitlines()[0].startswith("PSA,Customer,Agreement,Product")
    assert len(csv_text.strip().splitlines()) == 1 + len(cards)
    assert items[0].company_name in csv_text


def test_confirmed_pushes_reach_the_psa_and_the_cards_settle(
    reconciled, organization, owner, psa_state, django_capture_on_commit_callbacks
):
    cards = reconciled()
    services.approve(organization, owner, [c.pk for c in cards])
    batch = push.test_mode(organization, owner)
    with django_capture_on_commit_callbacks(execute=True):  # the worker runs inline in tests
        assert push.confirm(batch, owner) == 3
    batch.refresh_from_db()
    assert batch.state == PushBatch.State.FINISHED
    assert set(batch.items.values_list("state", flat=True)) == {State.CONFIRMED}
    for card in cards:
        assert psa_quantity(card.line) == card.target
        card.refresh_from_db()
        # Reconciled again after the push: the PSA now bills what KnowBe4 reports.
        assert card.kind == SeatDiscrepancy.Kind.NO_CHANGE
        assert card.push_item.state == State.CONFIRMED
    assert len(writes(psa_state)) == 3
    assert QuantityPush.objects.filter(outcome="confirmed").count() == 3
    assert AuditEvent.objects.filter(action="psa.push_confirmed").count() == 3
    assert AuditEvent.objects.filter(action="review.push_confirmed").count() == 1


def test_a_rejected_push_keeps_the_psa_reason_and_changes_nothing(
    reconciled, organization, owner, psa_faults, django_capture_on_commit_callbacks
):
    cards = reconciled(deltas=(3,))
    psa_faults("connectwise", reject_writes="Agreement is locked for invoicing")
    before = cards[0].line.quantity
    services.approve(organization, owner, [cards[0].pk])
    with django_capture_on_commit_callbacks(execute=True):
        push.confirm(push.test_mode(organization, owner), owner)
    item = PushItem.objects.get()
    assert item.state == State.REJECTED
    assert "locked for invoicing" in item.message
    assert item.push.outcome == QuantityPush.Outcome.REJECTED
    card = SeatDiscrepancy.objects.get(pk=cards[0].pk)
    assert card.kind == SeatDiscrepancy.Kind.RECONCILE and card.line.quantity == before
    assert card.push_item_id == item.pk


def test_lines_that_cannot_be_pushed_say_why(reconciled, organization, owner):
    cards = reconciled(deltas=(2, 4))
    services.approve(organization, owner, [c.pk for c in cards])
    SeatDiscrepancy.objects.filter(pk=cards[1].pk).update(
        effective_date=timezone.localdate() - datetime.timedelta(days=3)
    )
    new_revenue = SeatDiscrepancy.objects.create(
        organization=organization,
        kind="new_revenue",
        psa_company=cards[0].psa_company,
        psa_product=cards[1].psa_product,
        vendor_count=7,
        billed=0,
        target=7,
        delta=7,
    )
    services.approve(organization, owner, [new_revenue.pk])
    batch = push.test_mode(organization, owner)
    blocked = {i.discrepancy_id: i.message for i in batch.items.filter(state=State.BLOCKED)}
    assert "in the past" in blocked[cards[1].pk]
    assert "No agreement line" in blocked[new_revenue.pk]
    assert batch.items.filter(state=State.PLANNED).count() == 1


def test_a_worker_that_died_mid_push_leaves_a_retryable_line_never_pushed_twice(
    reconciled, organization, owner, psa_state, settings, django_capture_on_commit_callbacks
):
    cards = reconciled(deltas=(4,))
    services.approve(organization, owner, [cards[0].pk])
    batch = push.test_mode(organization, owner)
    push.confirm(batch, owner)  # queued; the worker never ran it (callbacks not executed)
    item = PushItem.objects.get()
    # The worker claimed the item, sent the write, and died before recording the answer.
    line = cards[0].line
    adapter = line.connection.adapter()
    key = LineKey(line.container.external_id, line.external_id, line.raw)
    adapter.write_quantity(key, line.quantity, item.new_quantity, item.effective_date)
    PushItem.objects.filter(pk=item.pk).update(
        state=State.PUSHING, updated_at=timezone.now() - datetime.timedelta(hours=1)
    )
    PushBatch.objects.filter(pk=batch.pk).update(state=PushBatch.State.RUNNING)
    assert push.recover_stale(organization) == 1
    item.refresh_from_db()
    assert item.state == State.INTERRUPTED and "unknown" in item.message
    with django_capture_on_commit_callbacks(execute=True):
        assert push.retry(batch, owner) == 1
    item.refresh_from_db()
    assert item.state == State.CONFIRMED
    assert "nothing sent" in item.message
    assert len(writes(psa_state)) == 1  # the dead worker's write, and no second one
    assert psa_quantity(line) == item.new_quantity


def test_two_workers_on_one_batch_push_each_line_once(reconciled, organization, owner, psa_state):
    cards = reconciled()
    services.approve(organization, owner, [c.pk for c in cards])
    batch = push.test_mode(organization, owner)
    push.confirm(batch, owner)
    push.run_batch(batch.pk)
    push.run_batch(batch.pk)  # a second cluster handed the same batch: nothing left to claim
    assert len(writes(psa_state)) == 3
    assert PushItem.objects.filter(state=State.CONFIRMED).count() == 3
    assert PushItem.objects.aggregate(n=Sum("attempts"))["n"] == 3


def test_a_line_is_never_queued_in_two_batches(reconciled, organization, owner):
    cards = reconciled(deltas=(2,))
    services.approve(organization, owner, [cards[0].pk])
    first = push.test_mode(organization, owner)
    push.confirm(first, owner)
    # While it waits for the worker the card is not actionable, so a second report is empty.
    assert services.approve(organization, owner, [cards[0].pk]) == 0
    second = push.test_mode(organization, owner)
    assert second.items.count() == 0


def test_confirming_a_replaced_report_is_refused(reconciled, organization, owner, client):
    cards = reconciled(deltas=(2,))
    services.approve(organization, owner, [cards[0].pk])
    old = push.test_mode(organization, owner)
    push.test_mode(organization, owner)  # a newer report replaces it
    login(client, owner)
    response = client.post(reverse("review:confirm", args=[old.pk]), follow=True)
    assert "already confirmed or replaced" in response.content.decode()
    assert not PushItem.objects.filter(state=State.QUEUED).exists()


def test_whole_batch_through_the_pages(
    reconciled, organization, owner, client, psa_state, django_capture_on_commit_callbacks
):
    cards = reconciled(deltas=(2, 5))
    login(client, owner)
    assert client.post(reverse("review:approve", args=[cards[0].pk])).status_code == 200
    response = client.post(
        reverse("review:adjust", args=[cards[1].pk]),
        {"quantity": "40", "effective_date": services.first_of_next_month().isoformat()},
    )
    assert response.status_code == 200
    response = client.post(reverse("review:test_mode"))
    batch = PushBatch.objects.get(state="draft")
    assert response.url == reverse("review:batch", args=[batch.pk])
    assert writes(psa_state) == []
    with django_capture_on_commit_callbacks(execute=True):
        client.post(reverse("review:confirm", args=[batch.pk]))
    assert psa_quantity(cards[1].line) == Decimal(40) - cards[1].line.included_quantity
    page = client.get(reverse("review:batch", args=[batch.pk])).content.decode()
    assert page.count("Confirmed") >= 2
    details = client.get(reverse("review:details", args=[cards[1].pk])).content.decode()
    assert "push-history" in details and "40" in details


def test_deleting_the_psa_connection_leaves_none_of_its_rows_but_keeps_the_ledger(
    reconciled, organization, owner, client, django_capture_on_commit_callbacks
):
    from psa.models import BillingContainer, BillingLine, PSACompany, PSAConnection, PSAProduct
    from reconcile.mapping.models import AccountMapping, ServiceMapping
    from reconcile.review.models import BillingRule, CompanyTag, CountHistory

    cards = reconciled()
    connection = cards[0].line.connection
    services.approve(organization, owner, [cards[0].pk])
    with django_capture_on_commit_callbacks(execute=True):
        push.confirm(push.test_mode(organization, owner), owner)
    services.set_rule(organization, owner, cards[1].line, {"exclude_users": 1})
    services.tag_companies(organization, owner, [cards[2].pk], "arrears")
    tables = {
        PSACompany: {"connection": connection},
        PSAProduct: {"connection": connection},
        BillingContainer: {"connection": connection},
        BillingLine: {"connection": connection},
        AccountMapping: {"psa_company__connection": connection},
        ServiceMapping: {"psa_product__connection": connection},
        SeatDiscrepancy: {"psa_company__connection": connection},
        CountHistory: {"psa_company__connection": connection},
        BillingRule: {"line__connection": connection},
        CompanyTag: {"psa_company__connection": connection},
    }
    assert all(model.objects.filter(**lookup).exists() for model, lookup in tables.items())
    login(client, owner)
    with django_capture_on_commit_callbacks(execute=True):
        response = client.post(
            reverse("psa:disconnect", args=[connection.pk]), {"name": connection.confirm_name}
        )
    assert response.status_code == 302
    assert not PSAConnection.objects.filter(pk=connection.pk).exists()
    for model in tables:
        assert not model.objects.exists(), model
    ledger = QuantityPush.objects.get()
    assert ledger.line is None and ledger.outcome == "confirmed"
    assert PushItem.objects.get().line is None  # the push history stays readable
    assert AuditEvent.objects.filter(action="connection.disconnected").exists()
