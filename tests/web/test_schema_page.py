"""``/schema`` reads offline: Chromium, with every request to anywhere but chatd refused, shows the API reference
and never tries to fetch anything from elsewhere (litestar's default ReDoc page loaded its script from a CDN and
stayed blank)."""

from __future__ import annotations

from typing import Any

import pytest
from chatpage import CHROMIUM, CHROMIUM_ARGS, TIMEOUT_MS, artifact, require_browser

from harness import ChatdProcess

pytestmark = pytest.mark.browser


def test_the_api_reference_needs_nothing_but_chatd(server: ChatdProcess) -> None:
    require_browser()
    from playwright.sync_api import sync_playwright

    elsewhere: list[str] = []

    def only_chatd(route: Any) -> None:
        url = route.request.url
        if url.startswith(server.http + "/"):
            route.continue_()
        else:
            elsewhere.append(url)
            route.abort("internetdisconnected")

    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)
        try:
            page = browser.new_page()
            page.set_default_timeout(TIMEOUT_MS)
            page.route("**/*", only_chatd)
            page.goto(server.http + "/schema", wait_until="networkidle")
            assert page.title() == "chatd 0.1.0 API reference"
            create_room = page.locator('h3[id="op-post-/api/rooms"]')
            assert create_room.is_visible() and create_room.inner_text() == "POST /api/rooms"
            assert "Create a room" in page.inner_text("body")
            # A named type links to its description on the same page.
            page.click('a[href="#schema-NewRoom"]')
            assert page.locator("#schema-NewRoom").is_visible()
            page.screenshot(path=str(artifact("schema-offline.png")))
        finally:
            browser.close()
    assert elsewhere == [], f"the page tried to load {elsewhere}"
