"""Issue 6's walk on the demo data: finish mapping, watch the first sync, review the cards,
approve one, adjust one, dismiss one, read the Test Mode report, confirm, and find the new
quantities in the PSA sandbox and in the push history."""

import re
import time
from decimal import Decimal

import pytest
from playwright.sync_api import expect

from integrations.models import VendorService
from psa.models import PSAProduct
from psa.providers.base import LineKey
from reconcile.mapping import services as mapping
from reconcile.review.models import SeatDiscrepancy
from reconcile.review.services import first_of_next_month
from tests.browser.conftest import sign_in

pytestmark = pytest.mark.django_db(transaction=True)


def psa_quantity(line):
    line.refresh_from_db()
    adapter = line.connection.adapter()
    key = LineKey(line.container.external_id, line.external_id, line.raw)
    return adapter.read_line(key, on=first_of_next_month()).quantity


def test_finance_reviews_and_pushes_to_the_psa(
    page, screenshot, sandbox, owner, demo_knowbe4, demo_connectwise, start_worker
):
    kb4 = demo_knowbe4
    mapping.map_service(
        VendorService.objects.get(code="sat-platinum"),
        PSAProduct.objects.get(identifier="KB4-PLAT"),
        owner,
    )

    sign_in(page, owner)

    # Finish the mapping: Diamond by its Product ID, then Finish starts the first sync.
    page.goto(f"/mapping/accounts/?setup={kb4.pk}")
    expect(page.get_by_text("mapped automatically")).to_be_visible()
    page.get_by_role("link", name="Next: services →").click()
    diamond = page.locator(".account-card", has_text="KnowBe4 SAT Diamond")
    diamond.get_by_role("searchbox").fill("KB4-DIA-U")
    diamond.locator(".choice").first.click()
    expect(page.locator(".account-card", has_text="KnowBe4 SAT Diamond")).to_contain_text(
        "KnowBe4 Diamond - per user"
    )
    sandbox.set_key(sandbox.demo_key, delay_seconds=2.0)  # slow enough to watch it run
    page.get_by_role("button", name="Finish", exact=True).click()
    expect(page.get_by_text("Setup finished: the first sync is running.")).to_be_visible()
    start_worker()
    expect(page.locator(".sync-status .status-line .spinner")).to_be_visible(timeout=20_000)
    expect(page.locator(".sync-status progress")).to_be_visible(timeout=20_000)
    expect(page.locator(".sync-status .status-line")).to_contain_text(
        re.compile(r"Importing"), timeout=30_000
    )
    screenshot("01-first-sync-running")
    refresh = page.get_by_role("link", name="Import finished: refresh to see the data")
    expect(refresh).to_be_visible(timeout=60_000)
    sandbox.set_key(sandbox.demo_key, delay_seconds=0)

    # The review page: every kind of card, with money.
    page.goto("/review/")
    expect(page.locator(".rcard.kind-reconcile").first).to_be_visible()
    expect(page.locator(".rcard.kind-new_revenue").first).to_be_visible()
    expect(page.get_by_test_id("review-summary")).to_contain_text("/mo")
    screenshot("02-review", full_page=False)
    page.locator("select[name=kind]").select_option("no_change")
    expect(page.locator(".rcard.kind-no_change").first).to_be_visible()
    expect(page.locator(".rcard.kind-reconcile")).to_have_count(0)

    page.goto("/review/?kind=reconcile&sort=name")
    cards = page.locator(".rcard.kind-reconcile")
    approved_id, adjusted_id, dismissed_id = (cards.nth(i).get_attribute("id") for i in range(3))
    approved = page.locator(f"#{approved_id}")
    approved.get_by_test_id("approve").click()
    expect(approved.get_by_test_id("status")).to_contain_text("Approved: bill")

    adjusted = page.locator(f"#{adjusted_id}")
    adjusted.get_by_test_id("adjust").click()
    adjusted.get_by_label("Quantity").fill("-4")
    adjusted.get_by_role("button", name="Save").click()
    expect(adjusted).to_contain_text("A quantity cannot be negative.")
    adjusted.get_by_label("Quantity").fill("77")
    adjusted.get_by_role("button", name="Save").click()
    expect(adjusted.get_by_test_id("status")).to_contain_text("Adjusted: bill 77")

    dismissed = page.locator(f"#{dismissed_id}")
    dismissed.get_by_test_id("dismiss").click()
    dismissed.get_by_label("Why").fill("Seasonal staff leave in December")
    dismissed.get_by_role("button", name="Dismiss").click()
    expect(dismissed.get_by_test_id("status")).to_contain_text("Dismissed: Seasonal staff")
    expect(page.get_by_test_id("approved-bar")).to_contain_text("2 changes approved")
    screenshot("03-decisions", full_page=False)

    # Test Mode: the report, nothing sent yet.
    page.get_by_test_id("test-mode").click()
    expect(page.get_by_test_id("test-mode-note")).to_contain_text("Nothing has been sent")
    expect(page.get_by_test_id("batch-items").locator("tbody tr")).to_have_count(2)
    screenshot("04-test-mode")
    approved_card = SeatDiscrepancy.objects.get(pk=int(approved_id.split("-")[1]))
    adjusted_card = SeatDiscrepancy.objects.get(pk=int(adjusted_id.split("-")[1]))
    assert psa_quantity(approved_card.line) == approved_card.billed  # untouched so far

    page.get_by_test_id("confirm-push").click()
    expect(page.get_by_test_id("batch-state")).to_have_text("Finished", timeout=60_000)
    expect(page.get_by_test_id("batch-items")).not_to_contain_text("Waiting")
    assert page.get_by_test_id("batch-items").get_by_text("Confirmed").count() == 2
    screenshot("05-pushed")

    # The PSA holds the new quantities, read back through its API.
    assert psa_quantity(approved_card.line) == approved_card.target
    assert psa_quantity(adjusted_card.line) == Decimal(77) - adjusted_card.line.included_quantity

    # The cards show the push, and the line's push history lists it.
    page.goto("/review/?kind=all&state=pushed")
    pushed = page.locator(f"#{approved_id}")
    expect(pushed.get_by_test_id("push-state")).to_contain_text("Confirmed")
    pushed.get_by_test_id("details").click()
    expect(pushed.get_by_test_id("push-history")).to_contain_text("Confirmed")
    screenshot("06-push-history")
    page.goto("/review/pushes/")
    expect(page.get_by_test_id("batches")).to_contain_text("Finished")

    deadline = time.monotonic() + 5
    while SeatDiscrepancy.objects.filter(pk=approved_card.pk, kind="reconcile").exists():
        assert time.monotonic() < deadline, "the push was not followed by a reconciliation"
        time.sleep(0.2)
