"""Regenerate the README screenshot: a real chatd, a seeded conversation, and Chromium looking at it.

    .venv/bin/python tests/web/make_screenshot.py            # writes docs/img/chat.png
    .venv/bin/python tests/web/make_screenshot.py out.png    # somewhere else

tests/web/test_screenshot.py runs it too (into test-artifacts/), so the script cannot silently rot.
"""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path[:0] = [str(HERE.parent), str(HERE)]

from harness import ROOT, ChatdProcess  # noqa: E402

DEFAULT_OUT = ROOT / "docs" / "img" / "chat.png"
VIEWPORT = {"width": 1200, "height": 720}

CONVERSATION = [
    ("carol", "Morning! Is the new build up?"),
    ("bob", "Deployed at nine. I restarted the server twice during the standup."),
    ("bob", "Nobody lost a message: every page reconnected and caught up on what it missed."),
    ("alice", "I was on the train through a tunnel and my page just filled in the gap when I came back."),
    ("carol", "Scroll-back through last week works too, it pages in older history as you go."),
    ("alice", "Next up: the bench numbers for the README."),
]
OTHER_ROOMS = {
    "random": [("carol", "Lunch at noon?"), ("bob", "In!"), ("carol", "Booked for three.")],
    "ops": [("bob", "Disk on node-2 is at 61%, fine for now.")],
}


def make_screenshot(out: Path) -> Path:
    from playwright.sync_api import sync_playwright

    sys.path.insert(0, str(HERE))
    from chatpage import CHROMIUM, CHROMIUM_ARGS

    with tempfile.TemporaryDirectory() as tmp:
        server = ChatdProcess(Path(tmp)).start()
        try:

            def say(room: str, user: str, body: str) -> None:
                r = server.post(f"/api/rooms/{room}/messages?user={user}", json={"body": body})
                assert r.status_code == 201, r.text

            for room in ("general", "random", "ops"):
                assert server.post("/api/rooms?user=bob", json={"name": room}).status_code == 201
                for user in ("alice", "carol"):
                    r = server.post(f"/api/rooms/{room}/members?user=bob", json={"user": user})
                    if r.status_code == 404:  # the user does not exist until first seen
                        server.get(f"/api/me?user={user}")
                        r = server.post(f"/api/rooms/{room}/members?user=bob", json={"user": user})
                    assert r.status_code == 201, r.text
            for user, body in CONVERSATION:
                say("general", user, body)

            with sync_playwright() as pw:
                browser = pw.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)
                pages = {}
                for user in ("alice", "bob", "carol"):
                    context = browser.new_context(viewport=VIEWPORT, color_scheme="light")
                    page = context.new_page()
                    page.goto(f"{server.http}/#general")
                    page.fill("#signin-name", user)
                    page.click("#login-button")
                    page.wait_for_function("() => window.chatd?.rooms.get('general')?.live === true")
                    pages[user] = page
                alice = pages["alice"]
                # Alice has read general; the other rooms get news she has not seen yet.
                for room, lines in OTHER_ROOMS.items():
                    for user, body in lines:
                        say(room, user, body)
                alice.wait_for_selector('#room-list .room-link[data-room="random"] .badge')
                alice.wait_for_selector('#room-list .room-link[data-room="ops"] .badge')
                pages["bob"].type("#composer-input", "Sounds good")
                alice.wait_for_selector("#typing:has-text('bob is typing')")
                alice.fill("#composer-input", "I'll draft the bench section today")
                alice.click("#presence-summary")
                alice.wait_for_selector('#presence-list li[data-user="carol"]')
                out.parent.mkdir(parents=True, exist_ok=True)
                alice.screenshot(path=str(out), animations="disabled")
                browser.close()
        finally:
            server.stop()
    return out


if __name__ == "__main__":
    print(make_screenshot(Path(sys.argv[1]) if len(sys.argv) > 1 else DEFAULT_OUT))
