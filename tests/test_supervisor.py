"""The supervisor: a crashed background task is logged, counted, reported down, and restarted."""

from __future__ import annotations

import asyncio
import logging

import pytest

from chatd.supervisor import Supervisor

pytestmark = pytest.mark.fast  # in-process: ./scripts/test --fast runs it


async def _until(cond, timeout: float = 5.0) -> None:
    async with asyncio.timeout(timeout):
        while not cond():
            await asyncio.sleep(0.005)


async def test_a_crashing_task_is_logged_counted_and_restarted(caplog: pytest.LogCaptureFixture) -> None:
    runs = 0
    release = asyncio.Event()

    async def flaky() -> None:
        nonlocal runs
        runs += 1
        if runs <= 2:
            raise KeyError("boom")
        await release.wait()

    sup = Supervisor()
    with caplog.at_level(logging.ERROR, logger="chatd.supervisor"):
        sup.start("flaky", flaky)
        await _until(lambda: runs == 3)
    assert sup.crashes() == {"flaky": 2}
    assert sup.down() == []
    assert sup.running("flaky")
    assert "KeyError" in caplog.text and "flaky" in caplog.text  # the traceback is in the log
    await sup.stop()


async def test_a_required_task_is_down_while_it_waits_to_restart() -> None:
    gate = asyncio.Event()

    async def dies_once() -> None:
        if not gate.is_set():
            gate.set()
            raise RuntimeError("first run fails")
        await asyncio.Event().wait()

    sup = Supervisor()
    sup.start("needed", dies_once)
    sup.start("optional", dies_once, required=False)
    await _until(lambda: sup.crashes()["needed"] + sup.crashes()["optional"] == 1)
    crashed = [name for name, n in sup.crashes().items() if n]
    assert sup.down() == (["needed"] if crashed == ["needed"] else [])
    await _until(lambda: sup.down() == [])
    await sup.stop()


async def test_stop_cancels_and_awaits_every_task() -> None:
    ended: list[str] = []

    async def forever(name: str) -> None:
        try:
            await asyncio.Event().wait()
        finally:
            ended.append(name)

    sup = Supervisor()
    for name in ("a", "b", "c"):
        sup.start(name, lambda name=name: forever(name))
    await asyncio.sleep(0)
    await sup.stop()
    assert sorted(ended) == ["a", "b", "c"]


async def test_a_task_that_finishes_is_not_restarted() -> None:
    runs = 0

    async def once() -> None:
        nonlocal runs
        runs += 1

    sup = Supervisor()
    sup.start("once", once)
    await asyncio.sleep(0.3)
    assert runs == 1 and sup.down() == []
    await sup.stop()


async def test_stop_cancels_again_a_task_that_swallowed_its_cancellation() -> None:
    swallowed = 0

    async def stubborn() -> None:
        nonlocal swallowed
        while True:
            try:
                await asyncio.sleep(10)
            except asyncio.CancelledError:
                if swallowed:
                    raise
                swallowed += 1  # what a client library's blocking read may do (redis-py#2028): the loop goes on

    sup = Supervisor()
    sup.start("stubborn", stubborn)
    await asyncio.sleep(0)
    await asyncio.wait_for(sup.stop(), 3)
    assert swallowed == 1


async def test_stop_gives_up_on_a_task_that_never_stops_and_names_it(caplog: pytest.LogCaptureFixture) -> None:
    let_go = asyncio.Event()
    cancelled = 0

    async def immortal() -> None:
        nonlocal cancelled
        while not let_go.is_set():
            try:
                await asyncio.sleep(10)
            except asyncio.CancelledError:
                cancelled += 1

    sup = Supervisor()
    sup.start("immortal", immortal)
    await asyncio.sleep(0)
    task = next(t for t in asyncio.all_tasks() if t.get_name() == "immortal")
    with caplog.at_level(logging.ERROR, logger="chatd.supervisor"):
        await asyncio.wait_for(sup.stop(timeout=0.3), 3)
    assert "did not stop" in caplog.text and "immortal" in caplog.text and cancelled >= 1
    let_go.set()  # the test's own cleanup: this one does end once asked nicely
    task.cancel()
    await asyncio.wait({task}, timeout=3)
