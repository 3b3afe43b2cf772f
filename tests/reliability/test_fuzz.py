"""Property-based fuzzing of a live server: random and mutated frames over one real connection.

The test passes only if, for every frame, the server answers an invalid one with an error frame, answers a valid
one without a shape error, keeps the connection working (the ping sent after every frame is answered), and never
logs an unhandled exception. Validity is decided by an oracle written here from the protocol document, not by
the server's own decoder.
"""

from __future__ import annotations

import json
import re
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from websockets.sync.client import connect

from harness import ChatdProcess

MAX_FRAME = 2048
ROOM_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.:@-]*$")
UPLOAD_RE = re.compile(r"^[A-Za-z0-9_-]+$")
SHAPE_ERRORS = {"bad_frame", "unknown_type", "too_large"}
STATE_ERRORS = {"not_member", "not_found", "forbidden"}


def is_room(v: Any) -> bool:
    return type(v) is str and 1 <= len(v) <= 64 and ROOM_RE.match(v) is not None


def is_valid(raw: str | bytes) -> bool:
    """The protocol's rules for a client frame, written independently of chatd's decoder."""
    data = raw.encode() if isinstance(raw, str) else raw
    if len(data) > MAX_FRAME:
        return False
    try:
        frame = json.loads(data)
    except (ValueError, UnicodeDecodeError):
        return False
    if type(frame) is not dict:
        return False
    kind = frame.get("type")
    keys = set(frame) - {"type"}
    if kind in ("ping", "pong"):
        return not keys
    if kind in ("leave", "typing"):
        return keys == {"room"} and is_room(frame["room"])
    if kind == "join":
        since = frame.get("since")
        return (
            keys <= {"room", "since"}
            and "room" in keys
            and is_room(frame["room"])
            and (since is None or (type(since) is int and 0 <= since <= 2**53 - 1))
        )
    if kind == "send":
        if not ({"room", "body", "client_id"} <= keys <= {"room", "body", "client_id", "attachments"}):
            return False
        att = frame.get("attachments", [])
        cid = frame["client_id"]
        return (
            is_room(frame["room"])
            and type(frame["body"]) is str
            and type(cid) is str
            and 1 <= len(cid) <= 64
            and type(att) is list
            and len(att) <= 10
            and all(type(a) is str and 1 <= len(a) <= 64 and UPLOAD_RE.match(a) for a in att)
            and (frame["body"] != "" or len(att) > 0)
        )
    return False


json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**60), 2**60) | st.floats(allow_nan=False) | st.text(max_size=40),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=10), inner, max_size=4),
    max_leaves=12,
)
rooms = st.sampled_from(["fuzz", "fuzz-2", "", "a" * 65, "with space", "ok.room:1@x"]) | st.text(max_size=70)
templates = st.sampled_from(
    [
        {"type": "join", "room": "fuzz"},
        {"type": "join", "room": "fuzz", "since": 0},
        {"type": "leave", "room": "fuzz"},
        {"type": "send", "room": "fuzz", "body": "hello", "client_id": "c1"},
        {"type": "send", "room": "fuzz", "body": "", "client_id": "c2", "attachments": ["abc"]},
        {"type": "typing", "room": "fuzz"},
        {"type": "ping"},
    ]
)


@st.composite
def mutated(draw: st.DrawFn) -> str:
    frame = dict(draw(templates))
    action = draw(st.sampled_from(["replace", "add", "drop", "room", "big", "type"]))
    if action == "replace" and len(frame) > 1:
        key = draw(st.sampled_from(sorted(k for k in frame if k != "type")))
        frame[key] = draw(json_values)
    elif action == "add":
        frame[draw(st.text(max_size=12))] = draw(json_values)
    elif action == "drop" and len(frame) > 1:
        frame.pop(draw(st.sampled_from(sorted(frame))))
    elif action == "room" and "room" in frame:
        frame["room"] = draw(rooms)
    elif action == "big" and "body" in frame:
        frame["body"] = "x" * draw(st.integers(MAX_FRAME - 100, MAX_FRAME + 3000))
    elif action == "type":
        frame["type"] = draw(json_values | st.text(max_size=20))
    return json.dumps(frame, ensure_ascii=draw(st.booleans()))


frames = (
    mutated()
    | json_values.map(json.dumps)
    | st.text(max_size=200)
    | st.binary(max_size=200)
    | mutated().map(lambda s: s[: max(1, len(s) // 2)])  # truncated JSON
)


@pytest.fixture(scope="module")
def fuzz_server(tmp_path_factory: pytest.TempPathFactory):
    proc = ChatdProcess(
        tmp_path_factory.mktemp("fuzz"),
        {"limits": {"max_frame_bytes": MAX_FRAME, "close_frame_bytes": 1024 * 1024, "send_rate": 0}},
    ).start()
    yield proc
    proc.stop()


@pytest.fixture(scope="module")
def conn(fuzz_server: ChatdProcess):
    with connect(fuzz_server.ws + "?user=fuzzer", max_size=None) as ws:
        assert json.loads(ws.recv(timeout=10))["type"] == "hello"
        ws.send(json.dumps({"type": "join", "room": "fuzz"}))
        yield ws


def is_ping(raw: str | bytes) -> bool:
    try:
        return json.loads(raw) == {"type": "ping"}
    except (ValueError, UnicodeDecodeError):
        return False


def exchange(ws: Any, raw: str | bytes) -> list[dict[str, Any]]:
    """Send one frame, then a ping; return everything the server sent up to the answering pong."""
    ws.send(raw)
    ws.send('{"type":"ping"}')
    pongs = 2 if is_ping(raw) else 1  # a fuzzed ping is answered too
    got: list[dict[str, Any]] = []
    while pongs:
        for line in ws.recv(timeout=10).split("\n"):
            frame = json.loads(line)
            if frame["type"] == "pong":
                pongs -= 1
            else:
                got.append(frame)
    return got


@settings(
    max_examples=400, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow]
)
@given(raw=frames)
def test_random_and_mutated_frames_get_errors_and_never_break_the_server(conn: Any, raw: str | bytes) -> None:
    answers = exchange(conn, raw)
    errors = [f for f in answers if f["type"] == "error"]
    if is_valid(raw):
        assert not [e for e in errors if e["code"] in SHAPE_ERRORS], (raw, errors)
        assert all(e["code"] in STATE_ERRORS for e in errors), (raw, errors)
    else:
        assert errors, f"no error for invalid frame {raw!r}"
        assert errors[0]["code"] in SHAPE_ERRORS, (raw, errors)
        assert set(errors[0]) == {"type", "code", "message", "ref"}


def test_fuzzing_left_no_exception_in_the_log(fuzz_server: ChatdProcess, conn: Any) -> None:
    conn.send('{"type":"ping"}')
    assert "pong" in conn.recv(timeout=10)
    log = fuzz_server.log()
    assert "Traceback" not in log and " ERROR " not in log, log[-3000:]
