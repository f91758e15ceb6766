"""A push batch finished: the confirmed / rejected / unconfirmed counts, by e-mail."""

import pytest

from reconcile.notifications.models import Kind, Notification
from reconcile.review import push, services
from reconcile.review.models import PushBatch
from reconcile.tenancy.models import Role
from tests.notifications.conftest import BASE, sent_to
from tests.psa.conftest import make_psa_connection, psa_faults, psa_state  # noqa: F401
from tests.review.conftest import reconciled  # noqa: F401

pytestmark = pytest.mark.django_db


def confirm_and_push(organization, owner, capture):
    batch = push.test_mode(organization, owner)
    with capture(execute=True):  # the push worker runs inline in tests
        push.confirm(batch, owner)
    batch.refresh_from_db()
    assert batch.state == PushBatch.State.FINISHED
    return batch


def test_a_finished_push_emails_its_counts(
    reconciled,  # noqa: F811
    organization,
    team,
    mailoutbox,
    django_capture_on_commit_callbacks,
):
    cards = reconciled()
    services.approve(organization, team[Role.OWNER], [c.pk for c in cards])
    batch = confirm_and_push(organization, team[Role.OWNER], django_capture_on_commit_callbacks)

    mails = sent_to(mailoutbox, "finished")
    # Owners and finance by default; billing and viewers see it in the app.
    assert set(mails) == {team[Role.OWNER].email, team[Role.FINANCE].email}
    mail = mails[team[Role.FINANCE].email]
    assert mail.subject == (
        f"[TrueUp · Acme MSP] Push {batch.pk} finished: 3 confirmed, 0 rejected, 0 unconfirmed"
    )
    assert f"{BASE}/review/pushes/{batch.pk}/" in mail.body
    assert "Confirmed: 3" in mail.body
    assert Notification.objects.filter(kind=Kind.PUSH_FINISHED, in_app=True).count() == 4


def test_rejected_lines_are_named_with_the_psas_reason(
    reconciled,  # noqa: F811
    psa_faults,  # noqa: F811
    organization,
    owner,
    mailoutbox,
    django_capture_on_commit_callbacks,
):
    cards = reconciled(deltas=(3,))
    psa_faults("connectwise", reject_writes="Agreement is locked for invoicing")
    services.approve(organization, owner, [cards[0].pk])
    batch = confirm_and_push(organization, owner, django_capture_on_commit_callbacks)
    (mail,) = mailoutbox
    assert mail.to == [owner.email]
    assert mail.subject.endswith(
        f"Push {batch.pk} finished: 0 confirmed, 1 rejected, 0 unconfirmed"
    )
    assert "Rejected by the PSA: 1" in mail.body
    assert "locked for invoicing" in mail.body
    assert cards[0].psa_company.name in mail.body
