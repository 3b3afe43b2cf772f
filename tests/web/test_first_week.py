"""Issue 21 in real Chromium: a backlog opens at its first unread and is read only as far as it was shown; the page
a team uses all week (a reply's quote for its sender, @you marked, DMs titled by the person, grouped messages with
actions on hover or focus, about twenty to a laptop screen, every upload type offered, in-page dialogs, a session
per tab)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from chatpage import ChatPage, eventually

from harness import ChatdProcess, register

pytestmark = pytest.mark.browser

LAPTOP = {"width": 1280, "height": 800}


def as_user(server: ChatdProcess, user: str, room: str) -> Callable[[str], None]:
    """Post to ``room`` as ``user`` over REST (open mode), joining it first."""
    server.post(f"/api/rooms/{room}/members", params={"user": user}, json={"user": user})

    def post(body: str) -> None:
        r = server.post(f"/api/rooms/{room}/messages", params={"user": user}, json={"body": body})
        assert r.status_code == 201, r.text

    return post


def read_position(server: ChatdProcess, user: str, room: str) -> int:
    rooms = server.get("/api/read", params={"user": user}).json()["rooms"]
    return next(r["seq"] for r in rooms if r["room"] == room)


def on_screen(page: Any) -> list[int]:
    """Seqs of the messages wholly inside the log's visible area."""
    return page.evaluate(
        """() => {
          const log = document.getElementById('log').getBoundingClientRect();
          return [...document.querySelectorAll('#messages > li')].filter((li) => {
            const r = li.getBoundingClientRect();
            return r.top >= log.top - 1 && r.bottom <= log.bottom + 1;
          }).map((li) => Number(li.dataset.seq));
        }"""
    )


def test_a_backlog_opens_at_its_first_unread_and_only_what_was_shown_is_read(
    server: ChatdProcess, people: Callable[..., ChatPage]
) -> None:
    room, elsewhere = "fw-backlog", "fw-elsewhere"
    reader = people("fwreader", viewport=LAPTOP).goto(server, room).sign_in()
    reader.wait_live(room)
    post = as_user(server, "fwposter", room)
    for n in range(3):
        post(f"before {n}")
    reader.wait_bodies([f"before {n}" for n in range(3)])
    eventually(reader.page, lambda: read_position(server, "fwreader", room) == 3, "the 3 seen messages read")

    reader.page.goto(server.http + f"/#{elsewhere}")
    reader.wait_live(elsewhere)
    for n in range(122):
        post(f"backlog {n}")
    reader.page.wait_for_function(
        "() => document.querySelector('#room-list .room-link[data-room=\"fw-backlog\"]')?.dataset.unread === '122'"
    )
    reader.page.reload()  # a new page: the backlog comes from history pages, back to the first unread
    reader.page.wait_for_selector('body[data-ready="true"]')
    reader.open_room(room)

    divider = reader.page.locator("#messages > li .new-divider")
    divider.wait_for()
    first_unread = reader.message("backlog 0")
    assert divider.count() == 1 and first_unread.locator(".new-divider").count() == 1
    shown = on_screen(reader.page)
    assert shown[0] <= 4 <= shown[-1] and shown[-1] < 125, shown  # the first unread (seq 4) is on screen
    # The read position moves over what was on screen, and stops there: 122 - (what one screen holds) stay unread.
    eventually(reader.page, lambda: read_position(server, "fwreader", room) == on_screen(reader.page)[-1], "read")
    reader.page.wait_for_timeout(300)  # give a wrong "read everything" its chance to arrive
    assert read_position(server, "fwreader", room) == shown[-1] < 125
    badge = reader.page.locator('#room-list .room-link[data-room="fw-backlog"]')
    assert 0 < int(badge.get_attribute("data-unread") or "0") == 125 - shown[-1]

    reader.page.focus("#log")
    reader.page.keyboard.press("End")  # reading to the end reads everything
    eventually(reader.page, lambda: read_position(server, "fwreader", room) == 125, "read to the end")
    reader.page.wait_for_function(
        "() => document.querySelector('#room-list .room-link[data-room=\"fw-backlog\"]')?.dataset.unread === '0'"
    )


def test_the_sender_sees_the_quote_of_their_reply_at_once(
    server: ChatdProcess, people: Callable[..., ChatPage]
) -> None:
    room = "fw-replies"
    ann = people("fwann").goto(server, room).sign_in()
    ann.wait_live(room)
    as_user(server, "fwben", room)("shall we ship on Friday?")
    ann.wait_message("shall we ship on Friday?").locator(".act-reply").click()
    ann.send("yes, Friday")
    quote = ann.wait_message("yes, Friday").locator(".reply-quote")
    quote.wait_for()  # from the ack, before any reload
    assert "shall we ship on Friday?" in quote.inner_text()


def test_a_mention_of_you_is_marked(server: ChatdProcess, people: Callable[..., ChatPage]) -> None:
    room = "fw-mentions"
    cleo = people("fwcleo").goto(server, room).sign_in()
    cleo.wait_live(room)
    post = as_user(server, "fwdan", room)
    post("@fwcleo can you look? and `@fwcleo` in code is not one")
    post("@fweve this one is not for cleo")
    for_me = cleo.wait_message("@fwcleo can you look? and @fwcleo in code is not one")
    assert for_me.locator(".mention.me").all_inner_texts() == ["@fwcleo"]
    assert "mentions-me" in (for_me.get_attribute("class") or "")
    other = cleo.wait_message("@fweve this one is not for cleo")
    assert other.locator(".mention").inner_text() == "@fweve" and other.locator(".mention.me").count() == 0
    assert "mentions-me" not in (other.get_attribute("class") or "")


def test_a_dm_is_titled_by_the_other_person_and_offers_no_room_controls(
    server: ChatdProcess, people: Callable[..., ChatPage]
) -> None:
    erin = people("fwerin").goto(server, "fw-lobby").sign_in()
    people("fwfrank").goto(server, "fw-lobby").sign_in()  # frank exists
    erin.page.fill("#people-name", "fwfrank")
    erin.page.click("#people-form button[type=submit]")
    erin.page.wait_for_selector('body[data-room^="dm:"]')
    page = erin.page
    assert page.inner_text("#room-title") == "fwfrank"
    assert page.eval_on_selector("#room-title", "el => getComputedStyle(el, '::before').content") == "none"
    page.wait_for_selector("#history-start:has-text('No messages with fwfrank yet')")
    assert page.get_attribute("#composer-input", "placeholder") == "Message fwfrank"
    assert not page.is_visible("#topic-edit")
    page.click("#members-summary")
    page.wait_for_selector("#member-list li")
    assert not page.is_visible("#invite-form") and page.locator(".remove-member").count() == 0
    assert "dm:" not in page.inner_text("#chat")


def test_a_senders_run_is_grouped_about_twenty_fit_and_actions_show_on_hover_or_focus(
    server: ChatdProcess, people: Callable[..., ChatPage]
) -> None:
    room = "fw-density"
    reader = people("fwreader2", viewport=LAPTOP).goto(server, room).sign_in()
    reader.wait_live(room)
    posters = [as_user(server, "fwgus", room), as_user(server, "fwhal", room)]
    bodies = []
    for n in range(36):  # runs of three from each in turn, as a conversation goes
        bodies.append(f"line {n} of the discussion")
        posters[(n // 3) % 2](bodies[-1])
    reader.wait_bodies(bodies)
    page = reader.page
    runs = page.eval_on_selector_all("#messages > li", "els => els.map(e => e.classList.contains('cont'))")
    assert runs == [n % 3 != 0 for n in range(36)]  # name and avatar once per run
    assert page.locator("#messages > li:not(.cont) .avatar").count() == 12
    assert page.locator("#messages > li.cont .avatar:visible").count() == 0
    assert page.locator("#messages > li.cont .from").first.inner_text() in ("fwgus", "fwhal")  # still read out
    assert len(on_screen(page)) >= 18, on_screen(page)
    reader.screenshot("first-week-density.png")

    last = reader.message(bodies[-1])
    toolbar = last.locator(".msg-actions")
    opacity = "el => getComputedStyle(el).opacity"
    page.mouse.move(5, 5)
    assert toolbar.evaluate(opacity) == "0"
    last.hover()
    assert toolbar.evaluate(opacity) == "1"
    page.mouse.move(5, 5)
    previous = reader.message(bodies[-2])
    previous.locator(".act-react").focus()
    page.keyboard.press("Tab")  # past the closed emoji picker, to the next message's first action
    assert page.evaluate("document.activeElement.classList.contains('act-reply')")
    assert page.evaluate("document.activeElement.closest('li').dataset.seq") == last.get_attribute("data-seq")
    assert toolbar.evaluate(opacity) == "1"
    page.keyboard.press("Enter")
    page.wait_for_selector("#compose-mode:not([hidden])")


def test_the_file_picker_offers_every_type_the_server_takes(
    server: ChatdProcess, people: Callable[..., ChatPage]
) -> None:
    info = server.get("/api/server").json()
    if not info["uploads"]:
        pytest.skip("this build has no POST /api/uploads")
    room = "fw-files"
    ivy = people("fwivy").goto(server, room).sign_in()
    ivy.wait_live(room)
    accept = ivy.page.get_attribute("#attach-input", "accept") or ""
    assert set(accept.split(",")) == set(info["upload_types"]) and "application/pdf" in accept
    pdf = b"%PDF-1.4\n1 0 obj\n<< /Type /Catalog >>\nendobj\ntrailer\n<< /Root 1 0 R >>\n%%EOF\n"
    ivy.page.set_input_files(
        "#attach-input", files=[{"name": "plan.pdf", "mimeType": "application/pdf", "buffer": pdf}]
    )
    ivy.page.wait_for_selector('#attachment-chips li[data-state="done"]:has-text("plan.pdf")')
    ivy.send("the plan, as a PDF")
    ivy.wait_message("the plan, as a PDF").locator(".attachments a").wait_for()


def test_topic_and_delete_ask_in_the_page_not_in_browser_dialogs(
    server: ChatdProcess, people: Callable[..., ChatPage]
) -> None:
    room = "fw-dialogs"
    jo = people("fwjo").goto(server, room).sign_in()
    jo.wait_live(room)
    native: list[str] = []
    jo.page.on("dialog", lambda d: (native.append(d.type), d.dismiss()))
    jo.page.click("#topic-edit")
    jo.page.wait_for_selector("#page-dialog[open]:has-text('Topic of #fw-dialogs')")
    jo.page.keyboard.press("Escape")  # cancel: nothing changes
    jo.page.wait_for_selector("#page-dialog", state="hidden")
    jo.page.click("#topic-edit")
    jo.page.fill("#page-dialog-input", "release week")
    jo.page.press("#page-dialog-input", "Enter")
    jo.page.wait_for_selector("#room-topic:has-text('release week')")
    jo.send("a mistake")
    jo.wait_message("a mistake").locator(".act-delete").click()
    jo.page.wait_for_selector("#page-dialog[open]:has-text('Delete this message?')")
    assert "a mistake" in jo.page.inner_text("#page-dialog-text")
    jo.page.click("#page-dialog-cancel")
    assert jo.page.locator("#messages .msg.deleted").count() == 0
    jo.wait_message("a mistake").locator(".act-delete").click()
    jo.page.click("#page-dialog-ok")
    jo.page.wait_for_selector("#messages .msg.deleted")
    assert native == []


def test_two_tabs_of_one_browser_keep_two_people_signed_in(
    token_server: ChatdProcess, people: Callable[..., ChatPage]
) -> None:
    """README: open two tabs (one browser profile), register two people, and chat; each tab keeps its person."""
    register(token_server, "fwkay", "kay's password")
    register(token_server, "fwlee", "lee's password")
    kay = people("fwkay").goto(token_server, "fw-tabs").sign_in(password="kay's password")
    lee = ChatPage(kay.context.new_page(), "fwlee").goto(token_server, "fw-tabs")
    lee.wait_connected()  # a new tab starts as whoever signed in last: kay
    assert lee.page.inner_text("#me") == "fwkay"
    lee.page.click("#switch-user")  # leaves kay signed in, in her tab
    lee.sign_in(password="lee's password")
    kay.wait_live("fw-tabs")
    lee.wait_live("fw-tabs")
    kay.page.reload()
    kay.wait_connected()
    assert kay.page.inner_text("#me") == "fwkay" and lee.page.inner_text("#me") == "fwlee"
    kay.wait_live("fw-tabs")
    kay.send("hello from kay's tab")
    lee.wait_message("hello from kay's tab")
    lee.page.click("#signout")  # lee signs out; kay stays signed in, even across a reload
    lee.page.wait_for_selector("#signin-form")
    kay.page.reload()
    kay.wait_connected()
    assert kay.page.inner_text("#me") == "fwkay"
