from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [
        ("psa", "0007_kind_from_providers"),
    ]

    operations = [
        migrations.AddField(
            model_name="psaconnection",
            name="credential_expires_on",
            field=models.DateField(blank=True, null=True),
        ),
    ]
