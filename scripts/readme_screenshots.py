"""Take the README's screenshots from a running `make run` (http://127.0.0.1:8000).

make run            # in one terminal
.venv/bin/python scripts/readme_screenshots.py
"""

import sys
from pathlib import Path

from playwright.sync_api import expect, sync_playwright

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from reconcile.demo import DEMO_EMAIL, DEMO_PASSWORD  # noqa: E402
from sandboxes.data import DEMO_PARTNER_KEY  # noqa: E402

BASE = "http://127.0.0.1:8000"
OUT = Path(__file__).resolve().parent.parent / "docs" / "screenshots"


def main():
    OUT.mkdir(parents=True, exist_ok=True)
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path="/usr/bin/chromium", args=["--no-sandbox", "--disable-gpu"]
        )
        page = browser.new_page(base_url=BASE, viewport={"width": 1280, "height": 800})
        page.goto("/login/")
        page.get_by_label("E-mail").fill(DEMO_EMAIL)
        page.get_by_label("Password").fill(DEMO_PASSWORD)
        page.get_by_role("button", name="Sign in").click()
        page.goto("/integrations/")
        if not page.get_by_role("link", name="accounts →").count():  # KnowBe4 not connected yet
            page.get_by_role("link", name="Connect", exact=True).click()
            page.get_by_label("API key").fill(DEMO_PARTNER_KEY)
            page.get_by_label("Description").fill("Demo partner (US)")
            page.screenshot(path=OUT / "connect.png")
            page.get_by_role("button", name="Authenticate").click()
            page.screenshot(path=OUT / "pending.png")
            expect(page.get_by_test_id("connection-state")).to_have_text("Active", timeout=30_000)
            page.get_by_role("link", name="Import finished: refresh to see the data").click()
            page.screenshot(path=OUT / "connection.png", full_page=True)
        page.goto("/integrations/")
        page.get_by_role("link", name="accounts →").first.click()
        page.screenshot(path=OUT / "accounts.png")
        page.goto("/integrations/")
        page.screenshot(path=OUT / "integrations.png", full_page=True)
        page.get_by_role("link", name="Billing lines →").click()
        page.screenshot(path=OUT / "psa-lines.png")
        page.goto(page.url.replace("/lines/", "/products/") + "?q=KB4")
        page.screenshot(path=OUT / "psa-products.png")
        page.goto("/")
        page.screenshot(path=OUT / "dashboard.png")
        page.goto("/activity/")
        page.screenshot(path=OUT / "activity.png")
        browser.close()


if __name__ == "__main__":
    main()
