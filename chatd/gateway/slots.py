"""Admission of WebSocket sessions: the node's connection cap, counted before anything is awaited.

A handshake awaits twice before its session is registered in the hub (the token lookup and the accept), so a cap
checked against the hub lets every concurrent handshake through the same check. Here a slot is taken
synchronously, in the same step as the check, and given back when the handshake is refused or the session ends.

This cap protects the node itself, so it is per node. The per-user cap (``limits.max_connections_per_user``)
protects everyone else and lives in the node's limiter (``chatd.limiter``), across nodes where the broker shares
limits.
"""

from __future__ import annotations


class ConnectionSlots:
    """Counts sessions admitted on this node; every ``take_total`` that returned True is paired with one
    ``release_total``."""

    __slots__ = ("max_total", "total")

    def __init__(self, max_total: int) -> None:
        self.max_total = max_total
        self.total = 0

    def take_total(self) -> bool:
        if self.total >= self.max_total:
            return False
        self.total += 1
        return True

    def release_total(self) -> None:
        self.total -= 1
