"""Image attachments: offered only when the server takes uploads, uploaded before sending, shown to the room."""

from __future__ import annotations

import json
import struct
import zlib
from collections.abc import Callable
from typing import Any

import pytest
from chatpage import ChatPage

from harness import ChatdProcess

pytestmark = pytest.mark.browser


def tiny_png(width: int = 24, height: int = 16) -> bytes:
    """A valid PNG of one colour, built by hand so the test needs no image library."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    rows = b"".join(b"\x00" + b"\x3b\x5b\xdb" * width for _ in range(height))
    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(rows)) + chunk(b"IEND", b"")


def test_an_attached_image_is_uploaded_sent_and_shown_to_the_room(
    server: ChatdProcess, people: Callable[..., ChatPage]
) -> None:
    if not server.get("/api/server").json()["uploads"]:
        pytest.skip("this build has no POST /api/uploads")
    room = "pictures"
    jack = people("jack").goto(server, room).sign_in()
    kim = people("kim").goto(server, room).sign_in()
    jack.wait_live(room)
    kim.wait_live(room)
    page = jack.page
    assert page.is_visible("#attach-button")

    page.set_input_files("#attach-input", files=[{"name": "dot.png", "mimeType": "image/png", "buffer": tiny_png()}])
    page.wait_for_selector('#attachment-chips li[data-state="done"]:has-text("dot.png")')
    jack.send("look at this")

    seen = kim.wait_message("look at this")
    img = seen.locator(".attachments img")
    img.wait_for()
    kim.page.wait_for_function("img => img.complete && img.naturalWidth === 24", arg=img.element_handle())
    assert page.locator("#attachment-chips li").count() == 0  # the composer is clear for the next message
    kim.screenshot("attachment-kim.png")


def test_attach_button_is_hidden_when_the_server_takes_no_uploads(
    server: ChatdProcess, people: Callable[..., ChatPage]
) -> None:
    def no_uploads(page: Any) -> None:
        def info(route: Any) -> None:
            body = route.fetch().json()
            route.fulfill(json={**body, "uploads": False})

        page.route("**/api/server", info)

    lena = people("lena", setup=no_uploads).goto(server, "no-uploads").sign_in()
    lena.wait_live("no-uploads")
    assert not lena.page.is_visible("#attach-button")


def test_attach_button_disappears_if_the_upload_route_turns_out_missing(
    server: ChatdProcess, people: Callable[..., ChatPage]
) -> None:
    def uploads_missing(page: Any) -> None:
        def info(route: Any) -> None:
            route.fulfill(json={**route.fetch().json(), "uploads": True})

        page.route("**/api/server", info)
        page.route(
            "**/api/uploads?*",
            lambda route: route.fulfill(
                status=404,
                content_type="application/json",
                body=json.dumps({"code": "not_found", "message": "Not Found", "ref": None}),
            ),
        )

    mia = people("mia", setup=uploads_missing).goto(server, "gone-uploads").sign_in()
    mia.wait_live("gone-uploads")
    page = mia.page
    assert page.is_visible("#attach-button")
    page.set_input_files("#attach-input", files=[{"name": "dot.png", "mimeType": "image/png", "buffer": tiny_png()}])
    page.wait_for_selector("#attach-button", state="hidden")
    page.wait_for_selector("#chat-error:has-text('does not accept attachments')")
    assert page.locator("#attachment-chips li").count() == 0
