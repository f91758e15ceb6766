from django.core.management.base import BaseCommand
from django.db import transaction

from integrations.models import VendorConnection
from psa.models import PSAConnection
from reconcile.core import crypto

# Every column that holds a Fernet token.
ENCRYPTED = [(VendorConnection, "secrets_encrypted"), (PSAConnection, "secrets_encrypted")]


class Command(BaseCommand):
    help = (
        "Re-encrypt every stored credential with the newest key of TRUEUP_ENCRYPTION_KEYS. "
        "Put the new key first, run this, then drop the old key from the list."
    )

    @transaction.atomic
    def handle(self, *args, **options):
        total = 0
        for model, field in ENCRYPTED:
            rows = model.objects.exclude(**{field: ""}).select_for_update().only("pk", field)
            for row in rows:
                setattr(row, field, crypto.rotate(getattr(row, field)))
            model.objects.bulk_update(rows, [field], batch_size=500)
            total += len(rows)
            self.stdout.write(f"{model._meta.verbose_name_plural}: {len(rows)} re-encrypted")
        self.stdout.write(self.style.SUCCESS(f"{total} credentials now use the newest key."))
