"""Signing in: register and log in (token mode) or just a name (open mode); sessions survive reloads and end
cleanly when the token is revoked."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from chatpage import ChatPage

from harness import ChatdProcess

pytestmark = pytest.mark.browser


def test_token_mode_register_sign_out_and_log_in_again(
    token_server: ChatdProcess, people: Callable[..., ChatPage]
) -> None:
    gina = people("gina").goto(token_server, "welcome")
    page = gina.page
    page.wait_for_selector("#signin-form")
    assert page.inner_text("#signin-title") == "Sign in to chatd"
    assert page.is_visible("#signin-password") and page.is_visible("#register-button")
    gina.screenshot("signin-token-mode.png")

    gina.sign_in(password="correct horse", register=True)
    gina.wait_live("welcome")
    gina.send("registered and in")
    gina.wait_message("registered and in")
    assert page.inner_text("#me") == "gina"

    # The session survives a reload (token kept in localStorage, checked with GET /api/me).
    page.reload()
    gina.wait_connected()
    gina.wait_bodies(["registered and in"])

    page.click("#signout")
    page.wait_for_selector("#signin-form")
    page.fill("#signin-name", "gina")
    page.fill("#signin-password", "wrong horse")
    page.click("#login-button")
    page.wait_for_selector("#signin-error:has-text('Wrong name or password')")

    page.fill("#signin-name", "gina")
    page.fill("#signin-password", "wrong horse")
    page.click("#register-button")
    page.wait_for_selector("#signin-error:has-text('That name is taken')")

    gina.sign_in(password="correct horse")
    gina.wait_bodies(["registered and in"])


def test_the_form_shows_the_rules_first_and_marks_the_field_the_server_refused(
    token_server: ChatdProcess, people: Callable[..., ChatPage]
) -> None:
    """Issue 21.1: the rules are on screen before submitting; a refusal is in words and marks its field."""
    page = people("jules").goto(token_server).page
    page.wait_for_selector("#signin-form")
    assert "letters, digits" in page.inner_text("#signin-name-rules")
    assert "at least 8 characters" in page.inner_text("#signin-password-rules")
    assert page.get_attribute("#signin-password", "aria-describedby") == "signin-password-rules"
    page.fill("#signin-name", "jules")
    page.fill("#signin-password", "short")
    page.click("#register-button")
    page.wait_for_selector("#signin-error:has-text('Password must be at least 8 characters.')")
    assert page.get_attribute("#signin-password", "aria-invalid") == "true"
    assert page.get_attribute("#signin-name", "aria-invalid") is None
    assert "bad_frame" not in page.inner_text("#signin") and "Expected" not in page.inner_text("#signin")
    page.fill("#signin-password", "long enough now")  # typing clears the mark
    assert page.get_attribute("#signin-password", "aria-invalid") is None
    page.fill("#signin-name", "no spaces")
    page.click("#register-button")
    page.wait_for_selector("#signin-error:has-text('Names are 1-32')")
    assert page.get_attribute("#signin-name", "aria-invalid") == "true"


def test_a_revoked_token_closes_the_socket_with_4401_and_returns_to_sign_in(
    token_server: ChatdProcess, people: Callable[..., ChatPage]
) -> None:
    hank = people("hank").goto(token_server, "welcome").sign_in(password="correct horse", register=True)
    hank.wait_live("welcome")
    token = hank.page.evaluate("JSON.parse(localStorage.getItem('chatd.session')).token")
    r = token_server.post("/api/auth/logout", headers={"Authorization": f"Bearer {token}"})
    assert r.status_code == 200 and r.json() == {"revoked": True}
    hank.page.wait_for_selector("#signin-form")
    assert "session has ended" in hank.page.inner_text("#signin-error")


def test_open_mode_asks_only_for_a_valid_name(server: ChatdProcess, people: Callable[..., ChatPage]) -> None:
    ivy = people("ivy").goto(server)
    page = ivy.page
    page.wait_for_selector("#signin-form")
    assert page.inner_text("#signin-title") == "Join the chat"
    assert not page.is_visible("#signin-password") and not page.is_visible("#register-button")
    page.fill("#signin-name", "no spaces allowed")
    page.click("#login-button")
    page.wait_for_selector("#signin-error:has-text('Names are 1-32')")
    ivy.sign_in()
    assert page.inner_text("#room-title") == "No room open"
    assert page.is_disabled("#composer-input")
