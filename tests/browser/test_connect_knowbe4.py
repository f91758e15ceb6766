"""The acceptance walk of the foundation: sign in, connect the demo key, pending, refresh,
active with the sandbox's account count, then the searchable, paginated accounts list."""

import time

import pytest
from playwright.sync_api import expect

from sandboxes.data import customers
from tests.factories import PASSWORD

pytestmark = pytest.mark.django_db(transaction=True)


def test_owner_connects_knowbe4_and_sees_the_accounts(
    page, screenshot, sandbox, owner, start_worker
):
    page.goto("/login/")
    page.get_by_label("E-mail").fill(owner.email)
    page.get_by_label("Password").fill(PASSWORD)
    screenshot("01-sign-in")
    page.get_by_role("button", name="Sign in").click()
    expect(page.get_by_role("heading", name="Acme MSP")).to_be_visible()

    page.get_by_role("link", name="Integrations").click()
    page.get_by_role("link", name="Connect", exact=True).click()
    page.get_by_label("API key").fill(sandbox.demo_key)
    page.get_by_label("API URL").select_option("us")
    page.get_by_label("Description").fill("Demo partner")
    screenshot("02-connect-form")
    page.get_by_role("button", name="Authenticate").click()

    state = page.get_by_test_id("connection-state")
    expect(state).to_have_text("Pending")
    expect(page.get_by_text("Import queued")).to_be_visible()
    screenshot("03-pending")

    start_worker()
    deadline = time.monotonic() + 60
    while state.inner_text() != "Active" and time.monotonic() < deadline:
        page.get_by_role("button", name="↻ Refresh").click()
        page.wait_for_timeout(500)
    expect(state).to_have_text("Active")
    expect(page.get_by_test_id("item-count")).to_have_text(str(len(customers("demo"))))
    screenshot("04-active")
    page.get_by_role("link", name="Import finished: refresh to see the data").click()
    expect(page.get_by_role("cell", name="KnowBe4 SAT Diamond")).to_be_visible()
    screenshot("05-services")

    page.get_by_role("link", name="View accounts").click()
    expect(page.get_by_text("Page 1 of 4 · 160 in all")).to_be_visible()
    target = sorted(c.name.strip() for c in customers("demo"))[42]
    page.get_by_label("Search").fill(target)
    expect(page.locator("#account-results tbody tr").first).to_contain_text(target)
    expect(page.get_by_text("Page 1 of 4")).to_have_count(0)
    screenshot("06-accounts-search")
