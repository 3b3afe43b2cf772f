"""Accounts people manage themselves, in real Chromium (issue 21, item 3): the Account dialog sets a display name
that other pages show beside the name at once and changes the password (other sessions signed out); the People box
and the invite box suggest people from the user directory, not only names the page has seen."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator

import httpx
import pytest
from chatpage import ChatPage

from harness import ChatdProcess

pytestmark = pytest.mark.browser
PASSWORD = "a long enough password"


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ChatdProcess]:
    proc = ChatdProcess(tmp_path_factory.mktemp("accounts-web"), {"auth": {"mode": "token"}}).start()
    yield proc
    proc.stop()


def options(person: ChatPage, datalist: str) -> list[str]:
    return person.page.eval_on_selector_all(f"#{datalist} option", "os => os.map(o => o.value)")


def wait_options(person: ChatPage, datalist: str, expected: list[str]) -> None:
    """Wait until ``datalist`` offers exactly ``expected``: the search made when the box took focus (for "") may
    answer first, then the search for what was typed replaces it."""
    person.page.wait_for_function(
        "([id, want]) => JSON.stringify([...document.querySelectorAll(`#${id} option`)].map(o => o.value)) === want",
        arg=[datalist, json.dumps(expected, separators=(",", ":"), ensure_ascii=False)],
    )
    assert options(person, datalist) == expected


def test_a_display_name_set_in_the_account_dialog_shows_beside_the_name_on_other_pages(
    site: ChatdProcess, people: Callable[..., ChatPage]
) -> None:
    room = "acc-lobby"
    ann = people("accann").goto(site, room).sign_in(PASSWORD, register=True)
    bob = people("accbob").goto(site, room).sign_in(PASSWORD, register=True)
    ann.wait_live(room)
    bob.wait_live(room)
    bob.send("hello from bob")
    seen = ann.wait_message("hello from bob")
    assert seen.locator(".display-name").count() == 0

    bob.page.click("#account-open")
    bob.page.fill("#display-name", "Bobby Tables")
    bob.page.click("#display-form button[type=submit]")
    bob.page.wait_for_selector("#display-status:has-text('Bobby Tables')")
    bob.page.click("#account-close")
    # ann's page hears of it (a user frame) and redraws bob's message, no reload
    seen.locator(".display-name").wait_for()
    assert seen.locator(".from").inner_text() == "accbob"
    assert seen.locator(".display-name").inner_text() == "Bobby Tables"
    # a page opened later looks it up by id
    cat = people("acccat").goto(site, room).sign_in(PASSWORD, register=True)
    cat.wait_message("hello from bob").locator(".display-name", has_text="Bobby Tables").wait_for()
    # the member list shows it too
    ann.page.click("#members-summary")
    ann.page.locator('#member-list li[data-user="accbob"] .display-name', has_text="Bobby Tables").wait_for()

    # a refused display name says why, in words
    bob.page.click("#account-open")
    bob.page.fill("#display-name", "Bob\u202eevil")
    bob.page.click("#display-form button[type=submit]")
    bob.page.wait_for_selector("#display-status.error:has-text('text-direction')")


def test_the_people_box_and_the_invite_box_search_the_directory(
    site: ChatdProcess, people: Callable[..., ChatPage]
) -> None:
    # dora has never written anywhere ann's page can see: only the directory knows her
    dora = site.post("/api/auth/register", json={"username": "dirdora", "password": PASSWORD}).json()["token"]
    r = httpx.patch(
        site.http + "/api/me", json={"display_name": "Dorothea"}, headers={"authorization": f"Bearer {dora}"}
    )
    assert r.status_code == 200, r.text
    ann = people("dirann").goto(site, "dir-room").sign_in(PASSWORD, register=True)
    ann.wait_live("dir-room")

    ann.page.fill("#people-name", "doro")  # a display-name prefix
    wait_options(ann, "people-known", ["dirdora"])
    assert ann.page.get_attribute("#people-known option", "label") == "dirdora · Dorothea"
    ann.page.fill("#people-name", "dirdora")
    ann.page.click("#people-form button[type=submit]")
    ann.page.wait_for_function("() => document.getElementById('room-title').textContent === 'dirdora'")

    ann.open_room("dir-room")
    ann.page.click("#members-summary")
    ann.page.fill("#invite-name", "DIRD")  # a name prefix, any case
    wait_options(ann, "invite-known", ["dirdora"])


def test_a_password_change_in_the_account_dialog_signs_out_the_other_session_only(
    site: ChatdProcess, people: Callable[..., ChatPage]
) -> None:
    here = people("pwdeve").goto(site, "pw-room").sign_in(PASSWORD, register=True)
    there = people("pwdeve").goto(site, "pw-room").sign_in(PASSWORD)

    here.page.click("#account-open")
    here.page.fill("#old-password", "not my password")
    here.page.fill("#new-password", "a brand new password")
    here.page.click("#password-form button[type=submit]")
    here.page.wait_for_selector("#password-status.error:has-text('current password')")

    here.page.fill("#old-password", PASSWORD)
    here.page.fill("#new-password", "a brand new password")
    here.page.click("#password-form button[type=submit]")
    here.page.wait_for_selector("#password-status:has-text('Password changed')")
    # the other browser is signed out (its socket closed with 4401, its token revoked); this one stays
    there.page.wait_for_selector("#signin:not([hidden])")
    here.page.click("#account-close")
    here.send("still signed in")
    here.wait_message("still signed in")
    assert site.post("/api/auth/login", json={"username": "pwdeve", "password": PASSWORD}).status_code == 401
    login = {"username": "pwdeve", "password": "a brand new password"}
    assert site.post("/api/auth/login", json=login).status_code == 200
