"""Vendor connections keep their credential like PSA connections: non-secret `settings`
(region, base URL, API schema) and the secrets as one encrypted JSON object
({"api_key": …}). Every stored key is decrypted and encrypted again in its new shape."""

import json

from django.db import migrations, models

from reconcile.core import crypto

MOVED = ("region", "base_url", "api_schema")


def to_store(apps, schema_editor):
    VendorConnection = apps.get_model("integrations", "VendorConnection")
    for connection in VendorConnection.objects.all():
        connection.settings = {
            name: getattr(connection, name) for name in MOVED if getattr(connection, name)
        }
        if connection.credential_encrypted:
            key = crypto.decrypt(connection.credential_encrypted)
            connection.secrets_encrypted = crypto.encrypt(json.dumps({"api_key": key}))
        connection.secret_hint = connection.credential_last4
        connection.save(update_fields=["settings", "secrets_encrypted", "secret_hint"])


def from_store(apps, schema_editor):
    VendorConnection = apps.get_model("integrations", "VendorConnection")
    for connection in VendorConnection.objects.all():
        for name in MOVED:
            setattr(connection, name, connection.settings.get(name, ""))
        if connection.secrets_encrypted:
            secrets = json.loads(crypto.decrypt(connection.secrets_encrypted))
            connection.credential_encrypted = crypto.encrypt(secrets.get("api_key", ""))
        connection.credential_last4 = connection.secret_hint[-4:]
        connection.save()


class Migration(migrations.Migration):
    dependencies = [
        ("integrations", "0009_kind_from_providers"),
    ]

    operations = [
        migrations.AddField(
            model_name="vendorconnection",
            name="settings",
            field=models.JSONField(default=dict),
        ),
        migrations.AddField(
            model_name="vendorconnection",
            name="secrets_encrypted",
            field=models.TextField(blank=True),
        ),
        migrations.AddField(
            model_name="vendorconnection",
            name="secret_hint",
            field=models.CharField(blank=True, max_length=8),
        ),
        # The old columns are emptied for the reverse direction's sake; removed below.
        migrations.AlterField(
            model_name="vendorconnection",
            name="region",
            field=models.CharField(blank=True, max_length=8),
        ),
        migrations.AlterField(
            model_name="vendorconnection",
            name="base_url",
            field=models.URLField(blank=True, max_length=300),
        ),
        migrations.RunPython(to_store, from_store),
        migrations.RemoveField(model_name="vendorconnection", name="credential_encrypted"),
        migrations.RemoveField(model_name="vendorconnection", name="credential_last4"),
        migrations.RemoveField(model_name="vendorconnection", name="region"),
        migrations.RemoveField(model_name="vendorconnection", name="base_url"),
        migrations.RemoveField(model_name="vendorconnection", name="api_schema"),
    ]
