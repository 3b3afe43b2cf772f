"""msgspec's validation errors, said the way a person filling in a form would understand them.

msgspec describes a refused value in its own terms (``Expected `str` of length >= 8 - at `$.password` ``, or a
regular expression). Clients show error messages to people, so every validation answer, REST or WebSocket, goes
through :func:`explain`: the field by name, then its rule in words (``password must be at least 8 characters``).
No I/O; the wording of a pattern lives next to the pattern in :data:`PATTERN_RULES`.
"""

from __future__ import annotations

import re

from chatd.protocol.frames import (
    BOT_ACTION_PATTERN,
    DISPLAY_PATTERN,
    EMOJI_PATTERN,
    EPOCH_PATTERN,
    NOT_BLANK,
    ROOM_PATTERN,
    TOPIC_PATTERN,
    UPLOAD_ID_PATTERN,
    USER_PATTERN,
    WEBHOOK_URL_PATTERN,
)

PATTERN_RULES: dict[str, str] = {
    USER_PATTERN: "use only letters, digits, '_', '.' and '-', and start with a letter or digit",
    ROOM_PATTERN: "use only letters, digits, '_', '.', ':', '@' and '-', and start with a letter or digit",
    UPLOAD_ID_PATTERN: "use only letters, digits, '_' and '-'",
    EPOCH_PATTERN: "be an epoch as a joined frame gave it: letters, digits, '_' and '-'",
    EMOJI_PATTERN: "be one emoji, without spaces, control characters or text-direction controls",
    NOT_BLANK: "not be blank",
    TOPIC_PATTERN: "not hold text-direction controls (U+202A-202E, U+2066-2069)",
    WEBHOOK_URL_PATTERN: "be an http:// or https:// address with a host name or IPv4 address, an optional port, and "
    "no user name, password or spaces",
    BOT_ACTION_PATTERN: "be one of send, read and react",
    DISPLAY_PATTERN: "not hold control characters or text-direction controls (U+202A-202E, U+2066-2069)",
}

_TYPES = {
    "str": "text",
    "int": "a whole number",
    "float": "a number",
    "bool": "true or false",
    "array": "a list",
    "object": "an object",
    "null": "null",
}

_AT = re.compile(r" - at `\$(?P<path>[^`]*)`$")
_LENGTH = re.compile(r"^Expected `(?P<type>\w+)` of length (?P<op>>=|<=) (?P<n>\d+)$")
_BOUND = re.compile(r"^Expected `(?P<type>int|float)` (?P<op>>=|<=|>|<) (?P<n>-?[\d.e+]+)$")
_REGEX = re.compile(r"^Expected `str` matching regex '(?P<re>.*)'$", re.S)
_WRONG_TYPE = re.compile(r"^Expected `(?P<want>[^`]+)`, got `(?P<got>[^`]+)`$")
_MISSING = re.compile(r"^Object missing required field `(?P<field>[^`]+)`$")
_UNKNOWN = re.compile(r"^Object contains unknown field `(?P<field>[^`]+)`$")
_INVALID_VALUE = re.compile(r"^Invalid (?:enum )?value (?P<value>.+)$")


def _kind(name: str) -> str:
    return " or ".join(_TYPES.get(part.strip(), part.strip()) for part in name.split("|"))


def _unit(type_name: str, n: int) -> str:
    if type_name == "str":
        return "character" if n == 1 else "characters"
    return "item" if n == 1 else "items"


def _rule(what: str) -> str | None:
    """The rule a value broke, as words after "must", or None when msgspec said something else."""
    if m := _LENGTH.match(what):
        n = int(m["n"])
        if m["op"] == ">=" and n == 1 and m["type"] == "str":
            return "not be empty"
        edge = "at least" if m["op"] == ">=" else "at most"
        return f"be {edge} {n} {_unit(m['type'], n)}"
    if m := _BOUND.match(what):
        words = {">=": "at least", "<=": "at most", ">": "more than", "<": "less than"}[m["op"]]
        return f"be {words} {m['n']}"
    if m := _REGEX.match(what):
        return PATTERN_RULES.get(m["re"].replace("\\\\", "\\"), f"match the pattern {m['re']}")
    if m := _WRONG_TYPE.match(what):
        return f"be {_kind(m['want'])}, not {_kind(m['got'])}"
    return None


def explain(detail: str, name: str | None = None) -> tuple[str | None, str]:
    """``(field, message)`` for one msgspec ValidationError text about the value called ``name`` (a query
    parameter, say; None for a body). ``field`` is None when the message is about the whole body."""
    field = name
    if m := _AT.search(detail):
        path = m["path"].lstrip(".")
        field = ".".join(p for p in (name, path) if p) or None
        detail = detail[: m.start()]
    if m := _MISSING.match(detail):
        name = f"{field}.{m['field']}" if field else m["field"]
        return name, f"{name} is required"
    if m := _UNKNOWN.match(detail):
        name = f"{field}.{m['field']}" if field else m["field"]
        return name, f"{name} is not a field here; check its spelling"
    if m := _INVALID_VALUE.match(detail):
        return field, f"{field or 'the value'} may not be {m['value']}"
    rule = _rule(detail)
    if rule is None:
        return field, f"{field}: {detail}" if field else detail
    return field, f"{field or 'the body'} must {rule}"
