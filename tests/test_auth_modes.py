"""Open mode versus token mode, on WebSocket and REST alike."""

from __future__ import annotations

import pytest
import websockets

from harness import ChatdProcess, Client, register


async def test_open_mode_takes_any_name_on_websocket_and_rest(server: ChatdProcess) -> None:
    c = await Client.connect(server.ws, user="anyone_at_all")
    assert c.hello["user"] == "anyone_at_all"
    assert server.get("/api/me?user=anyone_at_all").json()["name"] == "anyone_at_all"
    await c.close()


async def test_open_mode_still_refuses_nameless_and_invalid_names(server: ChatdProcess) -> None:
    for url in (server.ws, server.ws + "?user=bad%20name"):
        ws = await websockets.connect(url)
        with pytest.raises(websockets.ConnectionClosed) as info:
            await ws.recv()
        assert info.value.rcvd.code == 4401
    assert server.get("/api/me").status_code == 401


async def test_token_mode_ignores_user_names_and_takes_tokens_by_header_or_query(token_server: ChatdProcess) -> None:
    token = register(token_server, "tok_user")
    ws = await websockets.connect(token_server.ws + "?user=tok_user")
    with pytest.raises(websockets.ConnectionClosed) as info:
        await ws.recv()
    assert info.value.rcvd.code == 4401
    by_header = await Client.connect(token_server.ws, token=token)
    by_query = await Client.connect(token_server.ws + f"?token={token}")
    assert by_header.hello["user"] == by_query.hello["user"] == "tok_user"
    await by_header.close()
    await by_query.close()
    bad = await websockets.connect(token_server.ws + "?token=chatd_not-a-real-token")
    with pytest.raises(websockets.ConnectionClosed) as info:
        await bad.recv()
    assert info.value.rcvd.code == 4401
