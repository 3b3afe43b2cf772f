"""Users, passwords and API tokens.

Passwords are hashed with scrypt (memory-hard; 16 MiB per hash with the parameters below), in a thread so the
event loop keeps serving. API tokens are random and opaque; only their SHA-256 is stored, which is safe because a
token has 256 bits of entropy (a slow hash protects low-entropy secrets, not these).
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import logging
import re
import secrets
import time
from collections.abc import Callable, Sequence

import msgspec

from chatd.errors import ChatError, Err
from chatd.protocol.frames import USER_MAX, USER_PATTERN
from chatd.rules.bots import ALL_ROOMS, Scope, decode_scope, encode_scope
from chatd.store.base import InviteRecord, Store, TokenRecord, UserInfo, UserRecord

SCRYPT_N, SCRYPT_R, SCRYPT_P = 2**14, 8, 1
PASSWORD_MIN, PASSWORD_MAX = 8, 1024
TOKEN_PREFIX = "chatd_"
TOUCH_EVERY = 60.0
TOUCHED_MAX = 100_000
_user_re = re.compile(USER_PATTERN)
log = logging.getLogger("chatd.auth")


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).decode().rstrip("=")


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def hash_password(password: str) -> str:
    salt = secrets.token_bytes(16)
    digest = hashlib.scrypt(password.encode(), salt=salt, n=SCRYPT_N, r=SCRYPT_R, p=SCRYPT_P, dklen=32)
    return f"scrypt${SCRYPT_N}${SCRYPT_R}${SCRYPT_P}${_b64(salt)}${_b64(digest)}"


def verify_password(password: str, encoded: str) -> bool:
    try:
        scheme, n, r, p, salt, digest = encoded.split("$")
    except ValueError:
        return False
    if scheme != "scrypt":
        return False
    expected = _unb64(digest)
    actual = hashlib.scrypt(password.encode(), salt=_unb64(salt), n=int(n), r=int(r), p=int(p), dklen=len(expected))
    return hmac.compare_digest(actual, expected)


def token_hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def new_token() -> str:
    return TOKEN_PREFIX + secrets.token_urlsafe(32)


def new_invite() -> str:
    # Shorter than a token, since people type or paste it once; 128 bits is still far beyond guessing.
    return "inv_" + secrets.token_urlsafe(16)


async def make_invites(store: Store, count: int, by: int | None, expires: int) -> list[str]:
    """``count`` new invite codes made by the user ``by`` (None: an operator's command), valid until ``expires``
    (Unix ms); only their hashes are stored, so the codes are shown once."""
    codes = [new_invite() for _ in range(count)]
    for code in codes:
        await store.add_invite(token_hash(code), by, expires)
    return codes


def valid_username(name: object) -> bool:
    return isinstance(name, str) and 0 < len(name) <= USER_MAX and _user_re.match(name) is not None


def check_username(name: str) -> None:
    if not valid_username(name):
        raise ChatError(
            Err.BAD_FRAME,
            f"usernames are 1-{USER_MAX} characters of A-Z a-z 0-9 _ . - and start with a letter or digit",
            field="username",
        )


def check_password(password: str) -> None:
    """The one password rule, for the web, the REST API and the CLI alike."""
    if not PASSWORD_MIN <= len(password) <= PASSWORD_MAX:
        raise ChatError(Err.BAD_FRAME, f"passwords are {PASSWORD_MIN}-{PASSWORD_MAX} characters", field="password")


class Issued(msgspec.Struct):
    token: str
    user: UserRecord


class Accounts:
    """Accounts over a Store. A user is their id; user names are case-insensitive (see the Store contract): whatever
    spelling a client types, what comes back carries the stored one and the id."""

    def __init__(self, store: Store, token_ttl: float = 0.0, clock: Callable[[], float] = time.time) -> None:
        self.store = store
        self.token_ttl = token_ttl
        self.clock = clock  # wall-clock seconds, as tokens' creation times are; a test steps its own past a ttl
        self._touched: dict[str, float] = {}
        # A dummy hash to verify against for unknown users, so login time does not reveal which names exist.
        self._dummy = hash_password(secrets.token_hex(8))

    async def register(
        self, name: str, password: str, admin_if_none: bool = False, invite: str | None = None
    ) -> Issued:
        """A new user (a new id) with a password. With ``invite``, the code is spent by this registration, in the
        same transaction that creates the user (a taken name spends nothing)."""
        check_username(name)
        check_password(password)
        hashed = await asyncio.to_thread(hash_password, password)
        spent = token_hash(invite) if invite is not None else None
        user = await self.store.create_user(
            name, hashed, admin_if_none=admin_if_none, invite=spent, now=int(time.time() * 1000)
        )
        return Issued(await self.issue(user.id), user)

    async def login(self, name: str, password: str) -> Issued:
        """A new token for ``name`` (any spelling); ``unauthorized`` for a wrong password or an unknown name,
        which take the same time."""
        user = await self.store.get_user(name) if valid_username(name) else None
        stored = await self.store.password_hash(user.id) if user else None
        ok = await asyncio.to_thread(verify_password, password, stored or self._dummy)
        if not (ok and stored and user) or (user and user.bot):
            # A bot works with scoped tokens only, whatever password its row may have been given.
            raise ChatError(Err.UNAUTHORIZED, "wrong username or password")
        if user.disabled:
            # Only after the password matched, so the answer tells nothing to someone guessing.
            raise ChatError(Err.UNAUTHORIZED, "this account is disabled; ask an admin")
        return Issued(await self.issue(user.id), user)

    async def change_password(self, uid: int, old: str, new: str, keep: str | None) -> list[str]:
        """The user's own password change: ``old`` must be their current password. Every other token of theirs is
        revoked (the token with hash ``keep``, the one asking, stays), since a change usually means the old
        password may be known to someone else; returns the revoked hashes, whose sockets the caller closes."""
        check_password(new)
        stored = await self.store.password_hash(uid)
        if stored is None:
            raise ChatError(
                Err.FORBIDDEN, "this account has no password to change (it signs in with single sign-on or tokens)"
            )
        if not await asyncio.to_thread(verify_password, old, stored):
            raise ChatError(Err.FORBIDDEN, "the current password is wrong", field="old_password")
        await self.store.set_password_hash(uid, await asyncio.to_thread(hash_password, new))
        return await self.store.revoke_tokens(uid, keep=keep)

    async def issue(self, uid: int, scope: Scope | None = None) -> str:
        """A new API token for the user with this id; ``scope``: what a bot's token may do (``chatd.rules.bots``)."""
        token = new_token()
        await self.store.add_token(token_hash(token), uid, encode_scope(scope) if scope is not None else None)
        return token

    async def scope_of(self, hashed: str) -> Scope | None:
        """The scope the token with this hash was issued with; None: unscoped (the user's own rights)."""
        text = await self.store.token_scopes(hashed)
        return decode_scope(text) if text is not None else None

    async def issue_scoped(self, bot: UserRecord, scope: Scope) -> str:
        """A new token for ``bot`` limited to ``scope``. The bot is made a member of each room the scope names (a
        bot sends only where it is a member, like anyone); ChatError(NOT_FOUND) for a room that does not exist."""
        if not bot.bot:
            raise ChatError(Err.CONFLICT, f"{bot.name!r} is not a bot; scoped tokens are for bots")
        for room in scope.rooms:
            if room != ALL_ROOMS:
                await self.store.add_member(room, bot.id)
        return await self.issue(bot.id, scope)

    async def create_bot(self, name: str) -> UserRecord:
        """A new bot user (no password: it cannot sign in; it gets scoped tokens from ``issue``)."""
        check_username(name)
        return await self.store.create_user(name, None, bot=True, now=int(time.time() * 1000))

    async def authenticate(self, token: str) -> UserRecord | None:
        if not token.startswith(TOKEN_PREFIX) or len(token) > 128:
            return None
        hashed = token_hash(token)
        user = await self.user_for_hash(hashed)
        if user is not None:
            await self._touch(hashed)
        return user

    async def _touch(self, hashed: str) -> None:
        """Record the token's last use for ``chatd users tokens``, at most once per ``TOUCH_EVERY`` per token per
        process: one store write a minute per active token, not one per request."""
        now = time.monotonic()
        if now - self._touched.get(hashed, -TOUCH_EVERY) < TOUCH_EVERY:
            return
        if len(self._touched) >= TOUCHED_MAX:
            self._touched.clear()  # forgetting only costs an extra write per token
        self._touched[hashed] = now
        try:
            await self.store.touch_token(hashed, int(time.time() * 1000), int(TOUCH_EVERY * 1000))
        except Exception as e:  # noqa: BLE001 - last use is informative; never refuse a session over it
            log.debug("could not record a token's last use: %s", e)

    async def user_for_hash(self, hashed: str) -> UserRecord | None:
        """The holder of the token with this hash, unless it was revoked or is older than ``auth.token_ttl``."""
        issued_after = int((self.clock() - self.token_ttl) * 1000) if self.token_ttl > 0 else 0
        return await self.store.user_for_token(hashed, issued_after)

    async def expires_in(self, hashed: str | None) -> float | None:
        """Seconds until the token with this hash expires under ``auth.token_ttl`` (at most 0 when it has), or None
        when it never does: no ttl, or no token (open mode)."""
        if self.token_ttl <= 0 or hashed is None:
            return None
        created = await self.store.token_created(hashed)
        if created is None:
            return 0.0
        return created / 1000 + self.token_ttl - self.clock()

    async def logout(self, token: str) -> bool:
        return await self.store.revoke_token(token_hash(token))

    async def open_user(self, name: str) -> UserRecord | None:
        """Open mode: whoever says they are ``name`` is, created on first sight."""
        if not valid_username(name):
            return None
        user = await self.store.get_user(name)
        if user is None:
            try:
                user = await self.store.create_user(name, None)
            except ChatError:
                user = await self.store.get_user(name)  # created by a racing request
        if user is not None and user.disabled:
            return None
        return user

    async def create_bots(self, names: list[str]) -> list[Issued]:
        """Token-only users for scripts and the bench. Existing bots get a fresh token; humans are refused."""
        for name in names:
            check_username(name)
        issued = []
        for name in names:
            user = await self.store.get_user(name)
            if user is None:
                user = await self.store.create_user(name, None, bot=True)
            elif not user.bot:
                raise ChatError(Err.CONFLICT, f"{name!r} is an existing human user")
            issued.append(Issued(await self.issue(user.id), user))
        return issued

    # --- what the gateway asks of accounts (lookups, the directory, admins' changes) --------------------------

    async def find(self, name: str) -> UserRecord | None:
        """The live user called ``name`` (any spelling), or None."""
        return await self.store.get_user(name)

    async def by_id(self, uid: int) -> UserRecord | None:
        return await self.store.user_by_id(uid)

    async def by_ids(self, ids: Sequence[int]) -> list[UserRecord]:
        return await self.store.users_by_ids(ids)

    async def names_of(self, ids: Sequence[int]) -> dict[int, str]:
        """The current names of the users with these ids (one query)."""
        return await self.store.user_names(ids) if ids else {}

    async def directory_page(
        self, q: str, after: str | None, limit: int, *, disabled: bool = False
    ) -> tuple[list[UserRecord], str | None]:
        """One page of the directory and the cursor of the next (None: the last page). One row more than the page is
        read to know whether another page follows."""
        rows = await self.store.directory(q.strip(), after=after, limit=limit + 1, disabled=disabled)
        return rows[:limit], rows[limit - 1].name if len(rows) > limit else None

    async def set_flags(self, uid: int, *, disabled: bool | None, admin: bool | None) -> None:
        """Disable or enable, promote or demote (None: unchanged)."""
        await self.store.set_user(uid, disabled=disabled, admin=admin)

    async def set_password(self, uid: int, password: str | None) -> None:
        """An admin's reset: ``password`` becomes the user's (None: password sign-in off for them)."""
        hashed = await asyncio.to_thread(hash_password, password) if password is not None else None
        await self.store.set_password_hash(uid, hashed)

    async def revoke_all(self, uid: int) -> list[str]:
        """Revoke every token of the user; the hashes of those revoked."""
        return await self.store.revoke_tokens(uid)

    async def bots(self) -> list[tuple[UserInfo, list[TokenRecord]]]:
        """Every bot with its tokens."""
        return [(u, await self.store.tokens(user=u.id)) for u in await self.store.user_info() if u.bot]

    async def make_invites(self, count: int, by: int, expires: int) -> list[str]:
        return await make_invites(self.store, count, by, expires)

    async def invites(self) -> list[InviteRecord]:
        return await self.store.invites()
