"""Throttles for actions a hostile client repeats: sign-in attempts and registrations per client address, failed
logins per account, and the helpers every per-address or per-user limit shares.

The counts live in the node's :class:`chatd.limiter.Limiter`, so they hold across every node where the broker
shares limits (Redis), and per node otherwise. :class:`KeyedBuckets` is for the few budgets that are per node by
design (presence announcements, which every node derives from the same reports).

A client address keys a limit through :func:`address_key`: an IPv6 client is counted by its /64, the block one
subscriber usually gets, or one host would be 2^64 clients.
"""

from __future__ import annotations

import ipaddress
import logging
from collections import OrderedDict

from chatd.config import AuthConfig
from chatd.errors import ChatError, Err
from chatd.limiter import Limiter
from chatd.protocol.limits import TokenBucket

log = logging.getLogger("chatd.auth")

MAX_KEYS = 65_536
FAILURE_MEMORY = 3600.0  # seconds a failed login keeps counting after the last one


def address_key(addr: str) -> str:
    """What per-address limits count for a client address: an IPv4 address whole (an IPv4-mapped IPv6 address as
    its IPv4), an IPv6 address by its /64; anything else (a peer that is no IP address) as it is."""
    try:
        ip = ipaddress.ip_address(addr)
    except ValueError:
        return addr
    if isinstance(ip, ipaddress.IPv6Address):
        if ip.ipv4_mapped is not None:
            return str(ip.ipv4_mapped)
        return str(ipaddress.ip_network(f"{ip}/64", strict=False))
    return str(ip)


class KeyedBuckets:
    """One token bucket per key, in this process: ``rate`` per second, holding at most ``burst``. A rate of 0 means
    no limit. At most ``max_keys`` keys are remembered; past that the least recently used is forgotten
    (``evict-lru``), and a forgotten key starts again with a full bucket."""

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

    def take(self, key: str, now: float) -> float:
        """Spend one token for ``key``: 0.0 if it was there, else the seconds until one will be."""
        if self.rate <= 0:
            return 0.0
        b = self._bucket(key, now)
        return 0.0 if b.take(now) else max(b.retry_after(), 0.001)


def refuse(what: str, wait: float) -> ChatError:
    """The ``rate_limited`` answer, with a Retry-After."""
    return ChatError(Err.RATE_LIMITED, f"too many {what}; retry in {wait:.0f}s", retry_after=wait)


class AuthThrottle:
    """Sign-in and registration limits (see ``docs/operations.md``, "Sign-in limits").

    Per client address (:func:`address_key`), every login or registration attempt spends from
    ``auth.attempts_per_minute``; registrations also from ``auth.registrations_per_hour``.

    Failed logins slow further guesses at the account (keyed by the name as typed, lower-cased, whether or not it
    exists, so no answer tells which names exist) with growing delays, and never lock its owner out:

    - from one address: after ``auth.login_failures`` failures there, each further attempt from it waits 1 s, 2 s,
      4 s, ... (doubling, at most ``auth.lockout_seconds``) after that address's last failure;
    - from every address together: once the account has ``auth.account_failures`` failures, every address that has
      failed for it at least once also waits the delay those count for (counted the same way);
    - an address that has not failed for the account is always heard, so its owner's right password from a clean
      address signs in whatever an attacker elsewhere does;
    - a successful login clears its address's count; counts are forgotten ``FAILURE_MEMORY`` after their last
      failure.

    The wait is checked before the password, so a throttled guess learns nothing. Every failure and refusal is
    logged with the name and address (never the password).
    """

    def __init__(self, cfg: AuthConfig, limiter: Limiter) -> None:
        self.cfg = cfg
        self.limiter = limiter

    async def attempt(self, ip: str, registering: bool = False) -> None:
        """Raise ``rate_limited`` if this address must wait; else count the attempt."""
        cfg, where = self.cfg, address_key(ip)
        per_hour = cfg.registrations_per_hour
        if registering:
            wait = await self.limiter.peek(f"register:{where}", per_hour / 3600, per_hour)
            if wait:
                log.warning("registration refused for %s: over auth.registrations_per_hour", ip)
                raise refuse("registrations from your address", wait)
        wait = await self.limiter.take(f"auth:{where}", cfg.attempts_per_minute / 60, cfg.attempts_per_minute)
        if wait:
            log.warning("auth attempt refused for %s: over auth.attempts_per_minute", ip)
            raise refuse("sign-in attempts from your address", wait)
        if registering:
            await self.limiter.take(f"register:{where}", per_hour / 3600, per_hour)

    def delay(self, failures: int, free: int) -> float:
        """Seconds to wait after the last of ``failures``, when ``free`` of them cost nothing."""
        if free <= 0 or failures < free:
            return 0.0
        return min(float(self.cfg.lockout_seconds), 2.0 ** min(failures - free, 30))

    async def login_allowed(self, name: str, ip: str) -> None:
        """Raise ``rate_limited`` while this address must wait before guessing at this account again."""
        account, pair = self._keys(name, ip)
        failures, age = await self.limiter.strikes(pair)
        if not failures:
            return  # a clean address is always heard
        wait = self.delay(failures, self.cfg.login_failures)
        account_failures, _ = await self.limiter.strikes(account)
        wait = max(wait, self.delay(account_failures, self.cfg.account_failures)) - age
        if wait > 0:
            log.warning(
                "login refused for %s from %s: %d failed logins from there, %d for the account; next try in %.0fs",
                shown(name),
                ip,
                failures,
                account_failures,
                wait,
            )
            raise refuse("failed logins for this account from your address", wait)

    async def login_failed(self, name: str, ip: str) -> None:
        account, pair = self._keys(name, ip)
        here = await self.limiter.strike(pair, FAILURE_MEMORY)
        total = await self.limiter.strike(account, FAILURE_MEMORY)
        log.warning("login failed for %s from %s (%d from there, %d for the account)", shown(name), ip, here, total)

    async def login_succeeded(self, name: str, ip: str) -> None:
        await self.limiter.clear(self._keys(name, ip)[1])

    @staticmethod
    def _keys(name: str, ip: str) -> tuple[str, str]:
        account = f"login:{name.lower()}"
        return account, f"{account}@{address_key(ip)}"


def shown(name: str) -> str:
    """A user-supplied name made safe for one log line: quoted, escaped, cut short."""
    return repr(name[:40] + ("…" if len(name) > 40 else ""))
