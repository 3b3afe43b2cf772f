"""An incoming webhook revoked through one node is refused at once by every node (issue 24.2): each hook request
reads the hook from the store, so no node can hold on to a revoked one. Over Redis and RabbitMQ, with PostgreSQL."""

from __future__ import annotations

import httpx

from clients import MakeCluster
from harness import run_cli

TOKENS = {"auth": {"mode": "token", "first_user_admin": True, "attempts_per_minute": 0, "registrations_per_hour": 0}}


def test_a_hook_revoked_on_one_node_is_refused_by_the_other_at_once(cluster: MakeCluster) -> None:
    c = cluster(2, settings=TOKENS)
    a, b = c.nodes
    r = httpx.post(f"{a.http}/api/auth/register", json={"username": "alice", "password": "long enough pw"})
    token = {"Authorization": f"Bearer {r.json()['token']}"}
    assert httpx.post(f"{a.http}/api/rooms", json={"name": "ops"}, headers=token).status_code == 201
    made = httpx.post(f"{a.http}/api/rooms/ops/hooks", json={"name": "ci"}, headers=token).json()
    path = made["url"].removeprefix(a.http)
    key = {"Idempotency-Key": "build-7"}
    # Both nodes take it, and a retry through the other node is still one message.
    first = httpx.post(a.http + path, json={"text": "build 7 green"}, headers=key)
    again = httpx.post(b.http + path, json={"text": "build 7 green"}, headers=key)
    assert (first.status_code, again.status_code) == (200, 200)
    assert again.json() == {**first.json(), "duplicate": True}
    assert httpx.post(b.http + path, json={"text": "from b"}).status_code == 200
    # Revoked through node A's API, then through the CLI for a second hook: refused at once on both nodes.
    assert httpx.delete(f"{a.http}/api/rooms/ops/hooks/{made['id']}", headers=token).json()["revoked"] is True
    for node in (b, a):
        r = httpx.post(node.http + path, json={"text": "after revoke"})
        assert (r.status_code, r.json()["code"]) == (404, "not_found"), r.text
    cli = run_cli("hooks", "add", "ops", "--config", str(a.config_path), "--base-url", b.http, env=a.env)
    assert cli.returncode == 0, cli.stderr
    second = cli.stdout.strip()
    assert httpx.post(second, json={"text": "second hook"}).status_code == 200
    hook_id = second.rsplit("/", 2)[1]
    revoked = run_cli("hooks", "revoke", hook_id, "--config", str(b.config_path), env=b.env)
    assert revoked.returncode == 0, revoked.stderr
    for node in (a, b):
        assert httpx.post(second.replace(b.http, node.http), json={"text": "late"}).status_code == 404
    history = httpx.get(f"{b.http}/api/rooms/ops/messages", headers=token).json()["messages"]
    assert [m["body"] for m in history] == ["build 7 green", "from b", "second hook"]
