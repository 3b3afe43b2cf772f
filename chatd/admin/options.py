"""What every operator command shares: the ``--config`` and ``--create`` options, loading the config, opening the
store for one command, reading a password, and the ``users`` group (``chatd.cli`` gives it ``add`` and ``token``,
``chatd.admin.users`` the rest).

It sits below both ``chatd.cli`` and the admin commands, so neither imports the other's helpers.
"""

from __future__ import annotations

import asyncio
import os
import sys
from collections.abc import Awaitable, Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import click

from chatd.config import Config, ConfigError, load_config

if TYPE_CHECKING:
    from chatd.store.base import Store

DEFAULT_CONFIG = "chatd.toml"
T = TypeVar("T")


def config_option(fn: Callable[..., Any]) -> Callable[..., Any]:
    return click.option(
        "--config",
        "-c",
        "config_path",
        type=click.Path(dir_okay=False),
        help=f"Config file. Default: $CHATD_CONFIG, else ./{DEFAULT_CONFIG} if present, else built-in defaults.",
    )(fn)


def json_option(fn: Callable[..., Any]) -> Callable[..., Any]:
    return click.option("--json", "as_json", is_flag=True, help="One JSON object per line instead of a table.")(fn)


def print_listing(rows: Sequence[Any], as_json: bool, header: str, line: Callable[[Any], str]) -> None:
    """What every ``list`` command prints: one JSON object per row (for ``jq``), or ``header`` and a line per row."""
    if as_json:
        import msgspec

        for row in rows:
            click.echo(msgspec.json.encode(row).decode())
        return
    click.echo(header)
    for row in rows:
        click.echo(line(row))


def resolve_config_path(path: str | None) -> str | None:
    if path:
        return path
    if os.environ.get("CHATD_CONFIG"):
        return os.environ["CHATD_CONFIG"]
    return DEFAULT_CONFIG if Path(DEFAULT_CONFIG).is_file() else None


def build_config(path: str | None, overrides: dict[str, dict[str, Any]] | None = None) -> Config:
    try:
        return load_config(resolve_config_path(path), overrides=overrides)
    except ConfigError as e:
        raise click.ClickException(f"config error: {e}") from None


def create_option(fn: Callable[..., Any]) -> Callable[..., Any]:
    return click.option(
        "--create",
        is_flag=True,
        help="Create the database if it does not exist. Without it a missing store is made only when the config "
        "places it (an absolute store.path, as chatd init writes, or a PostgreSQL DSN), so a command run from the "
        "wrong directory cannot make a new, empty store.",
    )(fn)


def store_is_placed(cfg: Config) -> bool:
    """Whether the store's place is fixed by the config rather than by the directory a command runs in: an absolute
    SQLite path (what ``chatd init`` writes) or a database server's DSN. An admin command then makes a missing store,
    as ``chatd serve`` would, so the first ``chatd users add`` of a new installation works; a relative path would
    make a stray empty store when run from the wrong directory, so that needs ``--create``."""
    from chatd.registry import load

    return bool(load("stores", cfg.store.backend).networked) or Path(cfg.store.path).is_absolute()


def run_with_store(cfg: Config, create: bool, action: Callable[[Store], Awaitable[T]]) -> T:
    """Open the configured store (saying which, on stderr), run ``action``, close it; domain errors become
    ClickExceptions."""
    from chatd.errors import ChatError
    from chatd.registry import BackendError
    from chatd.store import make_store

    async def run() -> T:
        store = make_store(cfg, server=False)
        new = not await store.exists()
        if new and not (create or store_is_placed(cfg)):
            raise click.ClickException(
                f"no chatd database at {store.describe()}: run this where the server runs, pass --config (or "
                "$CHATD_CONFIG, CHATD_STORE_PATH), or add --create to make a new one"
            )
        await store.open()
        click.echo(f"store: {store.describe()}" + (" (new: created with the current schema)" if new else ""), err=True)
        try:
            return await action(store)
        finally:
            await store.close()

    try:
        return asyncio.run(run())
    except ChatError as e:
        raise click.ClickException(e.message) from None
    except BackendError as e:
        raise click.ClickException(str(e)) from None


def read_password(password: str | None, password_stdin: bool) -> str | None:
    """The password from --password or one line of standard input, checked against the one password rule."""
    from chatd.accounts.users import check_password
    from chatd.errors import ChatError

    if password is not None and password_stdin:
        raise click.UsageError("give --password or --password-stdin, not both")
    if password_stdin:
        password = sys.stdin.readline().rstrip("\r\n")
    if password is None:
        return None
    try:
        check_password(password)
    except ChatError as e:
        raise click.ClickException(e.message) from None
    return password


@click.group()
def users() -> None:
    """Manage users directly in the store (works while the server runs)."""
