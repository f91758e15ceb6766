import json

from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandError

from psa.models import PSAConnection
from reconcile.core.signals import request_sync
from reconcile.demo import DEMO_EMAIL, DEMO_ORGANIZATION, DEMO_PASSWORD
from reconcile.sync import services as lifecycle
from reconcile.tenancy import services
from reconcile.tenancy.models import Membership


class Command(BaseCommand):
    help = "Create the demo organization and its owner (idempotent) and print the login."

    def add_arguments(self, parser):
        parser.add_argument(
            "--psa",
            help='JSON {"kind", "settings", "secrets"} of a PSA to connect the demo '
            "organization to (python -m sandboxes.demo prints the sandbox's), imported by the "
            "worker.",
        )

    def handle(self, *args, psa=None, **options):
        User = get_user_model()
        user = User.objects.filter(username=DEMO_EMAIL).first()
        if user is None:
            user = User.objects.create_user(DEMO_EMAIL, DEMO_EMAIL, DEMO_PASSWORD)
        else:
            user.set_password(DEMO_PASSWORD)
            user.save(update_fields=["password"])
        membership = Membership.objects.filter(user=user).first()
        organization = (
            membership.organization
            if membership
            else services.create_organization(DEMO_ORGANIZATION, user)
        )
        if psa:
            self.connect_psa(organization, user, psa)
        self.stdout.write(f"\n  Demo login    {DEMO_EMAIL} / {DEMO_PASSWORD}")
        self.stdout.write(
            "  Chart demo    after the first reconciliation: "
            ".venv/bin/python manage.py backfill_demo_history"
        )

    def connect_psa(self, organization, user, psa: str) -> None:
        try:
            fields = json.loads(psa)
            kind, settings, secrets = fields["kind"], fields["settings"], fields["secrets"]
        except (ValueError, KeyError, TypeError) as error:
            raise CommandError(
                f"--psa needs JSON with kind, settings and secrets: {error}"
            ) from None
        if PSAConnection.objects.filter(organization=organization, kind=kind).exists():
            return
        connection = lifecycle.connect(
            PSAConnection,
            organization,
            user,
            kind=kind,
            settings=settings,
            secrets=secrets,
            description="Demo ConnectWise PSA",
        )
        request_sync(connection, trigger="connect", actor=user)
