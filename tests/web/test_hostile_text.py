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
