"""The protocol core turns bytes into frames or one narrow rejection, with no sockets involved."""

from __future__ import annotations

import json

import pytest

from chatd.errors import Close, Err
from chatd.protocol.frames import Join, Ping, Send
from chatd.protocol.limits import TokenBucket, utf8_len_exceeds
from chatd.protocol.session import FrameLimits, FrameRejected, decode_frame

pytestmark = pytest.mark.fast  # in-process: ./scripts/test --fast runs it

LIMITS = FrameLimits(max_frame_bytes=1024, close_frame_bytes=8192)


def reject(data: str) -> FrameRejected:
    with pytest.raises(FrameRejected) as info:
        decode_frame(data, LIMITS)
    return info.value


def test_valid_frames_decode_to_their_types() -> None:
    assert decode_frame('{"type":"join","room":"a","since":3}', LIMITS) == Join("a", 3)
    assert decode_frame('{"type":"ping"}', LIMITS) == Ping()
    send = decode_frame('{"type":"send","room":"a","body":"hi","client_id":"c1"}', LIMITS)
    assert isinstance(send, Send) and send.body == "hi" and send.attachments == []


@pytest.mark.parametrize("data", ["not json", "[1,2]", '"text"', "{", '{"room":"a"}', '{"type":5}'])
def test_non_objects_and_missing_type_are_bad_frames(data: str) -> None:
    assert reject(data).err is Err.BAD_FRAME


def test_unknown_type_is_named() -> None:
    e = reject('{"type":"explode"}')
    assert e.err is Err.UNKNOWN_TYPE and "explode" in e.message


@pytest.mark.parametrize(
    "frame, fragment",
    [
        ({"type": "join"}, "room"),
        ({"type": "join", "room": 5}, "room"),
        ({"type": "join", "room": "x" * 500}, "room"),
        ({"type": "join", "room": "bad name"}, "room"),
        ({"type": "join", "room": "a", "since": -1}, "since"),
        ({"type": "join", "room": "a", "extra": 1}, "extra"),
        ({"type": "send", "room": "a", "body": "x"}, "client_id"),
        ({"type": "send", "room": "a", "body": "", "client_id": "c"}, "empty"),
        ({"type": "send", "room": "a", "body": "x", "client_id": "c" * 65}, "client_id"),
    ],
)
def test_wrong_shapes_are_bad_frames_naming_the_field(frame: dict, fragment: str) -> None:
    e = reject(json.dumps(frame))
    assert e.err is Err.BAD_FRAME and fragment in e.message


def test_bad_send_carries_its_client_id_as_ref() -> None:
    e = reject(json.dumps({"type": "send", "room": 7, "body": "x", "client_id": "mine"}))
    assert e.ref == "mine"


def test_oversized_frame_is_too_large_and_keeps_the_connection() -> None:
    e = reject(json.dumps({"type": "send", "room": "a", "body": "x" * 2000, "client_id": "big"}))
    assert e.err is Err.TOO_LARGE and e.close is None and e.ref == "big"


def test_frame_far_past_the_limit_closes_with_1009() -> None:
    e = reject(json.dumps({"type": "send", "room": "a", "body": "x" * 10_000, "client_id": "huge"}))
    assert e.close is Close.MESSAGE_TOO_BIG


def test_size_is_counted_in_utf8_bytes_not_characters() -> None:
    body = "é" * 600  # 600 characters, 1200 bytes
    assert (
        reject(json.dumps({"type": "send", "room": "a", "body": body, "client_id": "c"}, ensure_ascii=False)).err
        is Err.TOO_LARGE
    )
    assert utf8_len_exceeds("€" * 10, 29) and not utf8_len_exceeds("€" * 10, 30)


def test_token_bucket_allows_a_burst_then_the_rate() -> None:
    bucket = TokenBucket(rate=2, burst=3, now=0.0)
    assert [bucket.take(0.0) for _ in range(4)] == [True, True, True, False]
    assert bucket.retry_after() == pytest.approx(0.5)
    assert bucket.take(0.5)  # one token back after half a second at 2/s
    assert not bucket.take(0.5)
    assert bucket.take(100.0) and bucket.tokens == 2.0  # refills only up to the burst


def test_zero_rate_means_unlimited() -> None:
    bucket = TokenBucket(rate=0, burst=1, now=0.0)
    assert all(bucket.take(0.0) for _ in range(1000))
