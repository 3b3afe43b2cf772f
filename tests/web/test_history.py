"""Scrolling back through history loads older pages over REST, in order, without duplicates."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from chatpage import ChatPage

from harness import ChatdProcess

pytestmark = pytest.mark.browser

SEEDED = 120


@pytest.fixture(scope="module")
def seeded_room(server: ChatdProcess) -> str:
    room = "history-room"
    r = server.post("/api/rooms?user=historian", json={"name": room})
    assert r.status_code == 201, r.text
    for i in range(1, SEEDED + 1):
        # The harness server runs with [limits] send_rate = 0, so seeding is not rate limited.
        r = server.post(f"/api/rooms/{room}/messages?user=historian", json={"body": f"m{i:03d}"})
        assert r.status_code == 201, r.text
    return room


def test_scrolling_up_loads_older_messages_until_the_beginning(
    people: Callable[..., ChatPage], server: ChatdProcess, seeded_room: str
) -> None:
    reader = people("reader").goto(server, seeded_room).sign_in()
    reader.wait_live(seeded_room)
    page = reader.page
    page.wait_for_selector("#messages > li")

    # The newest page is shown at the bottom; the oldest messages are not loaded yet.
    first_screen = reader.bodies()
    assert first_screen[-1] == f"m{SEEDED:03d}"
    assert "m001" not in first_screen
    assert first_screen == sorted(first_screen)
    assert (
        page.evaluate(
            "(() => { const l = document.getElementById('log');"
            " return l.scrollHeight - l.scrollTop - l.clientHeight; })()"
        )
        < 5
    )
    reader.screenshot("history-newest.png")

    # Scroll up with the keyboard (the message log is focusable), page after page, until the beginning.
    page.focus("#log")
    loaded = len(first_screen)
    while "m001" not in reader.bodies():
        page.keyboard.press("Home")
        page.wait_for_function("n => document.querySelectorAll('#messages > li').length > n", arg=loaded)
        now = len(reader.bodies())
        assert now > loaded
        loaded = now
    reader.wait_bodies([f"m{i:03d}" for i in range(1, SEEDED + 1)])
    page.wait_for_selector("#history-start:has-text('beginning of #history-room')")
    assert not page.is_visible("#load-older")
    seqs = reader.seqs()
    assert seqs == list(range(1, SEEDED + 1))
    reader.screenshot("history-oldest.png")


def test_older_messages_load_with_the_button_too_and_keep_the_reading_position(
    people: Callable[..., ChatPage], server: ChatdProcess, seeded_room: str
) -> None:
    reader = people("reader2").goto(server, seeded_room).sign_in()
    reader.wait_live(seeded_room)
    page = reader.page
    page.wait_for_selector("#messages > li")
    shown = reader.bodies()
    anchor = "m100"  # a message on screen near the bottom
    assert anchor in shown and "m001" not in shown
    where = (
        "() => { const el = [...document.querySelectorAll('#messages > li')].find("
        f"e => e.querySelector('.body').textContent === '{anchor}');"
        " return el.getBoundingClientRect().top - document.getElementById('log').getBoundingClientRect().top; }"
    )
    before = page.evaluate(where)

    # Click it without scrolling it into view first (a real click would scroll to the top, which loads older
    # messages by itself), so the reading position is still the bottom of the log.
    page.eval_on_selector("#load-older", "b => b.click()")
    page.wait_for_function("n => document.querySelectorAll('#messages > li').length > n", arg=len(shown))
    bodies = reader.bodies()
    assert len(bodies) > len(shown) and bodies == sorted(bodies) and bodies[-len(shown) :] == shown
    # What the reader was looking at did not move: the scroll position absorbs the rows added above.
    assert abs(page.evaluate(where) - before) <= 2
