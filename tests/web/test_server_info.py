"""GET /api/server: what the page reads before it shows a sign-in form."""

from __future__ import annotations

from collections.abc import Callable

from harness import ChatdProcess


def test_open_mode_server_says_open_and_has_no_registration(server: ChatdProcess) -> None:
    r = server.get("/api/server")  # no credentials needed
    assert r.status_code == 200
    info = r.json()
    assert info["auth_mode"] == "open" and info["registration"] is False
    assert info["version"] and info["max_frame_bytes"] == 64 * 1024
    assert isinstance(info["uploads"], bool) and info["upload_max_bytes"] > 0


def test_token_mode_server_reports_whether_registration_is_open(make_server: Callable[..., ChatdProcess]) -> None:
    closed = make_server(
        {"auth": {"mode": "token", "registration": False}, "limits": {"max_frame_bytes": 4096}}
    ).start()
    info = closed.get("/api/server").json()
    assert info["auth_mode"] == "token" and info["registration"] is False and info["max_frame_bytes"] == 4096


def test_uploads_flag_matches_whether_the_upload_route_answers(server: ChatdProcess) -> None:
    info = server.get("/api/server").json()
    r = server.post("/api/uploads?user=probe&name=x.txt", content=b"hello")
    assert info["uploads"] == (r.status_code != 404 and r.status_code != 405), r.text


def test_the_page_and_its_modules_are_served_with_the_right_types(server: ChatdProcess) -> None:
    page = server.get("/")
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    assert '<script type="module" src="js/main.js">' in page.text
    for path in ("/js/main.js", "/js/chat.js", "/js/connection.js", "/js/room.js", "/js/outbox.js"):
        r = server.get(path)
        assert r.status_code == 200 and "javascript" in r.headers["content-type"], path
    assert server.get("/style.css").headers["content-type"].startswith("text/css")
