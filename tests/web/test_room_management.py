"""Rooms managed from the page alone, as a new user would: invite a friend into a private room, see the members,
remove them and leave, with each change pushed to the other page as it happens (no reload, no poll)."""

from __future__ import annotations

from collections.abc import Callable, Iterator

import pytest
from chatpage import ChatPage

from harness import ChatdProcess

pytestmark = pytest.mark.browser

# Far below the page's fallback refresh of the room list (two minutes): seeing a change within this proves the push.
PUSHED_MS = 5000
PASSWORD = "a long enough password"


@pytest.fixture(scope="module")
def token_site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ChatdProcess]:
    proc = ChatdProcess(tmp_path_factory.mktemp("rooms-web"), {"auth": {"mode": "token"}}).start()
    yield proc
    proc.stop()


def create_room(person: ChatPage, name: str, private: bool) -> None:
    page = person.page
    page.fill("#new-room-name", name)
    if private:
        page.check("#new-room-private")
    page.click("#create-room button[type=submit]")
    page.wait_for_selector(f'body[data-room="{name}"]')
    person.wait_live(name)


def open_members(person: ChatPage) -> None:
    if not person.page.eval_on_selector("#members", "d => d.open"):
        person.page.click("#members-summary")


def test_invite_list_remove_and_leave_from_the_page(token_site: ChatdProcess, people: Callable[..., ChatPage]) -> None:
    alice = people("alice").goto(token_site, "lobby").sign_in(PASSWORD, register=True)
    bob = people("bob").goto(token_site, "lobby").sign_in(PASSWORD, register=True)
    bob.wait_live("lobby")

    create_room(alice, "plans", private=True)
    open_members(alice)
    alice.page.wait_for_selector('#member-list li[data-user="alice"]')
    alice.page.fill("#invite-name", "bob")
    alice.page.click("#invite-form button[type=submit]")
    alice.page.wait_for_selector('#member-list li[data-user="bob"]')
    assert alice.page.inner_text("#members-summary") == "2 members"

    # bob's sidebar gains the room at once: pushed, not polled.
    bob.page.wait_for_selector('#room-list .room-link[data-room="plans"]', timeout=PUSHED_MS)
    bob.open_room("plans")
    bob.wait_live("plans")
    bob.send("thanks for the invite")
    alice.wait_message("thanks for the invite")

    alice.page.click('#member-list button[aria-label="Remove bob from #plans"]')
    alice.page.wait_for_selector('#member-list li[data-user="bob"]', state="detached")
    # bob's message box closes with a line saying why, without a reload.
    bob.page.wait_for_selector("#composer-input:disabled", timeout=PUSHED_MS)
    assert bob.page.inner_text("#composer-closed") == "You were removed from #plans by alice."
    assert bob.page.is_disabled("#send-button")
    assert bob.page.locator('#room-list .room-link[data-room="plans"]').count() == 0

    # Invited again: the box opens again on the pushed invitation, and bob can talk.
    alice.page.fill("#invite-name", "bob")
    alice.page.click("#invite-form button[type=submit]")
    bob.page.wait_for_selector("#composer-input:enabled", timeout=PUSHED_MS)
    assert bob.page.is_hidden("#composer-closed")
    bob.wait_live("plans")
    bob.send("back again")
    alice.wait_message("back again")

    # Leaving from the page: bob lands in another room and alice's member list no longer has him.
    open_members(bob)
    bob.page.click("#leave-room")
    bob.page.wait_for_selector('body[data-room="lobby"]')
    assert bob.page.locator('#room-list .room-link[data-room="plans"]').count() == 0
    alice.page.click("#members-summary")  # close and open again: the panel reloads the list
    open_members(alice)
    alice.page.wait_for_selector('#member-list li[data-user="bob"]', state="detached")


def test_a_new_public_room_appears_on_other_pages_at_once(
    token_site: ChatdProcess, people: Callable[..., ChatPage]
) -> None:
    carol = people("carol").goto(token_site, "lobby").sign_in(PASSWORD, register=True)
    dave = people("dave").goto(token_site, "lobby").sign_in(PASSWORD, register=True)
    dave.wait_live("lobby")
    create_room(carol, "news", private=False)
    dave.page.wait_for_selector('#browse-list .room-link[data-room="news"]', timeout=PUSHED_MS)


def test_links_in_messages_are_clickable_and_safe(token_site: ChatdProcess, people: Callable[..., ChatPage]) -> None:
    erin = people("erin").goto(token_site, "links").sign_in(PASSWORD, register=True)
    erin.wait_live("links")
    erin.send("see https://example.com/a?b=1&c=2. or (https://en.wikipedia.org/wiki/Foo_(bar)) not javascript:alert(1)")
    msg = erin.wait_message(
        "see https://example.com/a?b=1&c=2. or (https://en.wikipedia.org/wiki/Foo_(bar)) not javascript:alert(1)"
    )
    links = msg.locator(".body a")
    assert links.count() == 2
    first = links.nth(0)
    assert first.get_attribute("href") == "https://example.com/a?b=1&c=2"
    assert first.inner_text() == "https://example.com/a?b=1&c=2"
    assert first.get_attribute("rel") == "noopener noreferrer"
    assert first.get_attribute("target") == "_blank"
    assert links.nth(1).get_attribute("href") == "https://en.wikipedia.org/wiki/Foo_(bar)"
