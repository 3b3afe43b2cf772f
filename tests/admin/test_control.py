"""The signature on the admin CLI's control requests: only the deployment's key, only the signed body, only
for a minute."""

from __future__ import annotations

import time

from chatd.admin.control import MAX_AGE, check_events, control_key, sign, verify

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
    assert check_events([["kick-user", "a"], ["kick-token", "a", "h"], ["member-", "r", "a"]]) is None
    assert check_events([["tell-all"]]) is not None
    assert check_events([["kick-user"]]) is not None
    assert check_events([[]]) is not None
