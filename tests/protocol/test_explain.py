"""Validation errors said in words (issue 21.1): every rule a frame or a REST body can break has words, so no
client ever shows a person a regular expression."""

from __future__ import annotations

from typing import Any

import msgspec
import pytest

from chatd.gateway.rest import REQUEST_STRUCTS
from chatd.protocol.explain import PATTERN_RULES, explain
from chatd.protocol.frames import ClientFrame

pytestmark = pytest.mark.fast  # in-process: ./scripts/test --fast runs it


def _patterns(info: Any, seen: set[int]) -> set[str]:
    """Every string pattern reachable from a msgspec type description."""
    if id(info) in seen:
        return set()
    seen.add(id(info))
    found = {info.pattern} if isinstance(info, msgspec.inspect.StrType) and info.pattern else set()
    for child in getattr(info, "types", ()) or ():
        found |= _patterns(child, seen)
    for name in ("item_type", "key_type", "value_type", "cls"):
        child = getattr(info, name, None)
        if isinstance(child, msgspec.inspect.Type):
            found |= _patterns(child, seen)
    for field in getattr(info, "fields", ()) or ():
        found |= _patterns(field.type, seen)
    return found


def test_every_pattern_of_the_wire_contract_has_words() -> None:
    infos = msgspec.inspect.multi_type_info([ClientFrame, *REQUEST_STRUCTS])
    seen: set[int] = set()
    patterns = set().union(*(_patterns(info, seen) for info in infos))
    assert patterns, "found no patterns: the walk is broken"
    assert patterns <= set(PATTERN_RULES), f"no words for {patterns - set(PATTERN_RULES)}"


@pytest.mark.parametrize(
    ("detail", "said"),
    [
        ("Expected `str` of length >= 8 - at `$.password`", ("password", "password must be at least 8 characters")),
        ("Object missing required field `password`", ("password", "password is required")),
        ("Object contains unknown field `colour`", ("colour", "colour is not a field here; check its spelling")),
        ("Expected `int` >= 1 - at `$.reply_to`", ("reply_to", "reply_to must be at least 1")),
        (
            "Expected `bool`, got `int` - at `$.private`",
            ("private", "private must be true or false, not a whole number"),
        ),
        (
            "Expected `array` of length <= 10 - at `$.attachments`",
            ("attachments", "attachments must be at most 10 items"),
        ),
        ("Expected `object`, got `array`", (None, "the body must be an object, not a list")),
    ],
)
def test_msgspec_errors_become_a_field_and_its_rule(detail: str, said: tuple[str | None, str]) -> None:
    assert explain(detail) == said


def test_a_query_parameter_is_named() -> None:
    assert explain("Expected `int`, got `str`", "limit") == ("limit", "limit must be a whole number, not text")
