"""Helpers for the browser tests: where Chromium is, how to launch it, and ``ChatPage``, a page seen the way a
person sees it (the message list, the room list, the status pill).

A browser download is impossible here, so Playwright launches ``/usr/bin/chromium`` (or ``$CHATD_CHROMIUM``).
Without Playwright or Chromium the browser tests skip, except under CI, where they fail.
"""

from __future__ import annotations

import os
import re
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from harness import ROOT, ChatdProcess

IN_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")
CHROMIUM = os.environ.get("CHATD_CHROMIUM") or shutil.which("chromium") or "/usr/bin/chromium"
ARTIFACTS = ROOT / "test-artifacts" / "web"
# Without the background-networking flags Chromium keeps dialling Google services, which this closed network
# refuses; quic and sync likewise.
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
DESKTOP = {"width": 1100, "height": 700}
PHONE = {"width": 390, "height": 760}
TIMEOUT_MS = 15_000  # a generous ceiling for one step; tests wait for states, never for fixed times


def _unavailable(reason: str) -> None:
    if IN_CI:
        pytest.fail(f"{reason} (CI=true, so this is an error, not a skip)")
    pytest.skip(reason)


def require_browser() -> None:
    """Skip (or, under CI, fail) the calling test unless Playwright and Chromium are both here."""
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        _unavailable("playwright is not installed: pip install -e '.[test]'")
    if not Path(CHROMIUM).exists():
        _unavailable(f"no Chromium at {CHROMIUM}: apt-get install chromium (or set CHATD_CHROMIUM)")


def artifact(name: str) -> Path:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    return ARTIFACTS / name


class ChatPage:
    """One person in one browser context, looking at the chat page."""

    def __init__(self, page: Any, name: str) -> None:
        self.page = page
        self.name = name
        self.errors: list[str] = []
        page.on("pageerror", lambda e: self.errors.append(str(e)))

    @property
    def context(self) -> Any:
        return self.page.context

    # --- signing in ------------------------------------------------------------------------------------------

    def goto(self, server: ChatdProcess, room: str | None = None) -> ChatPage:
        self.page.goto(server.http + "/" + (f"#{room}" if room else ""))
        return self

    def sign_in(self, password: str | None = None, register: bool = False) -> ChatPage:
        page = self.page
        page.fill("#signin-name", self.name)
        if password is not None:
            page.fill("#signin-password", password)
        page.click("#register-button" if register else "#login-button")
        page.wait_for_selector('body[data-ready="true"]')
        self.wait_connected()
        return self

    def wait_connected(self) -> None:
        self.page.wait_for_selector('body[data-conn="open"]')

    def wait_live(self, room: str) -> None:
        """Joined and receiving live messages: a sync point before the other side acts, not an assertion."""
        self.page.wait_for_function("room => window.chatd?.rooms.get(room)?.live === true", arg=room)

    # --- acting ----------------------------------------------------------------------------------------------

    def send(self, text: str) -> None:
        self.page.fill("#composer-input", text)
        self.page.press("#composer-input", "Enter")

    def open_room(self, room: str) -> None:
        self.page.click(f'#sidebar .room-link[data-room="{room}"]')
        self.page.wait_for_selector(f'body[data-room="{room}"]')

    # --- looking ---------------------------------------------------------------------------------------------

    def bodies(self) -> list[str]:
        """The delivered messages on screen, top to bottom."""
        return self.page.eval_on_selector_all(
            "#messages > li", "els => els.map(e => e.querySelector('.body')?.textContent ?? '')"
        )

    def seqs(self) -> list[int]:
        return [int(s) for s in self.page.eval_on_selector_all("#messages > li", "els => els.map(e => e.dataset.seq)")]

    def message(self, text: str) -> Any:
        """The delivered message with exactly this body."""
        return self.page.locator(
            "#messages > li", has=self.page.locator(".body", has_text=re.compile(f"^{re.escape(text)}$"))
        )

    def wait_message(self, text: str) -> Any:
        loc = self.message(text)
        loc.first.wait_for()
        return loc

    def wait_bodies(self, expected: list[str]) -> None:
        """Wait until the delivered messages are exactly ``expected``, in order; fail with what is shown."""
        try:
            self.page.wait_for_function(
                "want => JSON.stringify([...document.querySelectorAll('#messages > li')].map("
                "e => e.querySelector('.body')?.textContent ?? '')) === JSON.stringify(want)",
                arg=expected,
            )
        except Exception:
            assert self.bodies() == expected
            raise

    def screenshot(self, name: str, **kw: Any) -> Path:
        path = artifact(name)
        kw.setdefault("animations", "disabled")  # finish transitions (the phone drawer slides in)
        self.page.screenshot(path=str(path), **kw)
        return path


def eventually(page: Any, check: Callable[[], Any], what: str) -> Any:
    """Poll ``check`` (Python-side state) until it is truthy, letting Playwright deliver events meanwhile."""
    for _ in range(TIMEOUT_MS // 50):
        result = check()
        if result:
            return result
        page.wait_for_timeout(50)
    raise AssertionError(f"timed out waiting for {what}")
