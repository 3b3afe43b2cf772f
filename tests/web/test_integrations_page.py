"""Bots and incoming webhooks as a person sees them in real Chromium (issue 24): a bot's message carries a bot
badge; a message a webhook posted shows the name it gave and says "via hook"."""

from __future__ import annotations

from collections.abc import Callable

import httpx
import pytest
from chatpage import ChatPage

from harness import ChatdProcess, run_cli

pytestmark = pytest.mark.browser


def test_a_bots_message_shows_a_bot_badge(server: ChatdProcess, people: Callable[..., ChatPage]) -> None:
    room = "ip-bots"
    ann = people("ipann").goto(server, room).sign_in()
    ann.wait_live(room)
    r = run_cli("bots", "add", "ip-bot", "--room", room, "--action", "send", "--config", str(server.config_path))
    assert r.returncode == 0, r.stderr
    sent = httpx.post(
        f"{server.http}/api/rooms/{room}/messages",
        json={"body": "nightly build passed"},
        headers={"Authorization": f"Bearer {r.stdout.strip()}"},
    )
    assert sent.status_code == 201, sent.text
    ann.send("a person's message")
    bot_msg = ann.wait_message("nightly build passed")
    assert bot_msg.locator(".from").inner_text() == "ip-bot"
    assert bot_msg.locator(".bot-badge").inner_text().lower() == "bot"
    assert ann.wait_message("a person's message").locator(".badge").count() == 0
    # The room's member list (the room's directory) marks it too.
    ann.page.click("#members-summary")
    bot_row = ann.page.locator('#members li[data-user="ip-bot"]')
    bot_row.locator(".bot-badge").wait_for()
    assert ann.page.locator('#members li[data-user="ipann"] .badge').count() == 0


def test_a_webhooks_message_shows_the_name_it_gave_and_says_via_hook(
    server: ChatdProcess, people: Callable[..., ChatPage]
) -> None:
    room = "ip-hooks"
    ann = people("iphann").goto(server, room).sign_in()
    ann.wait_live(room)
    r = run_cli("hooks", "add", room, "--name", "ip-ci", "--base-url", server.http, "--config", str(server.config_path))
    assert r.returncode == 0, r.stderr
    posted = httpx.post(r.stdout.strip(), json={"text": "release 2.0 tagged", "username": "GitHub Actions"})
    assert posted.status_code == 200, posted.text
    item = ann.wait_message("release 2.0 tagged")
    assert item.locator(".from").inner_text() == "GitHub Actions"
    badge = item.locator(".hook-badge")
    assert badge.inner_text().lower() == "via hook" and "ip-ci" in (badge.get_attribute("title") or "")


def test_a_rooms_creator_adds_and_revokes_a_webhook_from_the_page(
    server: ChatdProcess, people: Callable[..., ChatPage]
) -> None:
    room = "ip-page-hooks"
    ann = people("iphpann").goto(server, room).sign_in()
    ann.wait_live(room)
    ann.page.click("#members-summary")
    ann.page.locator("#hooks").wait_for()
    ann.page.click("#hook-add")
    ann.page.locator("#hook-new").wait_for()
    url = ann.page.inner_text("#hook-url")
    assert "/hooks/" in url
    assert httpx.post(url, json={"text": "posted from a pasted URL"}).status_code == 200
    ann.wait_message("posted from a pasted URL").locator(".hook-badge").wait_for()
    ann.page.locator("#hook-list li .revoke-hook").click()
    ann.page.wait_for_function("() => document.querySelectorAll('#hook-list li').length === 0")
    r = httpx.post(url, json={"text": "after revoke"})
    assert (r.status_code, r.json()["code"]) == (404, "not_found")
