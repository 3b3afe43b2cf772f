"""Pure rate and size arithmetic. Callers pass the clock in, so tests need no sleeping."""

from __future__ import annotations


class TokenBucket:
    """A classic token bucket: ``rate`` tokens per second, holding at most ``burst``.

    A rate of 0 means unlimited. One bucket is shared by all of a user's connections, so opening more sockets does
    not buy more sends.
    """

    __slots__ = ("rate", "burst", "tokens", "stamp")

    def __init__(self, rate: float, burst: int, now: float) -> None:
        self.rate = rate
        self.burst = float(burst)
        self.tokens = float(burst)
        self.stamp = now

    def take(self, now: float, cost: float = 1.0) -> bool:
        if self.rate <= 0:
            return True
        elapsed = now - self.stamp
        if elapsed > 0:
            self.tokens = min(self.burst, self.tokens + elapsed * self.rate)
            self.stamp = now
        if self.tokens >= cost:
            self.tokens -= cost
            return True
        return False

    def retry_after(self) -> float:
        """Seconds until one token is available."""
        if self.rate <= 0 or self.tokens >= 1:
            return 0.0
        return (1.0 - self.tokens) / self.rate


def utf8_len_exceeds(text: str, limit: int) -> bool:
    """Whether ``text`` encodes to more than ``limit`` UTF-8 bytes, encoding only when the answer is unclear."""
    n = len(text)
    if n > limit:
        return True  # every character is at least one byte
    if n * 4 <= limit:
        return False  # no character is more than four bytes
    return len(text.encode("utf-8", "surrogatepass")) > limit
