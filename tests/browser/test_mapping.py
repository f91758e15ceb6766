"""Issue 5's walk: map by dragging and by the keyboard control, accept, reject and exclude
suggestions, map a service found by Product ID, and finish the setup."""

import time

import pytest
from playwright.sync_api import expect

from tests.browser.conftest import sign_in

pytestmark = pytest.mark.django_db(transaction=True)


def test_billing_maps_customers_and_services_and_finishes(
    page, screenshot, owner, demo_knowbe4, demo_connectwise, start_worker
):
    kb4 = demo_knowbe4
    sign_in(page, owner)
    page.goto(f"/integrations/vendor/{kb4.pk}/")
    page.get_by_role("link", name="Next: map customers →").click()
    expect(page.get_by_text("mapped automatically")).to_be_visible()
    counter = page.get_by_test_id("unmapped-counter")
    start = int(counter.inner_text().split()[0])

    plain = page.locator(".account-card[draggable=true]:not(:has(.suggestion))")
    dragged = plain.nth(0)
    dragged_id = dragged.get_attribute("id")
    company = page.locator(".drop-zone").nth(4)
    company_name = company.locator(".company-name").inner_text()
    dragged.drag_to(company)
    expect(page.locator(f"#{dragged_id}")).to_contain_text(f"→ {company_name}")

    typed = plain.nth(0)  # the next one without a suggestion
    typed_id = typed.get_attribute("id")
    typed.get_by_role("searchbox").fill(company_name[:6])
    page.locator(f"#{typed_id} .choice").first.click()
    expect(page.locator(f"#{typed_id}")).to_contain_text("→ ")

    suggested = page.locator(".account-card:has(.suggestion)")
    accepted_id = suggested.nth(0).get_attribute("id")
    suggested.nth(0).get_by_role("button", name="Accept").click()
    expect(page.locator(f"#{accepted_id}")).to_contain_text("(accepted suggestion)")
    rejected_id = suggested.nth(0).get_attribute("id")
    suggested.nth(0).get_by_role("button", name="Reject").click()
    expect(page.locator(f"#{rejected_id} .suggestion")).to_have_count(0)
    excluded_id = plain.nth(0).get_attribute("id")
    page.locator(f"#{excluded_id}").get_by_role("button", name="Exclude").click()
    expect(page.locator(f"#{excluded_id}")).to_contain_text("Excluded from billing")
    expect(counter).to_have_text(f"{start - 4} unmapped")
    screenshot("01-account-mapping")

    page.get_by_role("link", name="Next: services →").click()
    expect(
        page.get_by_role("button", name="Finish — map at least one service to finish.")
    ).to_be_disabled()
    diamond = page.locator(".account-card", has_text="KnowBe4 SAT Diamond")
    diamond.get_by_role("searchbox").fill("KB4-DIA-U")
    diamond.locator(".choice").first.click()
    expect(page.locator(".account-card", has_text="KnowBe4 SAT Diamond")).to_contain_text(
        "KnowBe4 Diamond - per user"
    )
    page.reload()
    screenshot("02-service-mapping")
    page.get_by_role("button", name="Finish", exact=True).click()

    expect(page.get_by_text("Setup finished: the first sync is running.")).to_be_visible()
    expect(page.get_by_text("Import queued")).to_be_visible()
    start_worker()
    deadline = time.monotonic() + 60
    while not page.get_by_role("link", name="Import finished: refresh to see the data").count():
        assert time.monotonic() < deadline, "the sync after Finish did not end"
        page.wait_for_timeout(500)
    screenshot("03-finished")
