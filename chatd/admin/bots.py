"""``chatd bots add | token | list | remove``: bot accounts and their scoped tokens (``chatd.rules.bots``)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import click

from chatd.admin.options import build_config, config_option, run_with_store
from chatd.admin.users import find_user, server_option, tell_nodes, when
from chatd.core.cluster import USER_GONE
from chatd.store.base import Store, TokenRecord, UserInfo


@click.group()
def bots() -> None:
    """Manage bot accounts: users that cannot sign in and act with scoped tokens (works while the server runs)."""


def scope_options(fn: Callable[..., Any]) -> Callable[..., Any]:
    fn = click.option(
        "--action",
        "actions",
        multiple=True,
        type=click.Choice(["send", "read", "react"]),
        help="What the token may do (repeat; default: send, read and react).",
    )(fn)
    return click.option(
        "--room",
        "rooms",
        multiple=True,
        help="A room the token may act in (repeat); the bot is made a member of it. '*': any room the bot is a "
        "member of.",
    )(fn)


async def _issue(store: Store, name: str, rooms: tuple[str, ...], actions: tuple[str, ...]) -> str:
    from chatd.accounts.users import Accounts
    from chatd.rules.bots import make_scope

    bot = await store.get_user(name)
    if bot is None or not bot.bot:
        raise click.ClickException(f"no bot {name!r} (chatd bots list shows them)")
    return await Accounts(store).issue_scoped(bot, make_scope(list(rooms), list(actions)))


@bots.command("add")
@config_option
@click.argument("name")
@scope_options
def bots_add(config_path: str | None, name: str, rooms: tuple[str, ...], actions: tuple[str, ...]) -> None:
    """Create a bot. With --room, also issue a token scoped to those rooms and actions, and print it.

    A bot has no password and cannot sign in; the page shows it with a bot badge.

    \b
    Example:
        chatd bots add deploy-bot --room ops --action send
        chatd bots add helper --room '*' --action read --action react
    """
    cfg = build_config(config_path)
    from chatd.accounts.users import Accounts

    async def act(store: Store) -> str | None:
        await Accounts(store).create_bot(name)
        return await _issue(store, name, rooms, actions) if rooms else None

    token = run_with_store(cfg, False, act)
    if token is None:
        click.echo(f"created bot {name!r}; issue a token with: chatd bots token {name} --room ROOM", err=True)
        return
    click.echo(token)
    click.echo(f"created bot {name!r}; the line above is its token (shown once)", err=True)


@bots.command("token")
@config_option
@click.argument("name")
@scope_options
def bots_token(config_path: str | None, name: str, rooms: tuple[str, ...], actions: tuple[str, ...]) -> None:
    """Issue a new token for a bot, scoped to rooms and actions, and print it. Revoke one with chatd users revoke.

    \b
    Example:
        export CHATD_TOKEN="$(chatd bots token deploy-bot --room ops --room releases --action send)"
    """
    if not rooms:
        raise click.UsageError("give one or more --room (or --room '*')")
    cfg = build_config(config_path)
    click.echo(run_with_store(cfg, False, lambda store: _issue(store, name, rooms, actions)))
    click.echo(f"new token for bot {name!r} on the line above (shown once)", err=True)


@bots.command("list")
@config_option
def bots_list(config_path: str | None) -> None:
    """List bots with their tokens: id (for chatd users revoke), scope, when issued and last used.

    \b
    Example:
        chatd bots list
    """
    from chatd.rules.bots import decode_scope

    cfg = build_config(config_path)

    async def act(store: Store) -> list[tuple[UserInfo, list[TokenRecord]]]:
        return [(u, await store.tokens(user=u.id)) for u in await store.user_info() if u.bot]

    found = run_with_store(cfg, False, act)
    click.echo(f"{'ID':>6} {'BOT':<24} {'TOKEN':<14} {'SCOPE':<40} LAST USED")
    for user, tokens in found:
        if not tokens:
            click.echo(f"{user.id:>6} {user.name:<24} {'-':<14} {'-':<40} -")
        for t in tokens:
            scope = decode_scope(t.scopes).describe() if t.scopes else "unscoped (all it may do)"
            click.echo(f"{user.id:>6} {user.name:<24} {t.id:<14} {scope:<40} {when(t.last_used)}")
    click.echo(f"{len(found)} bot(s)", err=True)


@bots.command("remove")
@config_option
@server_option
@click.argument("name")
def bots_remove(config_path: str | None, server_url: str | None, name: str) -> None:
    """Delete a bot: its tokens and hooks stop working and its sockets close on every node; its messages stay,
    under its name.

    \b
    Example:
        chatd bots remove deploy-bot
    """
    cfg = build_config(config_path)

    async def act(store: Store) -> str:
        bot = await find_user(store, name)
        if not bot.bot:
            raise click.ClickException(f"{bot.name!r} is not a bot (chatd users list shows people)")
        await store.delete_user(bot.id)
        await tell_nodes(cfg, store, server_url, [[USER_GONE, str(bot.id)]])
        return bot.name

    click.echo(f"removed bot {run_with_store(cfg, False, act)!r}")
