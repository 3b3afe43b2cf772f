"""Day-one features in real Chromium, by two people as new users would try them: react, edit, reply, delete,
safe formatting, read state across two browsers, mentions, direct messages, search and the topic."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from chatpage import ROOT, ChatPage, eventually

from harness import ChatdProcess

pytestmark = pytest.mark.browser


def test_react_edit_reply_and_delete_between_two_people(server: ChatdProcess, people: Callable[..., ChatPage]) -> None:
    room = "d1-team"
    alice = people("d1alice").goto(server, room).sign_in()
    bob = people("d1bob").goto(server, room).sign_in()
    alice.wait_live(room)
    bob.wait_live(room)

    alice.send("we ship on thursdya")
    seen = bob.wait_message("we ship on thursdya")
    # bob reacts with a thumbs up: both see the count and who reacted
    seen.locator(".act-react").click()
    seen.locator('.emoji[aria-label="React with 👍"]').click()
    chip = alice.page.locator('#messages .reaction[data-emoji="👍"]')
    chip.wait_for()
    assert chip.inner_text() == "👍 1" and chip.get_attribute("title") == "d1bob"

    # alice fixes her typo; bob sees the new text marked as edited, and the reaction stays
    mine = alice.wait_message("we ship on thursdya")
    mine.locator(".act-edit").click()
    assert alice.page.input_value("#composer-input") == "we ship on thursdya"
    alice.page.fill("#composer-input", "we ship on Thursday")
    alice.page.press("#composer-input", "Enter")
    edited = bob.wait_message("we ship on Thursday")
    edited.locator(".edited").wait_for()
    assert edited.locator(".reaction").inner_text() == "👍 1"

    # bob answers that message; alice sees his reply quoting it
    edited.locator(".act-reply").click()
    bob.page.wait_for_selector("#compose-mode:not([hidden])")
    bob.send("great, I will tell support")
    reply = alice.wait_message("great, I will tell support")
    quote = reply.locator(".reply-quote")
    assert "we ship on Thursday" in quote.inner_text() and quote.get_attribute("data-reply-to") == "1"

    # alice takes a message back: bob sees it as deleted, with no text left
    alice.send("oops, wrong room")
    bob.wait_message("oops, wrong room")
    alice.wait_message("oops, wrong room").locator(".act-delete").click()
    alice.page.wait_for_selector("#page-dialog[open]:has-text('Delete this message?')")
    alice.page.click("#page-dialog-ok")
    bob.page.wait_for_selector("#messages .msg.deleted .body.deleted")
    assert "oops" not in bob.page.inner_text("#messages")
    bob.screenshot("day-one-edit-react-reply-delete.png")

    # a reload shows the same current state, from history
    bob.page.reload()
    bob.page.wait_for_selector('body[data-ready="true"]')
    bob.wait_message("we ship on Thursday").locator(".edited").wait_for()
    assert bob.page.locator("#messages .msg.deleted").count() == 1
    assert bob.page.locator("#messages .reaction").first.inner_text() == "👍 1"


def test_hostile_bodies_render_as_text_and_markdown_is_a_safe_subset(
    server: ChatdProcess, people: Callable[..., ChatPage]
) -> None:
    room = "d1-safe"
    reader = people("d1reader").goto(server, room).sign_in()
    reader.wait_live(room)
    dialogs: list[str] = []
    reader.page.on("dialog", lambda d: (dialogs.append(d.message), d.dismiss()))
    as_mallory = {"user": "d1mallory"}
    server.post(f"/api/rooms/{room}/members", params=as_mallory, json={"user": "d1mallory"})
    hostile = "<img src=x onerror=alert(1)>"
    for body in (
        hostile,
        "**bold** and _soft_ and `code` and [docs](https://example.com/a) and [bad](javascript:alert(2))",
        "> quoted\n- one\n- two\n```\n<script>alert(3)</script>\n```",
    ):
        assert server.post(f"/api/rooms/{room}/messages", params=as_mallory, json={"body": body}).status_code == 201
    shown = reader.wait_message(hostile)
    assert shown.locator(".body img").count() == 0 and reader.page.locator("#messages img").count() == 0
    formatted = reader.page.locator("#messages > li").nth(1).locator(".body")
    formatted.wait_for()
    assert formatted.locator("strong").inner_text() == "bold"
    assert formatted.locator("em").inner_text() == "soft"
    assert formatted.locator("code").inner_text() == "code"
    links = formatted.locator("a")
    assert links.count() == 1  # the javascript: link stays text
    assert links.get_attribute("href") == "https://example.com/a"
    assert links.get_attribute("rel") == "noopener noreferrer" and links.get_attribute("target") == "_blank"
    assert "[bad](javascript:alert(2))" in formatted.inner_text()
    blocks = reader.page.locator("#messages > li").nth(2).locator(".body")
    blocks.locator("blockquote").wait_for()
    assert blocks.locator("li").all_inner_texts() == ["one", "two"]
    assert blocks.locator("pre code").inner_text() == "<script>alert(3)</script>"
    assert reader.page.locator("#messages script").count() == 0
    reader.page.wait_for_timeout(300)  # give any injected handler its chance to fire
    assert dialogs == []


def test_read_state_follows_the_user_to_a_second_browser_and_survives_reload(
    server: ChatdProcess, people: Callable[..., ChatPage]
) -> None:
    news, other = "d1-news", "d1-elsewhere"
    poster = people("d1poster").goto(server, news).sign_in()
    poster.wait_live(news)
    laptop = people("d1carol").goto(server, news).sign_in()
    laptop.wait_live(news)
    laptop.page.goto(server.http + f"/#{other}")
    laptop.wait_live(other)
    phone = people("d1carol").goto(server, other).sign_in()
    phone.wait_live(other)
    for n in range(3):
        poster.send(f"update {n}")
    poster.wait_bodies([f"update {n}" for n in range(3)])
    badge = '#room-list .room-link[data-room="d1-news"]'
    for device in (laptop, phone):
        device.page.wait_for_function(f"() => document.querySelector('{badge}')?.dataset.unread === '3'")
    # Reading on the laptop clears the phone's count at once (the server tells every connection of the user).
    laptop.open_room(news)
    laptop.wait_bodies([f"update {n}" for n in range(3)])
    phone.page.wait_for_function(f"() => document.querySelector('{badge}')?.dataset.unread === '0'")
    positions = {r["room"]: r for r in server.get("/api/read", params={"user": "d1carol"}).json()["rooms"]}
    assert (positions[news]["seq"], positions[news]["unread"]) == (3, 0)
    # A reload (or a third browser) starts from the server's position, not from local storage.
    fresh = people("d1carol").goto(server, other).sign_in()
    fresh.wait_live(other)
    fresh.page.wait_for_function(f"() => document.querySelector('{badge}')?.dataset.unread === '0'")
    laptop.open_room(other)  # nobody is looking at the news any more, so the next one stays unread everywhere
    poster.send("one more")
    phone.page.wait_for_function(f"() => document.querySelector('{badge}')?.dataset.unread === '1'")
    fresh.page.wait_for_function(f"() => document.querySelector('{badge}')?.dataset.unread === '1'")


def test_mentions_dms_search_and_topic(server: ChatdProcess, people: Callable[..., ChatPage]) -> None:
    room = "d1-plans"
    erin = people("d1erin").goto(server, room).sign_in()
    frank = people("d1frank").goto(server, room).sign_in()
    erin.wait_live(room)
    frank.wait_live(room)
    erin.send("the quarterly review moved to Friday")
    frank.wait_message("the quarterly review moved to Friday")

    # frank looks at another room; erin names him: his mention badge lights up
    frank.page.goto(server.http + "/#d1-frank-desk")
    frank.wait_live("d1-frank-desk")
    erin.send("@d1frank can you book the room?")
    frank.page.wait_for_selector("#mention-badge:not([hidden])")
    assert frank.page.inner_text("#mention-badge") == "@ 1"
    frank.page.click("#mention-badge")
    frank.page.wait_for_selector("#search-results .result:has-text('can you book the room?')")
    frank.page.click("#search-close")

    # erin starts a direct conversation with frank from the People box; it shows under Direct messages for both
    erin.page.fill("#people-name", "d1frank")
    erin.page.click("#people-form button[type=submit]")
    erin.page.wait_for_function("() => document.body.dataset.room?.startsWith('dm:')")
    dm = erin.page.evaluate("document.body.dataset.room")  # named by the server; pages show the person instead
    assert erin.page.inner_text("#room-title") == "d1frank"
    erin.wait_live(dm)
    erin.send("just between us: it is a surprise party")
    dm_link = frank.page.locator(f'#dm-list .room-link[data-room="{dm}"]')
    dm_link.wait_for()
    assert dm_link.locator(".room-name").inner_text() == "d1erin"
    dm_link.click()
    frank.wait_message("just between us: it is a surprise party")

    # frank searches last week's decision and jumps to it
    frank.page.fill("#search-input", "quarterly")
    result = frank.page.locator("#search-results .result").first
    result.wait_for()
    assert result.locator("mark").inner_text().lower() == "quarterly"
    frank.screenshot("day-one-search.png")
    result.click()
    frank.page.wait_for_selector(f'body[data-room="{room}"]')
    frank.wait_message("the quarterly review moved to Friday")

    # the topic, set by erin, shows for frank
    erin.page.goto(server.http + f"/#{room}")
    erin.wait_live(room)
    erin.page.click("#topic-edit")
    erin.page.wait_for_selector("#page-dialog[open]")
    erin.page.fill("#page-dialog-input", "Planning for Q3")
    erin.page.press("#page-dialog-input", "Enter")
    frank.page.wait_for_selector("#room-topic:has-text('Planning for Q3')")
    eventually(frank.page, lambda: frank.page.inner_text("#room-topic") == "Planning for Q3", "the topic")


def test_the_docs_picture_of_day_one_features_can_be_made(
    server: ChatdProcess, people: Callable[..., ChatPage]
) -> None:
    """Writes test-artifacts/web/day-one.png; copy it to docs/img/day-one.png when the page changes."""
    room = "launch"
    gina = people("gina").goto(server, room).sign_in()
    hal = people("hal").goto(server, room).sign_in()
    gina.wait_live(room)
    hal.wait_live(room)
    gina.send("Release checklist for **Thursday**:\n- freeze at noon\n- `chatd bench` run\n- notes in the wiki")
    hal.page.locator("#messages .body strong", has_text="Thursday").wait_for()
    assert hal.page.locator("#messages .body li").count() == 3
    hal.page.locator("#messages .act-react").first.click()
    hal.page.locator('#messages .emoji[aria-label="React with 🎉"]').first.click()
    gina.page.locator("#messages .reaction").first.wait_for()
    gina.page.locator("#messages .act-reply").first.click()
    gina.send("@hal can you take the bench run?")
    hal.page.locator("#messages .reply-quote").first.wait_for()
    path = hal.screenshot("day-one.png")
    assert path.stat().st_size > 10_000
    assert (ROOT / "docs" / "img" / "day-one.png").exists()
