"""Round 2, finding 11: text-direction controls cannot ride a reaction or a topic, the short labels shown beside
names. Like names, they refuse the embeddings, overrides and isolates (U+202A-202E, U+2066-2069)."""

from __future__ import annotations

import httpx
import pytest
from security.conftest import bearer, new_user

from harness import ChatdProcess, Client

CONTROLS = ["\u202a", "\u202b", "\u202c", "\u202d", "\u202e", "\u2066", "\u2067", "\u2068", "\u2069"]


@pytest.mark.parametrize("control", CONTROLS)
async def test_reaction_emoji_with_a_bidi_control_are_refused(hostile: ChatdProcess, control: str) -> None:
    token = new_user(hostile, f"reactor{ord(control):x}")
    room = f"bidi-react-{ord(control):x}"
    c = await Client.connect(hostile.ws, token=token)
    await c.join(room)
    seq = (await c.say(room, "react to me", "m1"))["seq"]
    await c.send({"type": "react", "room": room, "seq": seq, "emoji": f"{control}👍", "client_id": "r1"})
    assert (await c.expect("error", skip=("message", "ping", "presence")))["code"] == "bad_frame"
    r = hostile.post(
        f"/api/rooms/{room}/messages/{seq}/reactions", json={"emoji": f"👍{control}"}, headers=bearer(token)
    )
    assert r.status_code == 400 and r.json()["code"] == "invalid", r.text
    await c.send({"type": "react", "room": room, "seq": seq, "emoji": "👨\u200d👩\u200d👧", "client_id": "r2"})
    assert (await c.expect("ack", skip=("message", "reaction", "ping", "presence")))["client_id"] == "r2"
    stored = hostile.get(f"/api/rooms/{room}/messages", headers=bearer(token)).json()["messages"][0]
    assert list(stored["reactions"]) == ["👨\u200d👩\u200d👧"]  # a ZWJ sequence is an emoji; only it was stored
    await c.close()


@pytest.mark.parametrize("control", CONTROLS)
async def test_topics_with_a_bidi_control_are_refused(hostile: ChatdProcess, control: str) -> None:
    token = new_user(hostile, f"topical{ord(control):x}")
    room = f"bidi-topic-{ord(control):x}"
    assert hostile.post("/api/rooms", json={"name": room}, headers=bearer(token)).status_code == 201
    r = httpx.put(
        hostile.http + f"/api/rooms/{room}/topic",
        json={"topic": f"release {control}gnp.exe"},
        headers=bearer(token),
        timeout=10,
    )
    assert r.status_code == 400 and r.json()["code"] == "invalid", r.text
    c = await Client.connect(hostile.ws, token=token)
    await c.join(room)
    await c.send({"type": "topic", "room": room, "topic": f"{control}evil", "client_id": "t1"})
    assert (await c.expect("error", skip=("ping", "presence")))["code"] == "bad_frame"
    await c.send(
        {"type": "topic", "room": room, "topic": "שלום: right-to-left text needs no controls", "client_id": "t2"}
    )
    assert (await c.expect("ack", skip=("topic", "ping", "presence")))["client_id"] == "t2"
    assert hostile.get(f"/api/rooms/{room}", headers=bearer(token)).json()["topic"].startswith("שלום")
    await c.close()
