"""The admin page in real Chromium (issue 21, item 3): what ``chatd users``, ``chatd rooms`` and ``chatd invites`` do,
driven through the page and checked through the REST API and sign-ins: disable and enable, promote, reset a
password, archive a room, make invite codes. Someone who is not an admin is told the page is not theirs."""

from __future__ import annotations

from collections.abc import Callable, Iterator

import httpx
import pytest
from chatpage import ChatPage

from harness import ChatdProcess

pytestmark = pytest.mark.browser
PASSWORD = "a long enough password"


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ChatdProcess]:
    settings = {"auth": {"mode": "token", "first_user_admin": True}}
    proc = ChatdProcess(tmp_path_factory.mktemp("admin-web"), settings).start()
    yield proc
    proc.stop()


def login(site: ChatdProcess, name: str, password: str) -> httpx.Response:
    return site.post("/api/auth/login", json={"username": name, "password": password})


def test_an_admin_manages_users_rooms_and_invites_from_the_admin_page(
    site: ChatdProcess, people: Callable[..., ChatPage]
) -> None:
    root = people("admroot").goto(site, "adm-room").sign_in(PASSWORD, register=True)
    root.wait_live("adm-room")
    eve_token = site.post("/api/auth/register", json={"username": "admeve", "password": PASSWORD}).json()["token"]
    eve = {"authorization": f"Bearer {eve_token}"}

    page = root.page
    page.click("#admin-link")
    page.wait_for_selector('body[data-ready="true"]')
    assert page.url.endswith("/admin.html")
    page.fill("#user-q", "admev")
    row = page.locator('#user-rows tr[data-user="admeve"]')
    row.wait_for()
    page.wait_for_function("() => document.querySelectorAll('#user-rows tr').length === 1")
    assert row.locator(".state").inner_text() == "active"

    # disable: asked in the page, then her token stops working
    row.get_by_role("button", name="Disable: admeve").click()
    page.click("#page-dialog-ok")
    page.locator('#user-rows tr[data-user="admeve"] .state', has_text="disabled").wait_for()
    assert httpx.get(site.http + "/api/me", headers=eve).status_code == 401
    page.get_by_role("button", name="Enable: admeve").click()
    page.locator('#user-rows tr[data-user="admeve"] .state', has_text="active").wait_for()
    assert httpx.get(site.http + "/api/me", headers=eve).status_code == 200

    page.get_by_role("button", name="Promote: admeve").click()
    page.locator('#user-rows tr[data-user="admeve"] .role', has_text="admin").wait_for()
    assert httpx.get(site.http + "/api/me", headers=eve).json()["admin"] is True
    page.get_by_role("button", name="Demote: admeve").click()
    page.locator('#user-rows tr[data-user="admeve"] .role', has_text="user").wait_for()
    assert httpx.get(site.http + "/api/me", headers=eve).json()["admin"] is False

    page.get_by_role("button", name="Reset password: admeve").click()
    page.fill("#reset-password", "eve's new password")
    page.click("#reset-submit")
    page.wait_for_selector("#admin-status:has-text('new password for admeve')")
    assert httpx.get(site.http + "/api/me", headers=eve).status_code == 401  # signed out everywhere
    assert login(site, "admeve", PASSWORD).status_code == 401
    assert login(site, "admeve", "eve's new password").status_code == 200
    # the admin's own row offers nothing to lock themselves out with
    page.fill("#user-q", "admroot")
    page.locator('#user-rows tr[data-user="admroot"]').wait_for()
    assert page.locator('#user-rows tr[data-user="admroot"] button').count() == 0

    # rooms: archive, then sends are refused
    room = page.locator('#room-rows tr[data-room="adm-room"]')
    room.get_by_role("button", name="Archive: adm-room").click()
    page.click("#page-dialog-ok")
    room.locator(".state", has_text="archived").wait_for()
    admin_token = page.evaluate("JSON.parse(localStorage.getItem('chatd.session')).token")
    send = httpx.post(
        site.http + "/api/rooms/adm-room/messages",
        json={"body": "anyone?"},
        headers={"authorization": f"Bearer {admin_token}"},
    )
    assert send.json()["code"] == "archived"
    room.get_by_role("button", name="Unarchive: adm-room").click()
    room.locator(".state", has_text="open").wait_for()

    # invites: made, shown once, listed
    page.fill("#invite-count", "2")
    page.click("#invite-create button[type=submit]")
    page.wait_for_function("() => document.querySelectorAll('#new-codes code').length === 2")
    codes = page.eval_on_selector_all("#new-codes code", "cs => cs.map(c => c.textContent)")
    assert all(code.startswith("inv_") for code in codes)
    page.wait_for_function("() => document.querySelectorAll('#invite-rows tr').length === 2")
    assert page.locator("#invite-rows tr .state", has_text="open").count() == 2


def test_the_admin_page_tells_someone_who_is_not_an_admin(site: ChatdProcess, people: Callable[..., ChatPage]) -> None:
    site.post("/api/auth/register", json={"username": "admfirst", "password": PASSWORD})  # not the first user
    pat = people("admpat").goto(site, "adm-other").sign_in(PASSWORD, register=True)
    assert pat.page.is_hidden("#admin-link")
    pat.page.goto(site.http + "/admin.html")
    pat.page.wait_for_selector('body[data-view="not-admin"]')
    assert pat.page.inner_text("#admin-status") == "This page is for admins."
    assert pat.page.is_hidden("#admin")
