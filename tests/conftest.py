"""Shared fixtures: the sandboxes on a free port, and the three users every view test needs
(an owner and a member of one organization, and an outsider of another)."""

import os
import subprocess
import sys

import httpx
import pytest
from django.conf import settings as django_settings
from django.core.cache import caches
from django.db import connection
from django_q.conf import Conf

from reconcile.tenancy.models import Role
from sandboxes.app import serve_in_thread
from sandboxes.data import DEMO_PARTNER_KEY
from tests.factories import PASSWORD, MembershipFactory, OrganizationFactory

REGIONS = ("us", "eu", "ca", "uk", "de")


@pytest.fixture(scope="session")
def sandbox_server():
    base_url, stop = serve_in_thread()
    yield base_url
    stop()


@pytest.fixture
def sandbox(sandbox_server, settings):
    """The sandboxes, with the product's KnowBe4 URLs pointed at them; reset after the test."""
    settings.KNOWBE4_GRAPHQL_URLS = {
        region: f"{sandbox_server}/knowbe4/{region}/graphql" for region in REGIONS
    }
    settings.KNOWBE4_REPORTING_URLS = {
        region: f"{sandbox_server}/knowbe4-api/{region}" for region in REGIONS
    }
    yield Sandbox(sandbox_server)
    httpx.post(f"{sandbox_server}/_sandbox/reset").raise_for_status()


class Sandbox:
    demo_key = DEMO_PARTNER_KEY

    def __init__(self, base_url):
        self.base_url = base_url

    def graphql_url(self, region="us"):
        return f"{self.base_url}/knowbe4/{region}/graphql"

    def set_key(self, key, **settings):
        response = httpx.post(f"{self.base_url}/_sandbox/knowbe4/keys/{key}", json=settings)
        response.raise_for_status()
        return response.json()

    def key_state(self, key):
        return httpx.get(f"{self.base_url}/_sandbox/knowbe4/keys/{key}").json()


@pytest.fixture(autouse=True)
def tasks_inline(monkeypatch):
    """django-q2 runs queued tasks in-process during tests (browser tests use a real worker)."""
    monkeypatch.setattr(Conf, "SYNC", True)


@pytest.fixture(autouse=True)
def empty_cache():
    """Each test starts with empty caches: on SQLite a rolled-back test's ids come again."""
    for cache in caches.all():
        cache.clear()


@pytest.fixture(autouse=True)
def test_settings(settings):
    settings.TRUEUP_HTTP_MAX_RETRY_WAIT = 5
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
    # Static files straight from static/, without `collectstatic`'s manifest.
    settings.STORAGES = settings.STORAGES | {
        "staticfiles": {"BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"}
    }


@pytest.fixture
def organization(db):
    return OrganizationFactory(name="Acme MSP")


@pytest.fixture
def owner(organization):
    return MembershipFactory(
        organization=organization, role=Role.OWNER, user__email="owner@acme-msp.example"
    ).user


@pytest.fixture
def member_factory(organization):
    def make(role):
        return MembershipFactory(
            organization=organization, role=role, user__email=f"{role}@acme-msp.example"
        ).user

    return make


@pytest.fixture
def outsider(db):
    return MembershipFactory(
        role=Role.OWNER, user__email="owner@other-msp.example", organization__name="Other MSP"
    ).user


def login(client, user):
    """Sign in without the login form (django-axes wants a request, which Client.login lacks);
    tests/tenancy/test_security.py drives the real form."""
    assert user.check_password(PASSWORD)
    client.force_login(user, backend="django.contrib.auth.backends.ModelBackend")
    return client


@pytest.fixture
def owner_client(client, owner):
    return login(client, owner)


def _database_url() -> str:
    db = connection.settings_dict
    if db["ENGINE"].endswith("sqlite3"):
        return f"sqlite:///{db['NAME']}"
    password = f":{db['PASSWORD']}" if db["PASSWORD"] else ""
    return f"postgres://{db['USER']}{password}@{db['HOST']}:{db['PORT']}/{db['NAME']}"


@pytest.fixture
def start_worker(sandbox, tmp_path):
    """Start `manage.py qcluster` on the test database; stopped when the test ends."""
    processes = []

    def start():
        env = os.environ | {
            "DATABASE_URL": _database_url(),
            "KNOWBE4_GRAPHQL_URL_US": sandbox.graphql_url("us"),
            "KNOWBE4_REPORTING_URL_US": f"{sandbox.base_url}/knowbe4-api/us",
            "TRUEUP_WORKERS": "1",
            "TRUEUP_WORKER_POLL": "0.2",
        }
        log = open(tmp_path / f"worker-{len(processes)}.log", "w")  # noqa: SIM115 - closed later
        processes.append(
            (
                subprocess.Popen(
                    [sys.executable, "manage.py", "qcluster"],
                    cwd=django_settings.BASE_DIR,
                    env=env,
                    stdout=log,
                    stderr=subprocess.STDOUT,
                ),
                log,
            )
        )

    yield start
    for process, log in processes:
        process.terminate()
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            process.kill()
        log.close()
