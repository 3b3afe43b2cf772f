"""A renamed user, seen in real Chromium: another person's page shows the new name on old messages, reactions and
the direct conversation, and the renamed person's own page follows (issue 18: identity is an id, the name an
attribute that changes)."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from chatpage import ChatPage

from harness import ChatdProcess, run_cli

pytestmark = pytest.mark.browser


def test_after_a_rename_other_pages_show_the_new_name_on_old_messages(
    server: ChatdProcess, people: Callable[..., ChatPage]
) -> None:
    room = "rn-team"
    ann = people("rnann").goto(server, room).sign_in()
    bob = people("rnbob").goto(server, room).sign_in()
    ann.wait_live(room)
    bob.wait_live(room)
    bob.send("written before the rename")
    old = ann.wait_message("written before the rename")
    assert old.locator(".from").inner_text() == "rnbob"
    mine = bob.wait_message("written before the rename")
    mine.locator(".act-react").click()
    mine.locator('.emoji[aria-label="React with 👍"]').click()
    chip = old.locator('.reaction[data-emoji="👍"]')
    chip.wait_for()
    assert chip.get_attribute("title") == "rnbob"
    # ann opens a direct conversation with bob: her list shows it by his name
    ann.page.fill("#people-name", "rnbob")
    ann.page.click("#people-form button[type=submit]")
    ann.page.wait_for_function("() => document.body.dataset.room?.startsWith('dm:')")
    dm = ann.page.evaluate("document.body.dataset.room")
    assert ann.page.inner_text("#room-title") == "rnbob"

    r = run_cli("users", "rename", "rnbob", "rnrobert", "--config", str(server.config_path), "--server", server.http)
    assert r.returncode == 0, r.stderr

    # ann's page: the title of the conversation, and (back in the room) the old message and the reaction
    ann.page.wait_for_function("() => document.getElementById('room-title').textContent === 'rnrobert'")
    link = ann.page.locator(f'#dm-list .room-link[data-room="{dm}"] .room-name')
    assert link.inner_text() == "rnrobert"
    ann.open_room(room)
    old = ann.wait_message("written before the rename")
    assert old.locator(".from").inner_text() == "rnrobert"
    assert old.locator('.reaction[data-emoji="👍"]').get_attribute("title") == "rnrobert"
    # bob's own page follows: his name, and his messages are still his (he can edit them)
    bob.page.wait_for_function("() => document.getElementById('me').textContent === 'rnrobert'")
    assert bob.wait_message("written before the rename").locator(".act-edit").count() == 1
    bob.send("written after the rename")
    assert ann.wait_message("written after the rename").locator(".from").inner_text() == "rnrobert"
