"""Incoming webhooks (issue 24.2): Slack-compatible posts into a room, by real notifiers (curl as CI scripts use it,
Slack's own Python SDK), with the payloads of Slack's published examples; the secret in the path or a header;
chatd's error shape; size and rate limits; Idempotency-Key; hooks made and revoked by a room admin."""

from __future__ import annotations

import json
import subprocess
from collections.abc import Callable
from typing import Any

import httpx
import pytest

from harness import ChatdProcess, register, run_cli

# Slack's published examples (api.slack.com/messaging/webhooks and the legacy incoming-webhook and attachment pages).
HELLO = {"text": "Hello, World!"}
REVIEW = {
    "text": "Danny Torrence left a 1 star review for your property.",
    "blocks": [
        {
            "type": "section",
            "text": {"type": "mrkdwn", "text": "Danny Torrence left the following review for your property:"},
        },
        {
            "type": "section",
            "block_id": "section567",
            "text": {
                "type": "mrkdwn",
                "text": "<https://example.com|Overlook Hotel> \n :star: \n Doors had too many axe holes, guest in room "
                "237 was far too rowdy, whole place felt stuck in the 1920s.",
            },
            "accessory": {
                "type": "image",
                "image_url": "https://is5-ssl.mzstatic.com/image/thumb/Purple3/v4/d3/72/5c/d3725c8f-c642-5d69-1904-"
                "aa36e4297885/source/256x256bb.jpg",
                "alt_text": "Haunted hotel image",
            },
        },
        {"type": "section", "block_id": "section789", "fields": [{"type": "mrkdwn", "text": "*Average Rating*\n1.0"}]},
    ],
}
ATTACHMENTS = {
    "attachments": [
        {
            "fallback": "Plain-text summary of the attachment.",
            "color": "#2eb886",
            "pretext": "Optional text that appears above the attachment block",
            "author_name": "Bobby Tables",
            "title": "Slack API Documentation",
            "title_link": "https://api.slack.com/",
            "text": "Optional text that appears within the attachment",
            "fields": [{"title": "Priority", "value": "High", "short": False}],
            "footer": "Slack API",
            "ts": 123456789,
        }
    ]
}
WEBHOOKBOT = {
    "channel": "#random",
    "username": "webhookbot",
    "text": "This is posted to #random and comes from a bot named webhookbot.",
    "icon_emoji": ":ghost:",
}


def auth(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def hook_url(server: ChatdProcess, room: str, *extra: str) -> str:
    r = run_cli("hooks", "add", room, *extra, "--config", str(server.config_path), "--base-url", server.http)
    assert r.returncode == 0, r.stderr
    return r.stdout.strip()


def curl(*args: str) -> subprocess.CompletedProcess[str]:
    """curl as a CI script calls it: fail on an HTTP error, say nothing else."""
    return subprocess.run(["curl", "-fsS", "--max-time", "10", *args], capture_output=True, text=True, timeout=30)


def history(server: ChatdProcess, token: str, room: str) -> list[dict[str, Any]]:
    r = server.get(f"/api/rooms/{room}/messages", headers=auth(token))
    assert r.status_code == 200, r.text
    messages: list[dict[str, Any]] = r.json()["messages"]
    return messages


@pytest.fixture
def server(make_server: Callable[..., ChatdProcess]) -> ChatdProcess:
    return make_server({"auth": {"mode": "token", "first_user_admin": True}}).start()


def test_slacks_example_payloads_post_through_curl_and_slacks_sdk(server: ChatdProcess) -> None:
    alice = register(server, "alice")
    server.post("/api/rooms", json={"name": "ci"}, headers=auth(alice))
    url = hook_url(server, "ci", "--name", "ci-hook")
    # curl, as Slack's own documentation shows it: JSON, then the legacy form with payload=.
    r = curl("-X", "POST", "-H", "Content-type: application/json", "--data", json.dumps(HELLO), url)
    assert r.returncode == 0, r.stderr
    r = curl("-X", "POST", "--data-urlencode", f"payload={json.dumps(WEBHOOKBOT)}", url)
    assert r.returncode == 0, r.stderr
    for payload in (REVIEW, ATTACHMENTS):
        assert httpx.post(url, json=payload, timeout=10).status_code == 200
    # Slack's Python SDK, as a notifier would use it.
    from slack_sdk.webhook import WebhookClient

    sent = WebhookClient(url).send_dict(
        {"text": "Deploy of <https://example.com/42|build 42> finished", "username": "Jenkins"}
    )
    assert sent.status_code == 200, sent.body
    got = [(m["from"], m["via"], m["bot"], m["body"]) for m in history(server, alice, "ci")]
    assert got == [
        ("ci-hook", "ci-hook", True, "Hello, World!"),
        ("ci-hook", "webhookbot", True, WEBHOOKBOT["text"]),
        ("ci-hook", "ci-hook", True, REVIEW["text"]),
        (
            "ci-hook",
            "ci-hook",
            True,
            "Optional text that appears above the attachment block\nPlain-text summary of the attachment.",
        ),
        ("ci-hook", "Jenkins", True, "Deploy of build 42 (https://example.com/42) finished"),
    ]


def test_the_secret_goes_in_the_path_or_a_header_and_a_wrong_one_finds_nothing(server: ChatdProcess) -> None:
    alice = register(server, "alice")
    server.post("/api/rooms", json={"name": "ops"}, headers=auth(alice))
    url = hook_url(server, "ops")
    base, secret = url.rsplit("/", 1)
    assert httpx.post(base, json={"text": "by header"}, headers={"X-Chatd-Hook-Secret": secret}).status_code == 200
    assert httpx.post(base, json={"text": "by bearer"}, headers=auth(secret)).status_code == 200
    for wrong in (f"{base}/{secret[:-2]}xx", base, f"{server.http}/hooks/0123456789abcdef/{secret}"):
        r = httpx.post(wrong, json={"text": "no"})
        assert (r.status_code, r.json()["code"]) == (404, "not_found"), r.text
    r = httpx.post(url, content=b'{"text": ', headers={"Content-Type": "application/json"})
    assert (r.status_code, r.json()["code"]) == (400, "invalid")
    r = httpx.post(url, json={"username": "nobody"})
    assert (r.status_code, r.json()["code"], r.json()["field"]) == (400, "invalid", "text")
    r = httpx.post(url, content=b"<xml/>", headers={"Content-Type": "application/xml"})
    assert (r.status_code, r.json()["code"]) == (415, "unsupported_type")
    assert [m["body"] for m in history(server, alice, "ops")] == ["by header", "by bearer"]


def test_an_idempotency_key_makes_a_retry_store_one_message(server: ChatdProcess) -> None:
    alice = register(server, "alice")
    server.post("/api/rooms", json={"name": "ops"}, headers=auth(alice))
    url = hook_url(server, "ops")
    key = {"Idempotency-Key": "deploy-2024-05-01T10:00:00Z"}
    first = httpx.post(url, json={"text": "deployed"}, headers=key)
    retry = httpx.post(url, json={"text": "deployed"}, headers=key)
    other = httpx.post(url, json={"text": "deployed"})  # no key: a new message each time
    assert (first.status_code, retry.status_code, other.status_code) == (200, 200, 200)
    assert retry.json() == {**first.json(), "duplicate": True}
    assert [m["seq"] for m in history(server, alice, "ops")] == [first.json()["seq"], other.json()["seq"]]


def test_hooks_are_size_and_rate_limited_with_chatds_error_shape(make_server: Callable[..., ChatdProcess]) -> None:
    server = make_server(
        {"auth": {"mode": "token"}, "limits": {"hook_rate": 0.01, "hook_burst": 3, "hook_body_bytes": 1024}}
    ).start()
    token = register(server, "alice")
    server.post("/api/rooms", json={"name": "ops"}, headers=auth(token))
    url = hook_url(server, "ops")
    r = httpx.post(url, json={"text": "x" * 2000})
    assert (r.status_code, r.json()["code"]) == (413, "too_large"), r.text
    # Chunked, with no length declared: cut off once past the bound.
    chunks = iter([b'{"text": "chunked"}', b" " * 600, b" " * 600])
    r = httpx.post(url, content=chunks, headers={"Content-Type": "application/json"})
    assert (r.status_code, r.json()["code"]) == (413, "too_large"), r.text
    # Of the burst of 3, the declared oversize spent nothing (refused before the hook was read); the chunked one,
    # read after the rate was taken, spent one.
    assert [httpx.post(url, json={"text": t}).status_code for t in ("one", "two")] == [200, 200]
    r = httpx.post(url, json={"text": "over"})
    assert (r.status_code, r.json()["code"]) == (429, "rate_limited") and int(r.headers["Retry-After"]) >= 1
    assert [m["body"] for m in history(server, token, "ops")] == ["one", "two"]


def test_a_room_admin_makes_lists_and_revokes_hooks_over_rest(server: ChatdProcess) -> None:
    register(server, "root")
    alice, bob = register(server, "alice"), register(server, "bob")
    server.post("/api/rooms", json={"name": "team"}, headers=auth(alice))
    httpx.post(f"{server.http}/api/rooms/team/members", json={"user": "bob"}, headers=auth(alice))
    r = server.post("/api/rooms/team/hooks", json={}, headers=auth(bob))
    assert (r.status_code, r.json()["code"]) == (403, "forbidden")
    made = server.post("/api/rooms/team/hooks", json={"name": "gh"}, headers=auth(alice))
    assert made.status_code == 201, made.text
    hook = made.json()
    assert hook["bot"] == "gh" and hook["url"].startswith(f"{server.http}/hooks/{hook['id']}/")
    assert httpx.post(hook["url"], json={"text": "pushed"}).status_code == 200
    listed = server.get("/api/rooms/team/hooks", headers=auth(alice)).json()["hooks"]
    assert [(h["id"], h["bot"], h["url"]) for h in listed] == [(hook["id"], "gh", None)]  # the secret is not kept
    r = httpx.delete(f"{server.http}/api/rooms/team/hooks/{hook['id']}", headers=auth(alice))
    assert r.status_code == 200 and r.json()["revoked"] is True
    assert httpx.post(hook["url"], json={"text": "after"}).status_code == 404
    # What it posted stays, under its name.
    assert [(m["from"], m["body"]) for m in history(server, bob, "team")] == [("gh", "pushed")]
