"""The store interface: ``Store``, every role of ``chatd.store.roles`` in one class.

A backend (``chatd.store.sqlite``, ``plugins.postgres_store``) subclasses ``Store`` and so implements every role;
code that uses a store names the narrowest role it needs, whose docstring states the contract it relies on:

| role | what | used by (e.g.) |
|---|---|---|
| ``MessageStore`` | append, streams, history, positions, epochs | the worker, the feeds |
| ``RetentionStore`` | deleting a prefix of each room's stream | retention |
| ``RoomStore`` | rooms, members, direct-message rooms | rooms, the feeds' resync |
| ``AccountStore`` | users, names, sign-in identities, invites | accounts, single sign-on |
| ``TokenStore`` | bearer tokens (hashes) | accounts, authentication |
| ``PersonalStore`` | read positions, mentions | per-user state |
| ``UploadStore`` | upload records and quota | uploads, their sweep |
| ``SearchStore`` | full-text search | the search route |
| ``HookStore``, ``WebhookStore`` | incoming webhooks; outgoing ones and their leases | hooks, the deliverer |
| ``AdminStore`` | export, import, snapshot, new epochs | operators' commands |
| ``Lifecycle``, ``DeploymentStore`` | open, close, ping; the deployment's key and one-use claims | the node, tickets |

What a backend declares, so that the rest of chatd never asks its name, is on ``Store`` itself: ``from_config``
builds it from the whole config; ``networked`` says whether it is a database server that several nodes share over
the network (PostgreSQL), whose one pool of connections searches share with every other read, or a file on this
machine that one server writes (SQLite), whose searches get connections of their own and whose directory the admin
commands check; ``schema_state`` reads which migrations a database has, without changing it, and ``clock_skew``
how far a database server's clock is from this machine's.

The records the roles take and give live in ``chatd.store.records``; this module names them too, so the imports
across chatd, plugins and tests (``from chatd.store.base import Store, NewMessage``) keep working.
"""

from __future__ import annotations

import abc
from typing import ClassVar, Self

from chatd.config import Config
from chatd.store.records import (
    EPOCH_BYTES,
    EXPORT_COLUMNS,
    EXPORT_KINDS,
    LATER_COLUMNS,
    PURGE_CHUNK,
    TOKEN_ID_LEN,
    UNREAD_MAX,
    WEBHOOKS_SQL,
    AdminRoom,
    HookRecord,
    InviteRecord,
    NewMessage,
    Outcome,
    ReadPosition,
    RoomRecord,
    StoreRefused,
    StreamPosition,
    TokenRecord,
    UploadRecord,
    UserInfo,
    UserRecord,
    UserRef,
    Webhook,
    check_import,
    display_key,
    display_keys,
    export_row,
    import_value,
    missing_room,
    new_epoch,
    outsider,
    prefix_range,
    webhook_of,
)
from chatd.store.roles import (
    AccountStore,
    AdminStore,
    DeploymentStore,
    HookStore,
    Lifecycle,
    MessageStore,
    PersonalStore,
    RetentionStore,
    RoomStore,
    SearchStore,
    TokenStore,
    UploadStore,
    WebhookStore,
)

__all__ = [
    "Store",
    "Lifecycle",
    "DeploymentStore",
    "MessageStore",
    "RetentionStore",
    "RoomStore",
    "AccountStore",
    "TokenStore",
    "PersonalStore",
    "UploadStore",
    "SearchStore",
    "HookStore",
    "WebhookStore",
    "AdminStore",
    "AdminRoom",
    "EPOCH_BYTES",
    "EXPORT_COLUMNS",
    "EXPORT_KINDS",
    "HookRecord",
    "InviteRecord",
    "LATER_COLUMNS",
    "NewMessage",
    "Outcome",
    "PURGE_CHUNK",
    "ReadPosition",
    "RoomRecord",
    "StoreRefused",
    "StreamPosition",
    "TOKEN_ID_LEN",
    "TokenRecord",
    "UNREAD_MAX",
    "UploadRecord",
    "UserInfo",
    "UserRecord",
    "UserRef",
    "WEBHOOKS_SQL",
    "Webhook",
    "check_import",
    "display_key",
    "display_keys",
    "export_row",
    "import_value",
    "missing_room",
    "new_epoch",
    "outsider",
    "prefix_range",
    "webhook_of",
]


class Store(
    Lifecycle,
    DeploymentStore,
    MessageStore,
    RetentionStore,
    RoomStore,
    AccountStore,
    TokenStore,
    PersonalStore,
    UploadStore,
    SearchStore,
    HookStore,
    WebhookStore,
    AdminStore,
):
    """Persistent state of a chatd deployment: every role, which each backend implements."""

    networked: ClassVar[bool]  # a database server nodes share, not one server's file (see the module docstring)

    @classmethod
    @abc.abstractmethod
    def from_config(cls, cfg: Config, server: bool = True) -> Self:
        """The store ``cfg.store`` describes, not yet open. ``server=False`` for tools that only manage users while
        a server may be running."""

    @classmethod
    @abc.abstractmethod
    async def schema_state(cls, cfg: Config) -> tuple[list[str], list[str]]:
        """(migrations the database ``cfg.store`` describes has, migrations this chatd knows), read without changing
        anything (``chatd migrate --check``, ``chatd doctor``); StoreRefused when it cannot be reached."""

    @classmethod
    async def clock_skew(cls, cfg: Config) -> tuple[str, float] | None:
        """(what the database server is called, seconds its clock is ahead of this machine's), for ``chatd doctor``:
        token expiry and message times mix both clocks. None for a store with no clock but this machine's."""
        return None
