"""``chatd chat``: a minimal terminal client, so two shells can chat without a browser.

It speaks protocol v1 like any other client: it joins with ``since`` to show recent history, resends unacked
lines with the same client_id after a reconnect, and answers heartbeat pings.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import sys
import time
from typing import Any
from urllib.parse import quote

import websockets

BACKOFF_MAX = 10.0


def render(frame: dict[str, Any]) -> str | None:
    kind = frame.get("type")
    if kind == "message":
        stamp = time.strftime("%H:%M", time.localtime(frame["ts"] / 1000))
        extra = f" [{len(frame['attachments'])} attachment(s)]" if frame.get("attachments") else ""
        return f"[{stamp}] #{frame['room']} {frame['from']}: {frame['body']}{extra}"
    if kind == "presence":
        return f"* {frame['user']} {'joined' if frame['online'] else 'left'} #{frame['room']}"
    if kind == "error":
        return f"! {frame['code']}: {frame['message']}"
    if kind == "joined":
        return f"* joined #{frame['room']} (last seq {frame['seq']})"
    return None


async def chat(url: str, room: str, user: str | None, token: str | None) -> None:
    """Chat in ``room`` until stdin closes; reconnects with backoff and resumes without gaps."""
    if user:
        url += ("&" if "?" in url else "?") + f"user={quote(user)}"
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    last_seq: int | None = None
    pending: dict[str, str] = {}  # client_id → body, until acked
    ids = itertools.count(1)
    prefix = f"t{int(time.time())}-"
    lines: asyncio.Queue[str | None] = asyncio.Queue()
    loop = asyncio.get_running_loop()
    loop.add_reader(sys.stdin.fileno(), lambda: lines.put_nowait(sys.stdin.readline() or None))
    backoff = 0.5
    while True:
        try:
            async with websockets.connect(url, additional_headers=headers, max_size=None) as ws:
                backoff = 0.5
                hello = json.loads(str(await ws.recv()).split("\n")[0])
                print(f"* connected as {hello.get('user')}; type a line and press enter (Ctrl-D quits)", flush=True)
                join: dict[str, Any] = {"type": "join", "room": room}
                if last_seq is not None:
                    join["since"] = last_seq  # resume exactly after what we already printed
                await ws.send(json.dumps(join))
                for cid, body in pending.items():  # not acked before the drop: resend, same client_id
                    await ws.send(json.dumps({"type": "send", "room": room, "body": body, "client_id": cid}))
                reader = asyncio.create_task(_read(ws, pending))
                while True:
                    done, _ = await asyncio.wait(
                        {reader, asyncio.ensure_future(lines.get())}, return_when=asyncio.FIRST_COMPLETED
                    )
                    if reader in done:
                        last_seq = reader.result() or last_seq
                        break
                    line = done.pop().result()
                    if not isinstance(line, str):
                        reader.cancel()
                        return
                    body = line.rstrip("\n")
                    if body:
                        cid = f"{prefix}{next(ids)}"
                        pending[cid] = body
                        await ws.send(json.dumps({"type": "send", "room": room, "body": body, "client_id": cid}))
        except websockets.InvalidStatus as e:
            print(f"! refused: HTTP {e.response.status_code}", file=sys.stderr)
            return
        except (OSError, websockets.ConnectionClosed) as e:
            code = getattr(getattr(e, "rcvd", None), "code", None)
            if code and 4400 <= code < 4500:
                print(f"! closed with {code}: {e.rcvd.reason}", file=sys.stderr)  # type: ignore[union-attr]
                return
        print(f"* disconnected; retrying in {backoff:.1f}s", file=sys.stderr)
        await asyncio.sleep(backoff)
        backoff = min(backoff * 2, BACKOFF_MAX)


async def _read(ws: Any, pending: dict[str, str]) -> int | None:
    """Print frames until the socket closes; returns the last seq seen."""
    last: int | None = None
    try:
        async for raw in ws:
            for line in raw.split("\n"):
                frame = json.loads(line)
                kind = frame.get("type")
                if kind == "ping":
                    await ws.send('{"type":"pong"}')
                elif kind == "ack":
                    pending.pop(frame["client_id"], None)
                elif kind == "message":
                    last = frame["seq"]
                text = render(frame)
                if text:
                    print(text, flush=True)
    except websockets.ConnectionClosed as e:
        if e.rcvd and 4400 <= e.rcvd.code < 4500:
            raise
    return last
