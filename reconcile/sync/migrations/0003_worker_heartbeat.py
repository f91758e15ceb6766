from django.db import migrations
from django.utils import timezone


def create(apps, schema_editor):
    Schedule = apps.get_model("django_q", "Schedule")
    Schedule.objects.update_or_create(
        name="worker-heartbeat",
        defaults={
            "func": "reconcile.sync.tasks.heartbeat",
            "schedule_type": "I",  # minutes
            "minutes": 1,
            "repeats": -1,
            "next_run": timezone.now(),
        },
    )


def remove(apps, schema_editor):
    apps.get_model("django_q", "Schedule").objects.filter(name="worker-heartbeat").delete()


class Migration(migrations.Migration):
    dependencies = [
        ("sync", "0002_syncrun_psa_connection_and_more"),
        ("django_q", "0019_alter_task_options_alter_ormq_key_alter_ormq_lock_and_more"),
    ]

    operations = [migrations.RunPython(create, remove)]
