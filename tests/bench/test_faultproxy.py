"""The fault proxy the chaos run and the fault tests put between a node and a service: each mode does what it says,
against a real echo server on loopback."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest

from chatd.bench.faultproxy import FaultProxy


@pytest.fixture
async def proxy() -> AsyncIterator[FaultProxy]:
    async def echo(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        while data := await reader.read(1024):
            writer.write(data)
            await writer.drain()
        writer.close()

    server = await asyncio.start_server(echo, "127.0.0.1", 0)
    p = await FaultProxy("127.0.0.1", server.sockets[0].getsockname()[1]).start()
    yield p
    await p.close()
    server.close()


async def roundtrip(port: int, data: bytes, timeout: float = 2.0) -> bytes:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        writer.write(data)
        return await asyncio.wait_for(reader.readexactly(len(data)), timeout)
    finally:
        writer.close()


async def test_pass_forwards_both_ways(proxy: FaultProxy) -> None:
    assert await roundtrip(proxy.port, b"hello") == b"hello"


async def test_cut_resets_open_connections_and_refuses_new_ones(proxy: FaultProxy) -> None:
    reader, writer = await asyncio.open_connection("127.0.0.1", proxy.port)
    writer.write(b"x")
    assert await reader.readexactly(1) == b"x"
    proxy.set("cut")
    with pytest.raises((ConnectionError, asyncio.IncompleteReadError)):
        await asyncio.wait_for(reader.readexactly(1), 2)
    with pytest.raises((ConnectionError, asyncio.IncompleteReadError)):
        await roundtrip(proxy.port, b"y")
    proxy.set("pass")
    assert await roundtrip(proxy.port, b"z") == b"z"


async def test_blackhole_holds_bytes_and_releases_them_in_order(proxy: FaultProxy) -> None:
    reader, writer = await asyncio.open_connection("127.0.0.1", proxy.port)
    proxy.set("blackhole")
    writer.write(b"one,")
    writer.write(b"two")
    with pytest.raises(TimeoutError):
        await asyncio.wait_for(reader.readexactly(7), 0.5)  # silence, and the connection stays open
    proxy.set("pass")
    assert await asyncio.wait_for(reader.readexactly(7), 2) == b"one,two"
    writer.close()


async def test_delay_forwards_late_but_in_order(proxy: FaultProxy) -> None:
    proxy.set("delay", 0.3)
    reader, writer = await asyncio.open_connection("127.0.0.1", proxy.port)
    writer.write(b"a")
    writer.write(b"b")
    with pytest.raises(TimeoutError):
        await asyncio.wait_for(reader.readexactly(2), 0.2)
    assert await asyncio.wait_for(reader.readexactly(2), 2) == b"ab"
    writer.close()


async def test_an_unknown_mode_is_refused(proxy: FaultProxy) -> None:
    with pytest.raises(ValueError, match="unknown proxy mode"):
        proxy.set("drop")  # type: ignore[arg-type]
