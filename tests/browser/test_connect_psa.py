"""Connect the ConnectWise sandbox from the browser, import, and find a product by Product ID."""

import time

import pytest
from playwright.sync_api import expect

from sandboxes import connectwise, psa_data
from tests.browser.conftest import sign_in

pytestmark = pytest.mark.django_db(transaction=True)


def test_owner_connects_connectwise_and_finds_a_product_by_id(
    page, screenshot, sandbox, owner, start_worker
):
    credentials = connectwise.demo_credentials(sandbox.base_url)
    sign_in(page, owner)

    page.get_by_role("link", name="Integrations").click()
    page.get_by_role("link", name="ConnectWise PSA").click()
    page.get_by_label("Site").fill(credentials["site"])
    page.get_by_label("Company ID").fill(credentials["company_id"])
    page.get_by_label("Public key").fill(credentials["public_key"])
    page.get_by_label("Private key").fill("not-the-key")
    page.get_by_label("Client ID").fill(credentials["client_id"])
    page.get_by_role("button", name="Test connection").click()
    expect(page.get_by_role("alert")).to_contain_text("rejected the public/private key pair")
    screenshot("01-test-connection-rejected")

    page.get_by_label("Private key").fill(credentials["private_key"])
    page.get_by_role("button", name="Test connection").click()
    expect(page.get_by_role("status")).to_contain_text("ConnectWise accepted the keys")
    screenshot("02-test-connection-ok")
    page.get_by_role("button", name="Save and continue").click()

    expect(page.get_by_role("heading", name="What should TrueUp import?")).to_be_visible()
    boxes = page.locator("input[name=types]")
    assert boxes.count() > 1 and all(boxes.nth(i).is_checked() for i in range(boxes.count()))
    screenshot("03-agreement-types")
    page.get_by_role("button", name="Import").click()

    state = page.get_by_test_id("connection-state")
    expect(state).to_have_text("Pending")
    start_worker()
    deadline = time.monotonic() + 60
    while state.inner_text() != "Active" and time.monotonic() < deadline:
        page.get_by_role("button", name="↻ Refresh").click()
        page.wait_for_timeout(500)
    expect(state).to_have_text("Active")
    lines = len(psa_data.universe("demo").lines())
    expect(page.get_by_test_id("item-count")).to_have_text(str(lines))
    page.get_by_role("link", name="Import finished: refresh to see the data").click()
    screenshot("04-imported")

    product = next(p for p in psa_data.universe("demo").products if p.identifier == "KB4-DIA-U")
    page.get_by_role("link", name="20 products").click()
    page.get_by_label("Search").fill("KB4-DIA-U")
    rows = page.locator("#results tbody tr")
    expect(rows).to_have_count(1)
    expect(rows.first).to_contain_text(product.name)
    screenshot("05-product-by-id")
