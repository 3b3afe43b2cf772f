"""The helpers every launcher and watcher of chatd processes shares (``chatd.deploy.procs``)."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time

import pytest

from chatd.deploy.procs import child_env, cpu_seconds, free_port, parse_metrics, rss_bytes

PAGE = """\
# HELP chatd_messages_stored_total Messages committed.
# TYPE chatd_messages_stored_total counter
chatd_messages_stored_total 42.0
chatd_process_rss_bytes 1.5e+07 1700000000000
chatd_append_seconds_bucket{le="0.01"} 3.0
chatd_task_crashes_total{task="a task with spaces"} 2.0
chatd_broken not-a-number
"""


@pytest.mark.fast
def test_metrics_are_read_by_name_and_labelled_samples_only_when_asked() -> None:
    plain = parse_metrics(PAGE)
    assert plain == {"chatd_messages_stored_total": 42.0, "chatd_process_rss_bytes": 1.5e7}
    full = parse_metrics(PAGE, labelled=True)
    assert full['chatd_append_seconds_bucket{le="0.01"}'] == 3.0
    assert full['chatd_task_crashes_total{task="a task with spaces"}'] == 2.0
    assert "chatd_broken" not in full


@pytest.mark.fast
def test_a_child_environment_cannot_reconfigure_chatd(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CHATD_STORE_PATH", "/elsewhere.db")
    monkeypatch.setenv("PORT", "1")
    env = child_env({"CHATD_AUTH_MODE": "open"})
    assert "CHATD_STORE_PATH" not in env and "PORT" not in env
    assert env["CHATD_AUTH_MODE"] == "open" and env["PATH"] == os.environ["PATH"]


@pytest.mark.fast
def test_a_free_port_can_be_bound() -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", free_port()))


def test_memory_and_cpu_of_a_live_process_and_none_for_a_gone_one() -> None:
    child = subprocess.Popen([sys.executable, "-c", "import time; x = b'x' * (64 << 20); time.sleep(60)"])
    try:
        # The child's 64 MiB buffer shows once it is allocated (the interpreter alone is well under that).
        deadline = time.monotonic() + 30
        while (rss := rss_bytes(child.pid)) is not None and rss < 64 << 20 and time.monotonic() < deadline:
            time.sleep(0.02)
        assert rss is not None and rss > 64 << 20
        cpu = cpu_seconds(child.pid)
        assert cpu is not None and cpu >= 0
    finally:
        child.kill()
        child.wait()
    assert rss_bytes(child.pid) is None and cpu_seconds(child.pid) is None
