"""The hostile-client suite: chatd attacked as a hostile but realistic user would, in token mode on its defaults.

Run it alone with ``.venv/bin/python -m pytest -q tests/security``. Every test starts real ``chatd serve``
processes and talks to them over real sockets; nothing is mocked.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from chatd.config import Config
from harness import ChatdProcess


def defaults(**sections: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """Token mode with chatd's own defaults for the limits the test harness turns off, plus ``sections``."""
    cfg = Config()
    base: dict[str, dict[str, Any]] = {
        "auth": {
            "mode": "token",
            "attempts_per_minute": cfg.auth.attempts_per_minute,
            "registrations_per_hour": cfg.auth.registrations_per_hour,
        },
        "rooms": {"create_per_hour": cfg.rooms.create_per_hour},
        "limits": {
            "send_rate": cfg.limits.send_rate,
            "typing_rate": cfg.limits.typing_rate,
            "presence_rate": cfg.limits.presence_rate,
        },
    }
    for section, values in sections.items():
        base.setdefault(section, {}).update(values)
    return base


def hardened(settings: dict[str, dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """``settings`` over :func:`defaults`: what a test sets, on chatd's own limits."""
    return defaults(**settings)


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


_next_ip = itertools.count(1)


def fresh_ip() -> str:
    """Another loopback address (127.0.0.0/8 all reaches the server), for another client with its own per-address
    budgets: the registrations of a test's setup must not spend the budget a test measures."""
    n = next(_next_ip)
    return f"127.1.{n // 250 % 250}.{n % 250 + 1}"


def new_user(server: ChatdProcess, name: str, password: str = "correct horse", ip: str | None = None) -> str:
    """Register ``name`` (from ``ip``, or from a fresh address) and return its token."""
    r = post(server, "/api/auth/register", ip or fresh_ip(), json={"username": name, "password": password})
    assert r.status_code == 201, r.text
    return r.json()["token"]


def post(server: ChatdProcess, path: str, ip: str | None = None, **kw: Any) -> httpx.Response:
    """POST from a chosen loopback source address (127.0.0.0/8 all reaches the server), as another client would."""
    transport = httpx.HTTPTransport(local_address=ip) if ip else None
    with httpx.Client(transport=transport, timeout=10) as c:
        return c.post(server.http + path, **kw)


@pytest.fixture(scope="module")
def hostile(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ChatdProcess]:
    """A chatd in token mode on its defaults, shared by a test module."""
    proc = ChatdProcess(Path(tmp_path_factory.mktemp("hostile")), defaults()).start()
    yield proc
    proc.stop()
