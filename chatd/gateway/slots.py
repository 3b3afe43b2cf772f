"""Admission of WebSocket sessions: the total and per-user connection caps, counted before anything is awaited.

A handshake awaits twice before its session is registered in the hub (the token lookup and the accept), so a cap
checked against the hub lets every concurrent handshake of one user through the same check. Here a slot is taken
synchronously, in the same step as the check, and given back when the handshake is refused or the session ends.

The counts are per node: with several nodes a user's cap holds on each node, not across them.
"""

from __future__ import annotations


class ConnectionSlots:
    """Counts sessions admitted on this node, in total and per user; every ``take_*`` that returned True is paired
    with one ``release_*``."""

    __slots__ = ("max_total", "max_per_user", "total", "by_user")

    def __init__(self, max_total: int, max_per_user: int) -> None:
        self.max_total = max_total
        self.max_per_user = max_per_user
        self.total = 0
        self.by_user: dict[str, int] = {}

    def take_total(self) -> bool:
        if self.total >= self.max_total:
            return False
        self.total += 1
        return True

    def release_total(self) -> None:
        self.total -= 1

    def take_user(self, user: str) -> bool:
        held = self.by_user.get(user, 0)
        if held >= self.max_per_user:
            return False
        self.by_user[user] = held + 1
        return True

    def release_user(self, user: str) -> None:
        held = self.by_user.get(user, 0) - 1
        if held > 0:
            self.by_user[user] = held
        else:
            self.by_user.pop(user, None)  # bounded by users connected now, not users ever seen
