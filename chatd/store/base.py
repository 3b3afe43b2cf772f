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
| ``Backend`` | made from the config; networked or a file; schema and clock read unopened | make_store, doctor |
| ``Lifecycle``, ``DeploymentStore`` | open, close, ping; the deployment's key and one-use claims | the node, tickets |

The records the roles take and give live in ``chatd.store.records``; this module names them too, so the imports
across chatd, plugins and tests (``from chatd.store.base import Store, NewMessage``) keep working.
"""

from __future__ import annotations

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
    Backend,
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
    "Backend",
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
    Backend,
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
