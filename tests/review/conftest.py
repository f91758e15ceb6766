import pytest

from psa.models import BillingLine
from reconcile.mapping.models import AccountMapping, ServiceMapping
from reconcile.review.models import SeatDiscrepancy
from reconcile.review.services import reconcile_organization
from tests.factories import (
    UsageSnapshotFactory,
    VendorAccountFactory,
    VendorConnectionFactory,
    VendorServiceFactory,
)
from tests.psa.conftest import make_psa_connection, psa_faults, psa_state  # noqa: F401


@pytest.fixture
def reconciled(make_psa_connection, organization):  # noqa: F811
    """Three Reconcile cards on lines of the ConnectWise sandbox: KnowBe4 reports the line's
    quantity + 2, + 5 and − 1 (each line its own customer and product)."""

    def make(kind="connectwise", deltas=(2, 5, -1)):
        connection = make_psa_connection(kind)
        lines, seen = [], set()
        for line in (
            BillingLine.objects.filter(
                connection=connection, read_only_reason="", cancelled_date=None, quantity__gte=3
            )
            .exclude(company=None)
            .exclude(product=None)
            .order_by("id")
        ):
            if line.company_id in seen or line.product_id in seen:
                continue
            seen |= {line.company_id, line.product_id}
            lines.append(line)
            if len(lines) == len(deltas):
                break
        vendor = VendorConnectionFactory(organization=organization)
        for line, delta in zip(lines, deltas, strict=True):
            account = VendorAccountFactory(connection=vendor)
            service = VendorServiceFactory(organization=organization, connection=vendor)
            users = int(line.quantity + line.included_quantity) + delta
            UsageSnapshotFactory(account=account, service=service, active_users=users)
            AccountMapping.objects.create(
                organization=organization,
                vendor_account=account,
                psa_company=line.company,
                state="mapped",
                source="manual",
            )
            ServiceMapping.objects.create(
                organization=organization,
                vendor_service=service,
                psa_product=line.product,
                state="mapped",
                source="manual",
            )
        reconcile_organization(organization)
        return [SeatDiscrepancy.objects.get(line=line) for line in lines]

    return make
