"""The fourth PSA end to end in the browser: connect Syncro's sandbox (a wrong token first),
import its schedules, reconcile against KnowBe4, push one quantity and find it read back in
Syncro and in the push history."""

import time

import pytest
from playwright.sync_api import expect

from integrations.models import VendorService
from psa.models import PSAConnection, PSAProduct
from psa.providers.base import LineKey
from reconcile.mapping import services as mapping
from reconcile.review.models import SeatDiscrepancy
from reconcile.review.services import reconcile_organization
from sandboxes import psa_data, syncro
from tests.browser.conftest import sign_in

pytestmark = pytest.mark.django_db(transaction=True)


def syncro_quantity(line):
    line.refresh_from_db()
    key = LineKey(line.container.external_id, line.external_id, line.raw)
    return line.connection.adapter().read_line(key).quantity


def test_owner_connects_syncro_imports_and_pushes(
    page, screenshot, sandbox, organization, owner, demo_knowbe4, start_worker
):
    credentials = syncro.partner_credentials(sandbox.base_url, "demo")
    sign_in(page, owner)

    page.get_by_role("link", name="Integrations").click()
    page.get_by_role("link", name="Syncro", exact=True).click()
    expect(page.get_by_text("Recurring Invoices - Edit")).to_be_visible()
    page.get_by_label("Syncro address").fill(credentials["api_url"])
    page.get_by_label("API token").fill("not-the-token")
    page.get_by_role("button", name="Test connection").click()
    expect(page.get_by_role("alert")).to_contain_text("rejected the API token")
    screenshot("01-test-connection-rejected")

    page.get_by_label("API token").fill(credentials["api_token"])
    page.get_by_role("button", name="Test connection").click()
    expect(page.get_by_role("status")).to_contain_text("Syncro accepted the API token")
    screenshot("02-test-connection-ok")
    page.get_by_role("button", name="Save and continue").click()

    expect(page.get_by_role("heading", name="What should TrueUp import?")).to_be_visible()
    expect(page.get_by_text("invoice schedule types")).to_be_visible()
    page.get_by_role("button", name="Import").click()
    state = page.get_by_test_id("connection-state")
    start_worker()
    deadline = time.monotonic() + 60
    while state.inner_text() != "Active" and time.monotonic() < deadline:
        page.get_by_role("button", name="↻ Refresh").click()
        page.wait_for_timeout(500)
    expect(state).to_have_text("Active")
    live = [line for line in psa_data.universe("demo").lines() if not line.cancelled_date]
    expect(page.get_by_test_id("item-count")).to_have_text(str(len(live)))
    screenshot("03-imported")

    # Billing staff's part, done here through the services: map, then reconcile.
    connection = PSAConnection.objects.get(organization=organization, kind="syncro")
    mapping.auto_map(organization, owner)
    mapping.auto_map_services(organization, owner)
    mapping.map_service(
        VendorService.objects.get(code="sat-platinum"),
        PSAProduct.objects.get(connection=connection, identifier="KB4-PLAT"),
        owner,
    )
    reconcile_organization(organization)

    page.goto("/review/?kind=reconcile&sort=name")
    card = page.locator(".rcard.kind-reconcile").first
    card_id = card.get_attribute("id")
    chosen = SeatDiscrepancy.objects.get(pk=int(card_id.split("-")[1]))
    assert chosen.line.connection == connection
    assert syncro_quantity(chosen.line) == chosen.billed
    page.locator(f"#{card_id}").get_by_test_id("approve").click()
    expect(page.locator(f"#{card_id}").get_by_test_id("status")).to_contain_text("Approved")

    page.get_by_test_id("test-mode").click()
    expect(page.get_by_test_id("batch-items").locator("tbody tr")).to_have_count(1)
    page.get_by_test_id("confirm-push").click()
    expect(page.get_by_test_id("batch-state")).to_have_text("Finished", timeout=60_000)
    expect(page.get_by_test_id("batch-items").get_by_text("Confirmed")).to_have_count(1)
    screenshot("04-pushed")

    assert syncro_quantity(chosen.line) == chosen.target  # read back through Syncro's API
    page.goto("/review/?kind=all&state=pushed")
    pushed = page.locator(f"#{card_id}")
    expect(pushed.get_by_test_id("push-state")).to_contain_text("Confirmed")
    pushed.get_by_test_id("details").click()
    expect(pushed.get_by_test_id("push-history")).to_contain_text("Confirmed")
    screenshot("05-push-history")
