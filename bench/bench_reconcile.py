"""Reconcile 50,000 billing lines against 20,000 vendor accounts; print wall time and queries.

    scripts/with-postgres.sh .venv/bin/python bench/bench_reconcile.py

Builds the data with bulk inserts in a throwaway test database, then times
reconcile.review.services.reconcile_organization twice: the first pass writes every card, the
next only what changed (here nothing). Goal (issue #6): under 2 s, and a query
count that does not depend on the number of lines.
"""

import os
import random
import sys
import time
from decimal import Decimal
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "reconcile.settings")

import django  # noqa: E402

django.setup()

from django.db import connection  # noqa: E402
from django.test.utils import CaptureQueriesContext, setup_test_environment  # noqa: E402
from django.utils import timezone  # noqa: E402

ACCOUNTS = 20_000
LINES = 50_000
PRODUCTS = 5


def build(lines: int):
    from integrations.models import UsageSnapshot, VendorAccount, VendorService
    from psa.models import BillingContainer, BillingLine, PSACompany, PSAProduct
    from reconcile.mapping.models import AccountMapping, ServiceMapping
    from tests.factories import MembershipFactory, PSAConnectionFactory, VendorConnectionFactory

    rng = random.Random(7)
    organization = MembershipFactory().organization
    vendor = VendorConnectionFactory(organization=organization)
    psa = PSAConnectionFactory(organization=organization)
    org, now = organization.pk, timezone.now()
    services = VendorService.objects.bulk_create(
        [
            VendorService(organization_id=org, connection=vendor, code=f"s{i}", name=f"Service {i}")
            for i in range(PRODUCTS)
        ]
    )
    products = PSAProduct.objects.bulk_create(
        [
            PSAProduct(
                organization_id=org,
                connection=psa,
                external_id=f"p{i}",
                name=f"P {i}",
                identifier=f"P-{i}",
                unit_price=Decimal("2.50"),
            )
            for i in range(PRODUCTS)
        ]
    )
    accounts = VendorAccount.objects.bulk_create(
        [
            VendorAccount(
                organization_id=org,
                connection=vendor,
                external_id=str(i),
                name=f"Customer {i}",
                active_users=rng.randint(5, 300),
            )
            for i in range(ACCOUNTS)
        ],
        batch_size=2000,
    )
    UsageSnapshot.objects.bulk_create(
        [
            UsageSnapshot(
                organization_id=org,
                account=a,
                service=services[i % PRODUCTS],
                active_users=a.active_users,
                taken_at=now,
            )
            for i, a in enumerate(accounts)
        ],
        batch_size=2000,
    )
    companies = PSACompany.objects.bulk_create(
        [
            PSACompany(organization_id=org, connection=psa, external_id=str(i), name=f"Company {i}")
            for i in range(ACCOUNTS)
        ],
        batch_size=2000,
    )
    AccountMapping.objects.bulk_create(
        [
            AccountMapping(
                organization_id=org, vendor_account=a, psa_company=c, state="mapped", source="auto"
            )
            for a, c in zip(accounts, companies, strict=True)
        ],
        batch_size=2000,
    )
    ServiceMapping.objects.bulk_create(
        [
            ServiceMapping(
                organization_id=org,
                vendor_service=s,
                psa_product=p,
                state="mapped",
                source="manual",
            )
            for s, p in zip(services, products, strict=True)
        ]
    )
    containers = BillingContainer.objects.bulk_create(
        [
            BillingContainer(
                organization_id=org, connection=psa, company=c, external_id=str(i), kind="agreement"
            )
            for i, c in enumerate(companies)
        ],
        batch_size=2000,
    )
    BillingLine.objects.bulk_create(
        [
            BillingLine(
                organization_id=org,
                connection=psa,
                container=containers[i % ACCOUNTS],
                company=companies[i % ACCOUNTS],
                product=products[i % PRODUCTS],
                external_id=str(i),
                quantity=Decimal(rng.randint(5, 300)),
                unit_price=Decimal("2.50"),
            )
            for i in range(lines)
        ],
        batch_size=2000,
    )
    return organization


def main():
    from reconcile.review.services import reconcile_organization

    setup_test_environment()
    old_name = connection.creation.create_test_db(verbosity=0, autoclobber=True)
    try:
        print(f"database: {connection.vendor}; {os.cpu_count()} cores")
        for lines in (LINES // 10, LINES):
            organization = build(lines)
            # Settle the fresh tables as days of production would (statistics, visibility
            # map), so autovacuum does not run through them during the timed passes.
            with connection.cursor() as cursor:
                cursor.execute("VACUUM ANALYZE" if connection.vendor == "postgresql" else "ANALYZE")
            for label in ("first pass (every card new)", "after a sync (nothing moved)"):
                with CaptureQueriesContext(connection) as queries:
                    started = time.perf_counter()
                    summary = reconcile_organization(organization)
                    wall = time.perf_counter() - started
                print(
                    f"{lines:,} lines vs {ACCOUNTS:,} accounts, {label}: {wall:.2f} s, "
                    f"{len(queries)} SQL queries, cards {summary}"
                )
    finally:
        connection.creation.destroy_test_db(old_name, verbosity=0)


if __name__ == "__main__":
    main()
