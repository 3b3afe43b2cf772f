"""Registering on the page of a server that needs invite codes: the page asks for one and passes it on."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from chatpage import ChatPage

from harness import ChatdProcess, run_cli

pytestmark = pytest.mark.browser


def test_the_page_asks_for_an_invite_code_and_registers_with_it(
    make_server: Callable[..., ChatdProcess], people: Callable[..., ChatPage]
) -> None:
    server = make_server({"auth": {"mode": "token", "registration": "invite"}}).start()
    [code] = run_cli("invites", "create", "--config", str(server.config_path)).stdout.split()
    ivy = people("ivy").goto(server, "welcome")
    page = ivy.page
    page.wait_for_selector("#signin-form")
    assert page.is_visible("#signin-invite")
    page.fill("#signin-name", "ivy")
    page.fill("#signin-password", "ivy's password")
    page.click("#register-button")
    page.wait_for_selector("#signin-error:has-text('invite code')")
    page.fill("#signin-invite", code)
    ivy.sign_in(password="ivy's password", register=True)
    ivy.wait_live("welcome")
    assert page.inner_text("#me") == "ivy"


def test_an_open_server_shows_no_invite_field(
    make_server: Callable[..., ChatdProcess], people: Callable[..., ChatPage]
) -> None:
    server = make_server({"auth": {"mode": "token"}}).start()
    page = people("uma").goto(server).page
    page.wait_for_selector("#signin-form")
    assert not page.is_visible("#signin-invite")
