from datetime import timedelta

import pytest
from django.urls import reverse
from django.utils import timezone
from django_q.models import Schedule, Success

pytestmark = pytest.mark.django_db


def beat(seconds_ago):
    now = timezone.now() - timedelta(seconds=seconds_ago)
    Success.objects.create(
        id=f"beat{seconds_ago}",
        name=f"beat-{seconds_ago}",
        func="reconcile.sync.tasks.heartbeat",
        started=now,
        stopped=now,
        success=True,
    )


def test_healthz_reports_database_worker_and_queue(client):
    assert Schedule.objects.filter(name="worker-heartbeat", minutes=1).exists()
    response = client.get(reverse("healthz"))
    assert response.status_code == 200
    assert response.json()["database"] == "ok"
    assert response.json()["status"] == "worker stale"  # no heartbeat yet
    assert client.get(reverse("healthz"), {"strict": "1"}).status_code == 503
    beat(30)
    body = client.get(reverse("healthz"), {"strict": "1"}).json()
    assert body["status"] == "ok" and 25 <= body["worker_heartbeat_age_s"] <= 40
    assert body["queued_tasks"] == 0


def test_an_old_heartbeat_is_stale(client):
    beat(3600)
    response = client.get(reverse("healthz"), {"strict": "1"})
    assert response.status_code == 503 and response.json()["status"] == "worker stale"
