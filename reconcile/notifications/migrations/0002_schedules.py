"""The worker's two standing schedules: retry pending notification e-mails every five minutes,
and check credential expiry dates daily."""

from datetime import timedelta

from django.db import migrations
from django.utils import timezone

SCHEDULES = {
    "notifications-send-pending": {
        "func": "reconcile.notifications.tasks.send_pending",
        "schedule_type": "I",  # Schedule.MINUTES
        "minutes": 5,
    },
    "notifications-credential-expiry": {
        "func": "reconcile.notifications.tasks.check_credential_expiry",
        "schedule_type": "D",  # Schedule.DAILY
        "minutes": None,
    },
}


def create(apps, schema_editor):
    Schedule = apps.get_model("django_q", "Schedule")
    for name, fields in SCHEDULES.items():
        Schedule.objects.update_or_create(
            name=name,
            defaults=fields | {"repeats": -1, "next_run": timezone.now() + timedelta(minutes=1)},
        )


def remove(apps, schema_editor):
    Schedule = apps.get_model("django_q", "Schedule")
    Schedule.objects.filter(name__in=list(SCHEDULES)).delete()


class Migration(migrations.Migration):
    dependencies = [
        ("notifications", "0001_initial"),
        ("django_q", "0018_task_success_index"),
    ]

    operations = [migrations.RunPython(create, remove)]
