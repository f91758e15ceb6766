"""Structured logs: one JSON line per request and per task, with ids and without secrets."""

import json
import logging

import pytest
from django.urls import reverse
from pythonjsonlogger.json import JsonFormatter

from reconcile.observability import log_task
from tests.factories import SyncRunFactory

pytestmark = pytest.mark.django_db


def test_a_request_is_one_line_with_the_organization(owner_client, organization, caplog):
    with caplog.at_level(logging.INFO, logger="trueup.requests"):
        owner_client.get(reverse("review:index"), {"q": "secret-search-term"})
    record = next(r for r in caplog.records if r.name == "trueup.requests")
    line = json.loads(JsonFormatter().format(record))
    assert line["path"] == "/review/" and line["status"] == 200
    assert line["organization_id"] == organization.pk and line["method"] == "GET"
    assert "secret-search-term" not in json.dumps(line)  # no query strings


def test_a_task_is_one_line_with_its_run_and_organization(caplog):
    from django.utils import timezone

    run = SyncRunFactory()
    now = timezone.now()
    with caplog.at_level(logging.INFO, logger="trueup.tasks"):
        log_task(
            "django_q",
            task={
                "name": "sync-1",
                "func": "reconcile.sync.tasks.sync_connection",
                "args": (run.pk,),
                "success": True,
                "started": now,
                "stopped": now,
            },
        )
    line = json.loads(JsonFormatter().format(caplog.records[-1]))
    assert line["run_id"] == run.pk and line["organization_id"] == run.organization_id
    assert line["success"] is True and line["duration_ms"] == 0.0
