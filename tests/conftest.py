from __future__ import annotations

import os
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))

from harness import ChatdProcess  # noqa: E402

IN_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ChatdProcess]:
    """A chatd in open mode shared by a test module; tests use their own room names."""
    proc = ChatdProcess(tmp_path_factory.mktemp("chatd")).start()
    yield proc
    proc.stop()


@pytest.fixture(scope="module")
def token_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ChatdProcess]:
    """A chatd in token mode shared by a test module."""
    proc = ChatdProcess(tmp_path_factory.mktemp("chatd"), {"auth": {"mode": "token"}}).start()
    yield proc
    proc.stop()


@pytest.fixture
def make_server(tmp_path: Path) -> Iterator:
    """Start servers with custom settings; all are stopped (or killed) at the end of the test."""
    started: list[ChatdProcess] = []

    def make(settings: dict | None = None, env: dict | None = None, sub: str = "srv") -> ChatdProcess:
        proc = ChatdProcess(tmp_path / f"{sub}{len(started)}", settings, env)
        started.append(proc)
        return proc

    yield make
    for proc in started:
        try:
            proc.stop(15)
        except Exception:
            proc.kill()
