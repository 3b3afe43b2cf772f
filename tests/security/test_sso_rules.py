"""Single sign-on rules that need no provider: the names a first sign-in tries, the allowed-domains rule, and the
signed cookies' integrity (chatd.accounts.sso). The flow itself is tested end to end in tests/web/test_sso.py."""

from __future__ import annotations

from typing import Any

import pytest

from chatd.accounts.sso import Signer, account_names, email_domain_allowed, s256
from chatd.accounts.users import valid_username
from chatd.protocol.frames import USER_MAX


@pytest.mark.parametrize(
    "claims, first",
    [
        ({"preferred_username": "ada"}, "ada"),
        ({"preferred_username": "Zoë O'Brien"}, "Zo-O-Brien"),
        ({"preferred_username": ".hidden"}, "hidden"),
        ({"preferred_username": "___"}, "user"),
        ({"email": "grace.hopper@example.com"}, "grace.hopper"),
        ({"name": "李雷"}, "user"),
        ({}, "user"),
        ({"preferred_username": "x" * 80}, "x" * USER_MAX),
    ],
)
def test_a_first_sign_in_tries_valid_names_starting_from_the_providers(claims: dict[str, Any], first: str) -> None:
    names = account_names(claims)
    assert names[0] == first
    assert all(valid_username(n) for n in names), names
    assert len(set(names)) == len(names)  # every try is a different name
    assert names[1].endswith("-2") and len(names[-1]) <= USER_MAX


def test_allowed_domains_need_a_verified_address_at_exactly_a_listed_domain() -> None:
    allowed = ["example.com"]
    assert email_domain_allowed({"email": "x@evil.test"}, []) is None  # no rule: anyone
    assert email_domain_allowed({"email": "a@Example.COM", "email_verified": True}, allowed) is None
    for claims in (
        {"email": "a@example.com"},  # not said to be verified
        {"email": "a@example.com", "email_verified": "true"},  # a string is not the boolean the spec gives
        {"email": "a@mail.example.com", "email_verified": True},  # subdomains are not included
        {"email": "a@example.com.evil.test", "email_verified": True},
        {"email_verified": True},
        {"email": "no-at-sign", "email_verified": True},
    ):
        assert email_domain_allowed(claims, allowed) is not None, claims


def test_signed_cookies_open_only_unchanged_and_only_for_their_purpose() -> None:
    key = b"k" * 32
    flow = Signer(key, "flow")
    signed = flow.sign(b'["state","nonce","verifier",1]')
    assert flow.open(signed) == b'["state","nonce","verifier",1]'
    text, _, sig = signed.partition(".")
    assert flow.open(text[:-2] + "xx." + sig) is None
    assert flow.open(text) is None
    assert Signer(key, "handoff").open(signed) is None  # a flow cookie is no handoff
    assert Signer(b"o" * 32, "flow").open(signed) is None  # another deployment's key


def test_the_pkce_challenge_is_rfc_7636s_s256() -> None:
    # RFC 7636, appendix B.
    assert s256("dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk") == "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM"
