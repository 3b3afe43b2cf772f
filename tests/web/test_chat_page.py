"""Two people chat through the page chatd serves, in real Chromium."""

from __future__ import annotations

import re
from collections.abc import Callable

import pytest
from chatpage import ChatPage

from harness import ChatdProcess

pytestmark = pytest.mark.browser


def test_two_pages_chat_live_with_sender_time_presence_and_typing(
    server: ChatdProcess, people: Callable[..., ChatPage]
) -> None:
    alice = people("alice").goto(server, "lobby").sign_in()
    bob = people("bob").goto(server, "lobby").sign_in()
    alice.wait_live("lobby")
    bob.wait_live("lobby")

    alice.send("hello bob")
    seen = bob.wait_message("hello bob")
    assert seen.locator(".from").inner_text() == "alice"
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z", seen.locator("time").get_attribute("datetime") or "")
    assert seen.locator("time").inner_text().strip()  # a human-readable time is shown

    # The sender's copy ends up delivered: acked by the server, with the check mark.
    mine = alice.wait_message("hello bob")
    assert mine.get_attribute("data-state") == "delivered"
    assert mine.locator(".status").get_attribute("title") == "Delivered"
    assert alice.page.locator("#pending > li").count() == 0

    bob.send("hi alice")
    alice.wait_bodies(["hello bob", "hi alice"])
    bob.wait_bodies(["hello bob", "hi alice"])

    # Presence: each sees both names in the room's online list.
    alice.page.wait_for_selector('#presence-list li[data-user="bob"]', state="attached")
    bob.page.wait_for_selector('#presence-list li[data-user="alice"]', state="attached")
    assert alice.page.inner_text("#presence-summary") == "2 online"

    # Typing: bob types without sending, alice sees it.
    bob.page.type("#composer-input", "I am thinking")
    alice.page.wait_for_selector("#typing:has-text('bob is typing…')")
    alice.page.click("#presence-summary")
    alice.screenshot("two-pages-alice.png")
    bob.screenshot("two-pages-bob.png")

    # Bob leaves: alice's presence list drops him.
    bob.context.close()
    alice.page.wait_for_selector('#presence-list li[data-user="bob"]', state="detached")


def test_rooms_list_shows_unread_counts_and_rooms_can_be_created_and_joined(
    server: ChatdProcess, people: Callable[..., ChatPage]
) -> None:
    carol = people("carol").goto(server, "cafe").sign_in()
    dave = people("dave").goto(server, "cafe").sign_in()
    carol.wait_live("cafe")

    # Carol creates a room from the form; it opens, and dave sees it under "Other rooms".
    carol.page.fill("#new-room-name", "garden")
    carol.page.click("#create-room button[type=submit]")
    carol.page.wait_for_selector('body[data-room="garden"]')
    carol.wait_live("garden")
    dave.page.reload()  # the room list refreshes on load (and every 30 s); don't wait for the timer
    dave.wait_connected()
    dave.page.wait_for_selector('#browse-list .room-link[data-room="garden"]')
    dave.page.click('#browse-list .room-link[data-room="garden"]')
    dave.page.wait_for_selector('#room-list .room-link[data-room="garden"]')  # joining made him a member
    dave.wait_live("garden")

    # Dave goes back to cafe; carol writes twice in garden: dave's garden shows 2 unread.
    dave.open_room("cafe")
    carol.send("the roses are out")
    carol.send("come and see")
    badge = dave.page.locator('#room-list .room-link[data-room="garden"] .badge')
    badge.wait_for()
    dave.page.wait_for_function(
        "() => document.querySelector('#room-list .room-link[data-room=\"garden\"]').dataset.unread === '2'"
    )
    assert badge.inner_text().startswith("2")
    assert dave.page.title() == "(2) chatd"

    # Opening the room reads them: the badge goes away, and stays away after a reload (kept in localStorage).
    dave.open_room("garden")
    dave.wait_bodies(["the roses are out", "come and see"])
    badge.wait_for(state="detached")
    dave.page.reload()
    dave.wait_live("garden")
    assert dave.page.locator('#room-list .room-link[data-room="garden"] .badge').count() == 0


def test_keyboard_only_send_newline_and_room_switching(server: ChatdProcess, people: Callable[..., ChatPage]) -> None:
    erin = people("erin").goto(server, "kb-one").sign_in()
    erin.wait_live("kb-one")
    page = erin.page
    page.goto(server.http + "/#kb-two")
    erin.wait_live("kb-two")

    # Escape brings focus back to the message box from anywhere; Shift+Enter is a new line, Enter sends.
    page.focus("#new-room-name")
    page.keyboard.press("Escape")
    assert page.evaluate("document.activeElement.id") == "composer-input"
    page.keyboard.type("line one")
    page.keyboard.press("Shift+Enter")
    page.keyboard.type("line two")
    page.keyboard.press("Enter")
    erin.wait_bodies(["line one\nline two"])

    # Alt+Up / Alt+Down move between the user's rooms.
    page.keyboard.press("Alt+ArrowUp")
    page.wait_for_selector('body[data-room="kb-one"]')
    assert page.evaluate("document.activeElement.dataset.room") == "kb-one"
    page.keyboard.press("Alt+ArrowDown")
    page.wait_for_selector('body[data-room="kb-two"]')

    # Every control has an accessible name.
    unnamed = page.evaluate("""() => [...document.querySelectorAll('#app button, #app input, #app textarea')]
        .filter(el => el.offsetParent !== null || el.type === 'checkbox')
        .filter(el => !(el.labels?.length || el.getAttribute('aria-label') || el.textContent.trim()))
        .map(el => el.id || el.outerHTML)""")
    assert unnamed == []


def test_phone_sized_screen_uses_a_room_drawer(server: ChatdProcess, people: Callable[..., ChatPage]) -> None:
    from chatpage import PHONE

    fay = people("fay", viewport=PHONE).goto(server, "pocket").sign_in()
    fay.wait_live("pocket")
    page = fay.page
    fay.send("sent from a phone")
    fay.wait_message("sent from a phone")
    # Nothing overflows sideways, and the room list is hidden behind the "Rooms" button.
    assert page.evaluate("document.documentElement.scrollWidth") <= PHONE["width"]
    assert not page.locator("#sidebar").is_visible()
    fay.screenshot("phone-chat.png")

    page.focus("#rooms-toggle")
    page.keyboard.press("Enter")
    page.wait_for_selector("#sidebar", state="visible")
    assert page.get_attribute("#rooms-toggle", "aria-expanded") == "true"
    fay.screenshot("phone-drawer.png")
    page.keyboard.press("Escape")
    page.wait_for_selector("#sidebar", state="hidden")
    assert page.evaluate("document.activeElement.id") == "composer-input"


def test_a_private_room_the_user_was_not_invited_to_reads_as_missing(
    server: ChatdProcess, people: Callable[..., ChatPage]
) -> None:
    r = server.post("/api/rooms?user=owner", json={"name": "secret", "private": True})
    assert r.status_code == 201, r.text
    server.post("/api/rooms/secret/messages?user=owner", json={"body": "for members only"})
    gus = people("gus").goto(server, "secret").sign_in()
    gus.page.wait_for_selector("#history-start:has-text('You cannot read #secret')")
    # An outsider is told what a missing room's asker is told (issue 20.9): nothing says the room exists.
    said = gus.page.inner_text("#history-start")
    assert "no room 'secret'" in said and "private" not in said
    assert gus.bodies() == []
    assert gus.page.locator('#sidebar .room-link[data-room="secret"]').count() == 0
