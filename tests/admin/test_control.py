"""The signature on the admin CLI's control requests: only the deployment's key, only the signed body, only
for a minute."""

from __future__ import annotations

import time

import pytest

from chatd.signing import MAX_AGE, check_events, control_key, sign, verify

pytestmark = pytest.mark.fast  # in-process: ./scripts/test --fast runs it

KEY = control_key(b"k" * 32)


def test_a_signed_body_verifies_and_any_change_or_other_key_does_not() -> None:
    body = b'{"events":[["kick-user","bob"]]}'
    header = sign(KEY, body)
    assert verify(KEY, body, header)
    assert not verify(KEY, body.replace(b"bob", b"eve"), header)
    assert not verify(control_key(b"x" * 32), body, header)
    assert not verify(KEY, body, "") and not verify(KEY, body, "nonsense")


def test_an_old_signature_is_refused() -> None:
    body = b"{}"
    now = time.time()
    assert verify(KEY, body, sign(KEY, body, now - MAX_AGE + 5), now)
    assert not verify(KEY, body, sign(KEY, body, now - MAX_AGE - 5), now)


def test_only_known_events_of_the_right_shape_pass() -> None:
    known = [
        ["kick-user", "7"],
        ["kick-token", "7", "h"],
        ["member-", "r", "7"],
        ["room-deleted", "r", "private", "7", "8"],
        ["room-archived", "r"],
        ["user-", "7"],
        ["user~", "7", "robert", "bob"],
    ]
    assert check_events(known) is None
    # Users are named by id: a name is refused, since a name can belong to someone else tomorrow.
    for by_name in (
        ["kick-user", "bob"],
        ["member-", "r", "bob"],
        ["user-", "bob"],
        ["room-deleted", "r", "p", "x", "bob"],
    ):
        assert "by id" in (check_events([by_name]) or "")
    assert check_events([["tell-all"]]) is not None
    assert check_events([["kick-user"]]) is not None
    assert check_events([[]]) is not None
