"""The Store is exactly its roles (chatd/store/roles.py), and both stores implement every role in full."""

from __future__ import annotations

import inspect

import pytest

from chatd.store import roles
from chatd.store.base import Store
from chatd.store.sqlite import SQLiteStore
from plugins.postgres_store import PostgresStore

pytestmark = pytest.mark.fast  # in-process: ./scripts/test --fast runs it

ROLES = [c for _, c in inspect.getmembers(roles, inspect.isclass) if c.__module__ == roles.__name__]


def members(cls: type) -> set[str]:
    """The public methods and attributes a class defines itself (a Protocol's bookkeeping starts with ``_``)."""
    return {name for name in vars(cls) if not name.startswith("_")}


def test_every_member_of_store_belongs_to_exactly_one_role() -> None:
    assert set(Store.__bases__) == set(ROLES)  # every role, nothing else
    assert members(Store) == set()  # Store adds nothing of its own
    owners: dict[str, list[str]] = {}
    for role in ROLES:
        for name in members(role):
            owners.setdefault(name, []).append(role.__name__)
    assert {name: who for name, who in owners.items() if len(who) > 1} == {}
    public = {name for name in dir(Store) if not name.startswith("_")}
    assert public == set(owners)


@pytest.mark.parametrize("store", [SQLiteStore, PostgresStore], ids=["sqlite", "postgres"])
@pytest.mark.parametrize("role", ROLES, ids=[r.__name__ for r in ROLES])
def test_each_store_implements_every_abstract_method_of_each_role(store: type[Store], role: type) -> None:
    assert role in store.__mro__  # nominally: a Protocol answers issubclass only when runtime_checkable
    missing = sorted(name for name in role.__abstractmethods__ if getattr(store, name) is getattr(role, name))
    assert missing == []
    assert not store.__abstractmethods__  # so it can be made at all
