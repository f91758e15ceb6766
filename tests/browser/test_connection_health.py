"""Issue 7's walk: a quarantined connection's banner, a failed and then a passing resume, Test
connection, and setting up a KnowBe4 Reporting API connection with an exclusion."""

import re

import pytest
from playwright.sync_api import expect

from reconcile.sync.services import queue_sync, run_sync
from sandboxes import data
from tests.browser.conftest import sign_in

pytestmark = pytest.mark.django_db(transaction=True)


def test_quarantine_resume_and_a_reporting_connection(
    page, screenshot, sandbox, owner, demo_knowbe4, start_worker
):
    sandbox.set_key(sandbox.demo_key, revoked=True)
    assert run_sync(queue_sync(demo_knowbe4, trigger="manual").pk).state == "failed"

    sign_in(page, owner)

    banner = page.get_by_test_id("quarantine-banner")
    expect(banner).to_contain_text("Demo partner")
    expect(banner).to_contain_text("is quarantined")
    screenshot("01-quarantine-banner", full_page=False)
    banner.get_by_role("link", name="Test it and resume →").click()
    page.get_by_test_id("resume").click()
    expect(page.get_by_text("Still quarantined: the test failed.")).to_be_visible()
    expect(page.get_by_test_id("quarantine-banner")).to_be_visible()

    sandbox.set_key(sandbox.demo_key, revoked=False)
    page.get_by_test_id("test-connection").first.click()
    expect(page.get_by_test_id("test-result")).to_contain_text(re.compile(r"OK: .*\d+ ms"))
    page.get_by_test_id("resume").click()
    expect(page.get_by_text("resumed; its schedule runs again")).to_be_visible()
    expect(page.get_by_test_id("quarantine-banner")).to_have_count(0)
    screenshot("02-resumed", full_page=False)

    # A Reporting API key of one Diamond customer, with its own account.
    customer = next(
        c for c in data.customers("demo") if c.subscription_level in ("Diamond", "Platinum")
    )
    page.goto("/integrations/")
    page.get_by_role("link", name="Connect KnowBe4 Reporting API").click()
    page.get_by_label("Site").select_option("us")
    page.get_by_label("API key").fill(data.reporting_key(customer))
    page.get_by_label("Account name").fill(customer.name)
    page.get_by_label("Description").fill("Reporting key of one customer")
    screenshot("03-reporting-connect", full_page=False)
    page.get_by_role("button", name="Authenticate").click()
    start_worker()
    expect(page.get_by_test_id("connection-state").first).to_have_text("Active", timeout=60_000)
    page.reload()
    page.get_by_role("link", name="Excluded users").click()
    page.get_by_label("E-mail pattern").fill("svc-*@")
    page.get_by_role("button", name="Add exclusion").click()
    expect(page.locator("#exclusions")).to_contain_text("svc-*@")
    # Typing within milliseconds of htmx's swap can lose the keystrokes (no person types that
    # fast); let the swapped form settle first.
    expect(page.locator(".htmx-settling, .htmx-swapping")).to_have_count(0)
    page.wait_for_timeout(300)
    field = page.get_by_label("E-mail pattern")
    field.fill("not a pattern")
    expect(field).to_have_value("not a pattern")
    page.get_by_role("button", name="Add exclusion").click()
    expect(page.locator("#exclusions .error").first).to_contain_text("space")
    screenshot("04-exclusions")
