"""The no-framework ceiling: protocol v1 on picows and uvloop, and nothing else.

What a Python chat server costs when it does the least possible: picows parses WebSocket frames in Cython, msgspec
decodes and encodes JSON, each send is acked at once and written to every member of the room straight from the
frame callback. Nothing is persisted, validated, bounded or rate-limited, and a slow reader is not noticed. It is
not a server anyone should run; it is the distance to the limit, measured in the same run as chatd and the naive
FastAPI server (``chatd bench compare -t spawn -t naive -t ceiling``).

It speaks the frames the bench needs: ``hello`` on connect, ``joined`` for ``join``, ``ack`` then a ``message`` to
every member for ``send``, ``pong`` for ``ping``; ``GET /readyz`` answers 200. Needs the ``peers`` extra.

    python bench/peers/picows_ceiling.py --port 9002
"""

from __future__ import annotations

import argparse
import time
from urllib.parse import parse_qs, urlsplit

import msgspec
import uvloop
from picows import (
    WSFrame,
    WSListener,
    WSMsgType,
    WSTransport,
    WSUpgradeRequest,
    WSUpgradeResponse,
    WSUpgradeResponseWithListener,
    ws_create_server,
)

decode = msgspec.json.Decoder().decode
encode = msgspec.json.Encoder().encode

rooms: dict[str, set[Member]] = {}
last_seq: dict[str, int] = {}


class Member(WSListener):
    def __init__(self, user: str) -> None:
        self.user = user
        self.transport: WSTransport | None = None
        self.joined: set[str] = set()

    def on_ws_connected(self, transport: WSTransport) -> None:
        self.transport = transport
        transport.send(WSMsgType.TEXT, encode({"type": "hello", "user": self.user, "protocol": 1}))

    def on_ws_frame(self, transport: WSTransport, frame: WSFrame) -> None:
        if frame.msg_type == WSMsgType.CLOSE:
            transport.send_close(frame.get_close_code())
            transport.disconnect()
            return
        if frame.msg_type != WSMsgType.TEXT:
            return
        msg = decode(frame.get_payload_as_bytes())
        kind = msg.get("type")
        if kind == "send":
            room = msg["room"]
            seq = last_seq[room] = last_seq.get(room, 0) + 1
            ts = int(time.time() * 1000)
            cid = msg["client_id"]
            transport.send(
                WSMsgType.TEXT, encode({"type": "ack", "client_id": cid, "room": room, "seq": seq, "ts": ts})
            )
            out = encode(
                {
                    "type": "message",
                    "room": room,
                    "seq": seq,
                    "from": self.user,
                    "body": msg["body"],
                    "client_id": cid,
                    "ts": ts,
                }
            )
            for member in rooms.get(room, ()):
                if member.transport is not None:
                    member.transport.send(WSMsgType.TEXT, out)
        elif kind == "join":
            room = msg["room"]
            rooms.setdefault(room, set()).add(self)
            self.joined.add(room)
            transport.send(WSMsgType.TEXT, encode({"type": "joined", "room": room, "seq": last_seq.get(room, 0)}))
        elif kind == "ping":
            transport.send(WSMsgType.TEXT, b'{"type":"pong"}')

    def on_ws_disconnected(self, transport: WSTransport) -> None:
        for room in self.joined:
            rooms.get(room, set()).discard(self)


def listener_factory(request: WSUpgradeRequest) -> WSUpgradeResponseWithListener | Member:
    parts = urlsplit(request.path.decode())
    if parts.path == "/readyz":
        return WSUpgradeResponseWithListener(WSUpgradeResponse.create_ok_response(b'{"ready":true}'), None)
    user = (parse_qs(parts.query).get("user") or ["anonymous"])[0]
    return Member(user)


async def main(host: str, port: int) -> None:
    server = await ws_create_server(listener_factory, host, port, websocket_handshake_timeout=10)
    await server.serve_forever()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=9002)
    args = parser.parse_args()
    uvloop.run(main(args.host, args.port))
