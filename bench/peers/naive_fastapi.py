"""The naive FastAPI broadcast chat server, reproduced as a baseline for ``chatd bench compare``.

This is the design the article that started chatd measured: a set of sockets per room, a receive loop per
connection, and on every message a ``send`` to each client in turn, awaited one after another. It persists
nothing, and it never checks sizes, rates or membership. It speaks protocol v1 so the same bench drives it:
``hello`` on connect, ``joined`` for ``join``, ``ack`` then a ``message`` broadcast for ``send``, ``pong`` for
``ping``. Sequence numbers are an in-memory counter per room.

Run it (needs the ``peers`` extra: ``pip install -e '.[peers]'``)::

    python bench/peers/naive_fastapi.py --port 9001
    chatd bench -t ws://127.0.0.1:9001/ws -s steady

or let the bench start it: ``chatd bench -t naive`` / ``chatd bench compare -t spawn -t naive``.

With ``--db FILE`` it is the **same-durability peer** (``-t durable``): the server a user would write once told
that messages must survive a restart. Each send is one committed ``INSERT`` into SQLite (WAL,
``synchronous=NORMAL``, chatd's default durability) through aiosqlite, awaited before the ack and the broadcast.
Nothing else changes: no batching, no idempotency, no membership, no bounds. It is the honest baseline for a
durable server; the naive peer and the ceiling stay beside it.
"""

from __future__ import annotations

import argparse
import json
import time
from typing import Any

from fastapi import FastAPI, WebSocket, WebSocketDisconnect

app = FastAPI()
rooms: dict[str, set[WebSocket]] = {}
last_seq: dict[str, int] = {}
db: Any = None  # an aiosqlite connection with --db


async def open_db(path: str) -> None:
    import aiosqlite

    global db
    db = await aiosqlite.connect(path)
    await db.execute("PRAGMA journal_mode=WAL")
    await db.execute("PRAGMA synchronous=NORMAL")
    await db.execute(
        "CREATE TABLE IF NOT EXISTS messages (room TEXT, seq INTEGER, sender TEXT, body TEXT, client_id TEXT, "
        "ts INTEGER, PRIMARY KEY (room, seq))"
    )
    await db.commit()
    for room, seq in await db.execute_fetchall("SELECT room, MAX(seq) FROM messages GROUP BY room"):
        last_seq[room] = seq


@app.get("/readyz")
async def readyz() -> dict[str, bool]:
    return {"ready": True}


@app.websocket("/ws")
async def chat(ws: WebSocket) -> None:
    user = ws.query_params.get("user") or "anonymous"
    await ws.accept()
    await ws.send_text(json.dumps({"type": "hello", "user": user, "protocol": 1}))
    joined: set[str] = set()
    try:
        while True:
            frame = json.loads(await ws.receive_text())
            kind = frame.get("type")
            if kind == "join":
                room = frame["room"]
                rooms.setdefault(room, set()).add(ws)
                joined.add(room)
                await ws.send_text(json.dumps({"type": "joined", "room": room, "seq": last_seq.get(room, 0)}))
            elif kind == "send":
                room = frame["room"]
                seq = last_seq[room] = last_seq.get(room, 0) + 1
                ts = int(time.time() * 1000)
                if db is not None:
                    await db.execute(
                        "INSERT INTO messages VALUES (?, ?, ?, ?, ?, ?)",
                        (room, seq, user, frame["body"], frame["client_id"], ts),
                    )
                    await db.commit()
                await ws.send_text(
                    json.dumps({"type": "ack", "client_id": frame["client_id"], "room": room, "seq": seq, "ts": ts})
                )
                message = json.dumps(
                    {
                        "type": "message",
                        "room": room,
                        "seq": seq,
                        "from": user,
                        "body": frame["body"],
                        "client_id": frame["client_id"],
                        "ts": ts,
                    }
                )
                for peer in list(rooms.get(room, ())):
                    try:
                        await peer.send_text(message)
                    except Exception:  # noqa: BLE001 - the naive server just forgets a broken peer
                        rooms[room].discard(peer)
            elif kind == "ping":
                await ws.send_text('{"type":"pong"}')
    except WebSocketDisconnect:
        pass
    finally:
        for room in joined:
            rooms.get(room, set()).discard(ws)


if __name__ == "__main__":
    import uvicorn

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=9001)
    parser.add_argument("--db", help="persist each message to this SQLite file before its ack (the durable peer)")
    args = parser.parse_args()
    if args.db:

        async def startup() -> None:
            await open_db(args.db)

        app.router.on_startup.append(startup)
    uvicorn.run(app, host=args.host, port=args.port, log_level="warning", ws_max_size=16 * 1024 * 1024)
