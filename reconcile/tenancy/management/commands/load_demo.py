from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand

from reconcile.demo import DEMO_EMAIL, DEMO_ORGANIZATION, DEMO_PASSWORD
from reconcile.tenancy import services
from reconcile.tenancy.models import Membership


class Command(BaseCommand):
    help = "Create the demo organization and its owner (idempotent) and print the login."

    def handle(self, *args, **options):
        User = get_user_model()
        user = User.objects.filter(username=DEMO_EMAIL).first()
        if user is None:
            user = User.objects.create_user(DEMO_EMAIL, DEMO_EMAIL, DEMO_PASSWORD)
        else:
            user.set_password(DEMO_PASSWORD)
            user.save(update_fields=["password"])
        if not Membership.objects.filter(user=user).exists():
            services.create_organization(DEMO_ORGANIZATION, user)
        self.stdout.write(f"\n  Demo login    {DEMO_EMAIL} / {DEMO_PASSWORD}")
