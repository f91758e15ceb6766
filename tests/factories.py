import factory
from django.contrib.auth import get_user_model
from django.utils import timezone

from integrations.models import UsageSnapshot, VendorAccount, VendorConnection, VendorService
from psa.models import BillingContainer, BillingLine, PSACompany, PSAConnection, PSAProduct
from reconcile.review.models import CountHistory, SeatDiscrepancy
from reconcile.sync.models import SyncRun
from reconcile.tenancy.models import Invitation, Membership, Organization, Role

PASSWORD = "correct-horse-battery-staple"


class UserFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = get_user_model()
        django_get_or_create = ("username",)
        skip_postgeneration_save = True

    email = factory.Sequence(lambda n: f"user{n}@msp.example")
    username = factory.SelfAttribute("email")
    password = factory.PostGenerationMethodCall("set_password", PASSWORD)

    @factory.post_generation
    def save_password(obj, create, extracted, **kwargs):
        if create:
            obj.save()


class OrganizationFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Organization

    name = factory.Sequence(lambda n: f"MSP {n}")


class MembershipFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Membership

    organization = factory.SubFactory(OrganizationFactory)
    user = factory.SubFactory(UserFactory)
    role = Role.OWNER


class InvitationFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Invitation

    organization = factory.SubFactory(OrganizationFactory)
    email = factory.Sequence(lambda n: f"invitee{n}@msp.example")
    role = Role.BILLING


class VendorConnectionFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = VendorConnection
        skip_postgeneration_save = True

    organization = factory.SubFactory(OrganizationFactory)
    kind = "knowbe4_partner"
    settings = factory.LazyFunction(
        lambda: {
            "region": "us",
            "base_url": "http://127.0.0.1:9/knowbe4/us/graphql",
            "api_schema": "2023",
        }
    )
    state = VendorConnection.State.ACTIVE

    @factory.post_generation
    def credential(obj, create, extracted, **kwargs):
        obj.set_secrets({"api_key": extracted or "factory-key-0000"})
        if create:
            obj.save()


class VendorAccountFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = VendorAccount

    connection = factory.SubFactory(VendorConnectionFactory)
    organization = factory.SelfAttribute("connection.organization")
    external_id = factory.Sequence(lambda n: str(100000 + n))
    name = factory.Sequence(lambda n: f"Customer {n} LLC")
    domain = factory.Sequence(lambda n: f"customer{n}.example")
    billing_type = "paid"
    seats_purchased = 50
    active_users = 48
    subscription_level = "Diamond"


class VendorServiceFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = VendorService

    connection = factory.SubFactory(VendorConnectionFactory)
    organization = factory.SelfAttribute("connection.organization")
    code = factory.Sequence(lambda n: f"sat-level-{n}")
    name = factory.Sequence(lambda n: f"KnowBe4 SAT Level {n}")


class UsageSnapshotFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = UsageSnapshot

    account = factory.SubFactory(VendorAccountFactory)
    service = factory.SubFactory(
        VendorServiceFactory, connection=factory.SelfAttribute("..account.connection")
    )
    organization = factory.SelfAttribute("account.organization")
    active_users = 48
    seats = 50
    taken_at = factory.LazyFunction(timezone.now)


class SyncRunFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = SyncRun

    vendor_connection = factory.SubFactory(VendorConnectionFactory)
    organization = factory.SelfAttribute("vendor_connection.organization")
    trigger = SyncRun.Trigger.MANUAL


class PSAConnectionFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = PSAConnection
        skip_postgeneration_save = True

    organization = factory.SubFactory(OrganizationFactory)
    kind = "connectwise"
    settings = factory.LazyFunction(lambda: {"site": "http://127.0.0.1:9/connectwise"})
    state = PSAConnection.State.ACTIVE

    @factory.post_generation
    def secrets(obj, create, extracted, **kwargs):
        obj.set_secrets(extracted or {"private_key": "factory-secret"})
        if create:
            obj.save()


class PSACompanyFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = PSACompany

    connection = factory.SubFactory(PSAConnectionFactory)
    organization = factory.SelfAttribute("connection.organization")
    external_id = factory.Sequence(lambda n: str(500 + n))
    name = factory.Sequence(lambda n: f"Company {n} Inc")


class PSAProductFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = PSAProduct

    connection = factory.SubFactory(PSAConnectionFactory)
    organization = factory.SelfAttribute("connection.organization")
    external_id = factory.Sequence(lambda n: str(900 + n))
    identifier = factory.Sequence(lambda n: f"KB4-{n}")
    name = factory.Sequence(lambda n: f"KnowBe4 product {n}")


class BillingContainerFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = BillingContainer

    connection = factory.SubFactory(PSAConnectionFactory)
    organization = factory.SelfAttribute("connection.organization")
    company = factory.SubFactory(
        PSACompanyFactory, connection=factory.SelfAttribute("..connection")
    )
    external_id = factory.Sequence(lambda n: str(7000 + n))
    kind = "agreement"
    name = factory.Sequence(lambda n: f"Agreement {n}")


class BillingLineFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = BillingLine

    container = factory.SubFactory(BillingContainerFactory)
    connection = factory.SelfAttribute("container.connection")
    organization = factory.SelfAttribute("container.organization")
    company = factory.SelfAttribute("container.company")
    product = factory.SubFactory(
        PSAProductFactory, connection=factory.SelfAttribute("..connection")
    )
    external_id = factory.Sequence(lambda n: str(80000 + n))
    quantity = 50
    unit_price = 3


class SeatDiscrepancyFactory(factory.django.DjangoModelFactory):
    """A reconcile card of a line: 48 users against 50 billed at 3.00 (over-billed by 2)."""

    class Meta:
        model = SeatDiscrepancy

    line = factory.SubFactory(BillingLineFactory)
    organization = factory.SelfAttribute("line.organization")
    psa_company = factory.SelfAttribute("line.company")
    psa_product = factory.SelfAttribute("line.product")
    kind = SeatDiscrepancy.Kind.RECONCILE
    vendor_count = 48
    billed = 50
    target = factory.LazyAttribute(lambda o: o.vendor_count)
    delta = factory.LazyAttribute(lambda o: o.target - o.billed)
    unit_price = 3
    monthly_change = factory.LazyAttribute(lambda o: o.delta * o.unit_price)


class CountHistoryFactory(factory.django.DjangoModelFactory):
    """A change point of a line's card."""

    class Meta:
        model = CountHistory

    line = factory.SubFactory(BillingLineFactory)
    organization = factory.SelfAttribute("line.organization")
    psa_company = factory.SelfAttribute("line.company")
    psa_product = factory.SelfAttribute("line.product")
    day = factory.LazyFunction(timezone.localdate)
    vendor_count = 48
    billed = 50
