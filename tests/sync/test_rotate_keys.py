import pytest
from cryptography.fernet import Fernet, InvalidToken
from django.core.management import call_command

from reconcile.core import crypto
from tests.factories import PSAConnectionFactory, VendorConnectionFactory

pytestmark = pytest.mark.django_db


def test_rotation_re_encrypts_every_credential_with_the_newest_key(settings):
    old, new = Fernet.generate_key().decode(), Fernet.generate_key().decode()
    settings.TRUEUP_ENCRYPTION_KEYS = [old]
    vendor = VendorConnectionFactory()
    vendor.set_secrets({"api_key": "kb4-partner-secret"})
    vendor.save()
    psa = PSAConnectionFactory(secrets={"private_key": "cw-private"})
    settings.TRUEUP_ENCRYPTION_KEYS = [new, old]
    call_command("rotate_encryption_keys")
    settings.TRUEUP_ENCRYPTION_KEYS = [new]  # the old key is gone: everything still reads
    vendor.refresh_from_db()
    psa.refresh_from_db()
    assert vendor.credential() == "kb4-partner-secret"
    assert psa.secrets() == {"private_key": "cw-private"}
    settings.TRUEUP_ENCRYPTION_KEYS = [old]
    with pytest.raises(InvalidToken):
        crypto.decrypt(vendor.secrets_encrypted)
