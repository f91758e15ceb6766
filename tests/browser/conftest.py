"""Browser tests: Debian's chromium driven by Playwright against a live server, with a real
django-q2 worker process on the test database (no task runs inline here)."""

import os
from pathlib import Path

import pytest
from django.conf import settings as django_settings
from django_q.conf import Conf
from playwright.sync_api import sync_playwright

from integrations.models import VendorConnection
from psa.models import PSAConnection
from reconcile.sync import services as lifecycle
from reconcile.sync.services import queue_sync, run_sync
from sandboxes.demo import psa_connection_fields
from tests.factories import PASSWORD

SCREENSHOTS = Path(django_settings.BASE_DIR) / "test-artifacts" / "screenshots"
CHROMIUM = os.environ.get("CHROMIUM", "/usr/bin/chromium")


def pytest_collection_modifyitems(items):
    for item in items:
        if "tests/browser/" in str(item.fspath):
            item.add_marker(pytest.mark.browser)


@pytest.fixture(scope="session")
def browser():
    os.environ["DJANGO_ALLOW_ASYNC_UNSAFE"] = "true"  # Playwright's loop shares the thread
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=CHROMIUM,
            args=[
                "--no-sandbox",
                "--disable-gpu",
                "--disable-background-networking",
                "--disable-component-update",
                "--disable-sync",
                "--no-first-run",
            ],
        )
        yield browser
        browser.close()


@pytest.fixture
def page(browser, live_server, settings, monkeypatch):
    monkeypatch.setattr(Conf, "SYNC", False)
    settings.SESSION_COOKIE_SECURE = settings.CSRF_COOKIE_SECURE = False
    context = browser.new_context(base_url=live_server.url, viewport={"width": 1360, "height": 900})
    page = context.new_page()
    yield page
    context.close()


@pytest.fixture
def screenshot(page, request):
    folder = SCREENSHOTS / request.node.name
    folder.mkdir(parents=True, exist_ok=True)

    def take(name, full_page=True):
        path = folder / f"{name}.png"
        page.screenshot(path=str(path), full_page=full_page)
        return path

    return take


def sign_in(page, user):
    """The real sign-in form (django-axes and the 2FA step included)."""
    page.goto("/login/")
    page.get_by_label("E-mail").fill(user.email)
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Sign in").click()


def imported(connection):
    """Run the first import of a connection in the test process (no worker needed yet)."""
    run = queue_sync(connection, trigger="connect")
    assert run_sync(run.pk).state == "succeeded"
    return connection


@pytest.fixture
def demo_knowbe4(sandbox, organization, owner):
    """The demo partner key connected and imported."""
    return imported(
        lifecycle.connect(
            VendorConnection,
            organization,
            owner,
            kind="knowbe4_partner",
            settings={"region": "us", "base_url": sandbox.graphql_url("us"), "api_schema": "2023"},
            secrets={"api_key": sandbox.demo_key},
            description="Demo partner",
        )
    )


@pytest.fixture
def demo_connectwise(sandbox, organization, owner):
    """The demo ConnectWise of the sandbox connected and imported."""
    settings, secrets = psa_connection_fields("connectwise", sandbox.base_url)
    return imported(
        lifecycle.connect(
            PSAConnection,
            organization,
            owner,
            kind="connectwise",
            settings=settings,
            secrets=secrets,
        )
    )
