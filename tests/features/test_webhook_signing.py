"""What a webhook receiver gets and how it checks it (chatd/features/outhooks/signing.py), with no I/O; and the docs'
Python check, run against a signature chatd made."""

from __future__ import annotations

import json
import re
import time
from typing import Any

import pytest

from chatd.errors import ChatError, Err
from chatd.features.outhooks.signing import KINDS, backoff, body_of, check_events, check_url, signature, verify
from chatd.protocol.frames import Edited, Message
from chatd.store.base import Webhook
from harness import ROOT

pytestmark = pytest.mark.fast  # in-process: ./scripts/test --fast runs it

HOOK = Webhook(3, "general", "https://example.com/h", "s3cret", list(KINDS), None, 0, 0, epoch="e1")


def test_the_body_names_the_event_by_room_and_seq_and_carries_the_protocols_frame() -> None:
    body = json.loads(body_of(HOOK, Message("general", 42, "alice", "hi", "c-1", 1000, uid=7)))
    assert body["id"] == {"room": "general", "seq": 42} and body["type"] == "message"
    assert (body["hook"], body["epoch"]) == (3, "e1")
    assert body["event"]["type"] == "message" and body["event"]["from"] == "alice" and body["event"]["uid"] == 7
    edit = json.loads(body_of(HOOK, Edited("general", 43, "alice", 42, "hi!", "c-2", 1001)))
    assert edit["type"] == "edit" and edit["event"]["target"] == 42


def test_a_signature_holds_for_its_secret_body_and_time_only() -> None:
    body, now = b'{"x":1}', 1_700_000_000
    header = signature("s3cret", body, now)
    assert re.fullmatch(r"t=1700000000,v1=[0-9a-f]{64}", header)
    assert verify("s3cret", body, header, now + 10)
    assert not verify("other", body, header, now)
    assert not verify("s3cret", b'{"x":2}', header, now)
    assert not verify("s3cret", body, header, now + 301)  # replayed past the tolerance
    assert not verify("s3cret", body, header.replace("t=1700000000", "t=1700000001"), now)
    assert not verify("s3cret", body, "garbage", now)


def test_retries_wait_twice_as_long_each_time_up_to_the_ceiling() -> None:
    assert [backoff(n, 1.0, 600.0) for n in range(1, 13)] == [1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 600, 600]
    assert backoff(10_000, 1.0, 600.0) == 600


@pytest.mark.parametrize(
    "url",
    ["ftp://example.com/", "example.com", "http://", "http://user:pw@example.com/", "http://a:99999/", "x" * 2001],
)
def test_urls_that_are_not_http_with_a_host_and_no_credentials_are_invalid(url: str) -> None:
    with pytest.raises(ChatError) as e:
        check_url(url)
    assert e.value.err == Err.INVALID


def test_event_kinds_are_checked_and_none_means_all() -> None:
    assert check_events([]) == list(KINDS)
    assert check_events(["reaction", "message", "message", " "]) == ["message", "reaction"]
    with pytest.raises(ChatError) as e:
        check_events(["message", "gossip"])
    assert "gossip" in e.value.message


def test_the_receivers_check_in_the_docs_accepts_our_signature_and_nothing_else() -> None:
    text = (ROOT / "docs" / "integrations.md").read_text()
    section = text[text.index("### Verify the signature") :]
    code = re.search(r"```python\n(.*?)```", section, re.S)
    assert code is not None
    scope: dict[str, Any] = {}
    exec(code.group(1), scope)  # noqa: S102 - the docs' own snippet, run as a receiver would
    check = scope["chatd_signature_ok"]
    body, now = b'{"id": {"room": "general", "seq": 42}}', int(time.time())
    assert check("s3cret", body, signature("s3cret", body, now))
    assert not check("other", body, signature("s3cret", body, now))
    assert not check("s3cret", body + b"\n", signature("s3cret", body, now))
    assert not check("s3cret", body, signature("s3cret", body, now - 3600))  # a replay an hour later
    assert not check("s3cret", body, "v1=abc")
