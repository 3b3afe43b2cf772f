"""Throttles for actions a hostile client repeats: login and registration attempts, uploads, room creation,
typing notices.

All state here lives in this process: **every limit is per node**. With several nodes behind a load balancer a
client gets each limit once per node it reaches; moving the buckets to a shared backend (Redis) only needs another
implementation of :class:`KeyedBuckets`' three methods.

Each structure is bounded: at most ``max_keys`` keys are remembered, and past that the least recently used key is
forgotten (policy ``evict-lru``). A forgotten key starts again with a full bucket, so an attacker needs more keys
than the bound, all active at once, to gain anything.
"""

from __future__ import annotations

import logging
import time
from collections import OrderedDict

from chatd.config import AuthConfig
from chatd.errors import ChatError, Err
from chatd.protocol.limits import TokenBucket

log = logging.getLogger("chatd.auth")

MAX_KEYS = 65_536


class KeyedBuckets:
    """One token bucket per key: ``rate`` per second, holding at most ``burst``. A rate of 0 means no limit."""

    __slots__ = ("rate", "burst", "max_keys", "_buckets")

    def __init__(self, rate: float, burst: float, max_keys: int = MAX_KEYS) -> None:
        self.rate = rate
        self.burst = max(1.0, burst)
        self.max_keys = max_keys
        self._buckets: OrderedDict[str, TokenBucket] = OrderedDict()

    def _bucket(self, key: str, now: float) -> TokenBucket:
        b = self._buckets.get(key)
        if b is None:
            b = self._buckets[key] = TokenBucket(self.rate, int(self.burst), now)
            if len(self._buckets) > self.max_keys:
                self._buckets.popitem(last=False)
        else:
            self._buckets.move_to_end(key)
        return b

    def wait(self, key: str, now: float) -> float:
        """Seconds until ``key`` may act again; 0.0 if it may act now. Takes nothing."""
        if self.rate <= 0:
            return 0.0
        b = self._bucket(key, now)
        b.take(now, 0.0)  # refill up to now
        return b.retry_after()

    def take(self, key: str, now: float) -> float:
        """Spend one token for ``key``: 0.0 if it was there, else the seconds until one will be."""
        if self.rate <= 0:
            return 0.0
        b = self._bucket(key, now)
        return 0.0 if b.take(now) else max(b.retry_after(), 0.001)

    def forget(self, key: str) -> None:
        self._buckets.pop(key, None)


def refuse(what: str, wait: float) -> ChatError:
    """The ``rate_limited`` answer, with a Retry-After."""
    return ChatError(Err.RATE_LIMITED, f"too many {what}; retry in {wait:.0f}s", retry_after=wait)


class AuthThrottle:
    """Login and registration limits, per node (see the module docstring).

    - Per client IP, every login or registration attempt spends from ``auth.attempts_per_minute``; registrations
      also spend from ``auth.registrations_per_hour``.
    - Per account (its name, case-insensitively, whether or not it exists), failed logins spend from a bucket of
      ``auth.login_failures`` that refills one every ``auth.lockout_seconds``; an empty bucket refuses the next
      attempt before the password is even checked, so a locked account leaks nothing about the guess. A
      successful login refills it. Tokens already issued keep working.
    """

    def __init__(self, cfg: AuthConfig) -> None:
        self.per_ip = KeyedBuckets(cfg.attempts_per_minute / 60, cfg.attempts_per_minute)
        self.registrations = KeyedBuckets(cfg.registrations_per_hour / 3600, cfg.registrations_per_hour)
        lockout = cfg.lockout_seconds if cfg.login_failures > 0 else 0.0
        self.failures = KeyedBuckets(1 / lockout if lockout > 0 else 0.0, cfg.login_failures)

    def attempt(self, ip: str, registering: bool = False) -> None:
        """Raise ``rate_limited`` if this IP must wait; else count the attempt."""
        now = time.monotonic()
        if registering:
            wait = self.registrations.wait(ip, now)
            if wait:
                log.warning("registration refused for %s: over auth.registrations_per_hour", ip)
                raise refuse("registrations from your address", wait)
        wait = self.per_ip.take(ip, now)
        if wait:
            log.warning("auth attempt refused for %s: over auth.attempts_per_minute", ip)
            raise refuse("sign-in attempts from your address", wait)
        if registering:
            self.registrations.take(ip, now)

    def account_open(self, name: str, ip: str) -> None:
        """Raise ``rate_limited`` while the account is locked by failed logins."""
        wait = self.failures.wait(name.lower(), time.monotonic())
        if wait:
            log.warning("login refused for %s from %s: account locked after failed logins", shown(name), ip)
            raise refuse("failed logins for this account", wait)

    def login_failed(self, name: str, ip: str) -> None:
        self.failures.take(name.lower(), time.monotonic())
        log.warning("login failed for %s from %s", shown(name), ip)

    def login_succeeded(self, name: str) -> None:
        self.failures.forget(name.lower())


def shown(name: str) -> str:
    """A user-supplied name made safe for one log line: quoted, escaped, cut short."""
    return repr(name[:40] + ("…" if len(name) > 40 else ""))
