"""The page under its Content-Security-Policy, and text that tries to reorder itself (issue 9, finding 5)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from chatpage import ChatPage

from harness import ChatdProcess

pytestmark = pytest.mark.browser

RLO = "\u202e"


def csp_violations(page: Any) -> list[str]:
    found: list[str] = []
    page.on("console", lambda m: found.append(m.text) if "Content Security Policy" in m.text else None)
    return found


def test_the_page_works_under_its_csp_and_shows_bidi_controls_instead_of_obeying_them(
    server: ChatdProcess, people: Callable[..., ChatPage]
) -> None:
    room = "bidi-room"
    reader = people("reader")
    violations = csp_violations(reader.page)
    response = reader.page.goto(server.http + f"/#{room}")
    assert "frame-ancestors 'none'" in response.headers["content-security-policy"]
    reader.sign_in()
    reader.wait_live(room)
    as_mallory = {"user": "mallory"}
    assert server.post(f"/api/rooms/{room}/members", params=as_mallory, json={"user": "mallory"}).status_code == 201
    r = server.post(
        f"/api/rooms/{room}/messages", params=as_mallory, json={"body": f"invoice {RLO}fdp.exe and {RLO}more"}
    )
    assert r.status_code == 201, r.text
    shown = "invoice RLOfdp.exe and RLOmore"  # what the page shows: the markers, in the text's real order
    body = reader.wait_message(shown).locator(".body")
    text = body.evaluate("el => el.textContent")
    assert RLO not in text and text.startswith("invoice ") and "fdp.exe" in text
    assert body.locator(".bidi-control").count() == 2
    assert body.locator(".bidi-control").first.inner_text() == "RLO"
    # the avatar's colour comes through CSSOM, which the policy allows (a style attribute would be refused)
    hue = reader.page.locator(".msg .avatar").first.evaluate("el => el.style.getPropertyValue('--hue')")
    assert hue != ""
    assert violations == []


def test_the_page_puts_no_token_in_any_url(token_server: ChatdProcess, people: Callable[..., ChatPage]) -> None:
    """The WebSocket opens with a one-use ticket and images load with a signed media key (issue 9, tokens in
    URLs); the token itself only ever travels in an Authorization header."""
    room = "no-token-urls"
    sockets: list[str] = []
    requests: list[str] = []
    page_setup = lambda page: (  # noqa: E731
        page.on("websocket", lambda ws: sockets.append(ws.url)),
        page.on("request", lambda req: requests.append(req.url)),
    )
    olga = people("olga", setup=page_setup).goto(token_server, room).sign_in(password="correct horse", register=True)
    olga.wait_live(room)
    token = olga.page.evaluate("JSON.parse(localStorage.getItem('chatd.session')).token")
    auth = {"Authorization": f"Bearer {token}"}
    png = bytes.fromhex(
        "89504e470d0a1a0a0000000d4948445200000001000000010806000000"
        "1f15c4890000000d49444154789c6360f8ffff3f0005fe02fea7d6a49f0000000049454e44ae426082"
    )
    upload = token_server.post("/api/uploads", params={"room": room}, content=png, headers=auth).json()
    sent = token_server.post(
        f"/api/rooms/{room}/messages", json={"body": "a picture", "attachments": [upload["id"]]}, headers=auth
    )
    assert sent.status_code == 201, sent.text
    img = olga.wait_message("a picture").locator("img")
    olga.page.wait_for_function("img => img.complete && img.naturalWidth > 0", arg=img.element_handle())
    assert sockets and all("ticket=" in url and token not in url for url in sockets)
    assert "key=" in img.get_attribute("src")
    assert requests and not [url for url in requests if token in url]
