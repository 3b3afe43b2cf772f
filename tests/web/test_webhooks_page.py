"""A room's outgoing webhooks from the page, in real Chromium against a real receiver: its creator adds one and is
shown the secret once, sees a failing receiver's state and last error, retries it and removes it; someone else in
the room is not offered the panel."""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from chatpage import ChatPage

from harness import ChatdProcess

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "features"))
from receiver import Receiver  # noqa: E402

pytestmark = pytest.mark.browser

PASSWORD = "a long enough password"


@pytest.fixture
def site(tmp_path: Path) -> Iterator[ChatdProcess]:
    settings = {
        "auth": {"mode": "token"},
        "webhooks": {"allow_private": True, "poll_interval": 0.1, "backoff_min": 0.1, "max_attempts": 2},
    }
    proc = ChatdProcess(tmp_path / "hooks-web", settings).start()
    yield proc
    proc.stop()


def open_panel(person: ChatPage) -> None:
    if not person.page.eval_on_selector("#webhooks", "d => d.open"):
        person.page.click("#webhooks-summary")


def refreshed_until(person: ChatPage, selector: str, tries: int = 50) -> Any:
    """Click Refresh until ``selector`` shows: the panel reads the store when asked, and the deliverer writes the
    outcome of a POST just after the receiver saw it."""
    from playwright.sync_api import TimeoutError as PlaywrightTimeout  # imported where the browser tests run

    for _ in range(tries):
        person.page.click("#webhooks-refresh")
        try:
            found = person.page.wait_for_selector(selector, timeout=300)
        except PlaywrightTimeout:
            continue
        return found
    raise AssertionError(f"{selector} did not show")


def test_a_room_creator_adds_watches_retries_and_removes_a_webhook(
    site: ChatdProcess, people: Callable[..., ChatPage]
) -> None:
    alice = people("alice").goto(site, "ops").sign_in(PASSWORD, register=True)
    alice.wait_live("ops")
    with Receiver(failing=True) as receiver:
        open_panel(alice)
        alice.page.fill("#webhook-url", receiver.url)
        alice.page.click("#webhook-form button[type=submit]")
        secret = alice.page.wait_for_selector("#webhook-secret:not([hidden])")
        assert "shown only now" in secret.inner_text()
        alice.page.wait_for_selector("#webhook-list li[data-state=active]")

        alice.send("deploy finished")
        receiver.wait_requests(2)  # max_attempts: then it stops
        row = refreshed_until(alice, "#webhook-list li[data-state=failing]")
        assert "HTTP 500" in row.inner_text() and "stopped after repeated failures" in row.inner_text()
        assert "1 failing" in alice.page.inner_text("#webhooks-summary")

        receiver.failing = False
        row.query_selector("text=Retry now").click()
        assert [r.json["event"]["body"] for r in receiver.wait(1)] == ["deploy finished"]
        refreshed_until(alice, '#webhook-list li[data-state=active]:has-text("1 sent, 0 waiting")')

        alice.page.click('#webhook-list button[aria-label^="Remove webhook"]')
        alice.page.wait_for_selector("#webhook-list li", state="detached")

    bob = people("bob").goto(site, "ops").sign_in(PASSWORD, register=True)
    bob.wait_live("ops")
    assert bob.page.is_hidden("#webhooks")  # not the creator, not an admin
