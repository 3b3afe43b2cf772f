"""What protects the server from huge WebSocket messages, established against the real granian.

granian reads a whole WebSocket message before the app sees it, with tungstenite's defaults: frames up to
16 MiB and messages up to 64 MiB. Below that ceiling chatd's own check answers (close 1009 past
``limits.close_frame_bytes``); above it granian drops the connection itself. These tests pin both sides of the
ceiling so a granian upgrade that moves it is noticed. docs/reliability.md explains the consequences.

Which side of the ceiling answered is told by ``chatd_frames_in_total``, not by the close code alone: when granian
gives up it closes its socket with most of the message still unread, so the kernel answers the client with a TCP
reset, and whether the client reads granian's status-less close frame (1005) before that reset arrives (nothing,
``None``) is a race between two packets. What is guaranteed is that chatd never saw the frame and so never sent
its own 1009.
"""

from __future__ import annotations

import pytest
import websockets

from harness import ChatdProcess, Client

MiB = 1024 * 1024


@pytest.fixture(scope="module")
def srv(tmp_path_factory: pytest.TempPathFactory):
    proc = ChatdProcess(tmp_path_factory.mktemp("ceiling")).start()
    yield proc
    proc.stop()


# The close codes a client may see when granian drops the connection: its close frame without a status, or only
# the reset that overtook it.
DROPPED_BY_GRANIAN = (1005, None)


def frames_seen_by_chatd(server: ChatdProcess) -> float:
    return server.metrics()["chatd_frames_in_total"]


async def close_code_after(server: ChatdProcess, size: int, fragment: int | None = None) -> int | None:
    ws = await websockets.connect(server.ws + "?user=huge_sender", max_size=None, ping_interval=None)
    await ws.recv()  # hello
    payload = "x" * size
    try:
        if fragment:
            await ws.send(payload[i : i + fragment] for i in range(0, size, fragment))
        else:
            await ws.send(payload)
        await ws.recv()
    except websockets.ConnectionClosed as e:
        return e.rcvd.code if e.rcvd else None
    raise AssertionError("the server kept the connection open")


async def test_below_granians_frame_ceiling_chatd_closes_with_1009(srv: ChatdProcess) -> None:
    before = frames_seen_by_chatd(srv)
    assert await close_code_after(srv, 15 * MiB) == 1009
    assert frames_seen_by_chatd(srv) == before + 1


async def test_a_frame_above_16_mib_is_dropped_by_granian_before_chatd_sees_it(srv: ChatdProcess) -> None:
    before = frames_seen_by_chatd(srv)
    assert await close_code_after(srv, 17 * MiB) in DROPPED_BY_GRANIAN
    assert frames_seen_by_chatd(srv) == before


async def test_fragmented_messages_reach_chatd_up_to_64_mib(srv: ChatdProcess) -> None:
    before = frames_seen_by_chatd(srv)
    assert await close_code_after(srv, 63 * MiB, fragment=4 * MiB) == 1009
    assert frames_seen_by_chatd(srv) == before + 1


async def test_fragmented_messages_above_64_mib_are_dropped_by_granian(srv: ChatdProcess) -> None:
    before = frames_seen_by_chatd(srv)
    assert await close_code_after(srv, 70 * MiB, fragment=4 * MiB) in DROPPED_BY_GRANIAN
    assert frames_seen_by_chatd(srv) == before


async def test_the_server_keeps_serving_after_huge_messages(srv: ChatdProcess) -> None:
    c = await Client.connect(srv.ws, user="after_huge")
    await c.send({"type": "ping"})
    assert (await c.expect("pong"))["type"] == "pong"
    assert "Traceback" not in srv.log()
    await c.close()
