"""``chatd users list | disable | enable | promote | rename | reset-password | tokens | revoke`` (``add`` and
``token`` are in ``chatd.cli``; the group itself in ``chatd.admin.options``).

Users are found by name (any spelling) and then acted on by id: the name is only how an operator points at them."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import Any

import click

from chatd.admin.control import node_url, post_events
from chatd.admin.options import (
    build_config,
    config_option,
    json_option,
    print_listing,
    read_password,
    run_with_store,
    users,
)
from chatd.config import Config
from chatd.core.cluster import KICK_TOKEN, KICK_USER, USER_GONE, USER_RENAMED
from chatd.signing import control_key, deployment_key
from chatd.store.base import Store, TokenRecord, UserInfo


def server_option(fn: Callable[..., Any]) -> Callable[..., Any]:
    return click.option(
        "--server",
        "server_url",
        help="A running node to tell, which tells every other node (default: server.host and server.port from the "
        "config).",
    )(fn)


def when(ms: int | None) -> str:
    if not ms:
        return "never"
    return time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(ms / 1000)) + "Z"


async def tell_nodes(cfg: Config, store: Store, server_url: str | None, events: list[list[str]]) -> None:
    """Ask a running node to apply ``events`` on every node; a warning (not a failure) when none answers, since the
    store change already stops new sessions."""
    base = await deployment_key(cfg.auth.secret, store)
    if base is None:
        click.echo("warning: this store keeps no signing key; set auth.secret to reach running nodes", err=True)
        return
    url = server_url or node_url(cfg.server.host, cfg.server.port)
    problem = await asyncio.to_thread(post_events, url, control_key(base), events)
    if problem:
        click.echo(
            f"warning: {problem}. The change is stored and new sessions follow it; sockets already open stay open "
            "until they reconnect (pass --server URL of a running node to close them now)",
            err=True,
        )
    else:
        click.echo(f"told the nodes through {url}", err=True)


async def find_user(store: Store, name: str) -> UserInfo:
    found = await store.user_info(name)
    if not found:
        raise click.ClickException(f"no user {name!r} (chatd users list shows them)")
    return found[0]


@users.command("list")
@config_option
@json_option
def users_list(config_path: str | None, as_json: bool) -> None:
    """List every user: role, whether disabled, password or token-only, how many tokens.

    \b
    Example:
        chatd users list
        chatd users list --json | jq -r 'select(.disabled) | .name'
    """
    cfg = build_config(config_path)
    print_listing(
        run_with_store(cfg, False, lambda store: store.user_info()),
        as_json,
        f"{'ID':>6} {'NAME':<24} {'ROLE':<6} {'STATE':<9} {'SIGN-IN':<9} {'TOKENS':>6}  CREATED",
        lambda u: (
            f"{u.id:>6} {u.name:<24} {'admin' if u.admin else 'bot' if u.bot else 'user':<6} "
            f"{'disabled' if u.disabled else 'active':<9} {'password' if u.has_password else 'token':<9} "
            f"{u.tokens:>6}  {when(u.created)}"
        ),
    )


def _set_disabled(config_path: str | None, server_url: str | None, name: str, disabled: bool) -> None:
    cfg = build_config(config_path)

    async def act(store: Store) -> str:
        user = await find_user(store, name)
        await store.set_user(user.id, disabled=disabled)
        if disabled:
            await tell_nodes(cfg, store, server_url, [[USER_GONE, str(user.id)]])
        return user.name

    stored = run_with_store(cfg, False, act)
    click.echo(f"{'disabled' if disabled else 'enabled'} {stored!r}")


@users.command("disable")
@config_option
@server_option
@click.argument("name")
def users_disable(config_path: str | None, server_url: str | None, name: str) -> None:
    """Disable a user: their tokens stop working, they cannot sign in, and their open sockets close (code 4401) on
    every node. Their messages stay. Undo with ``chatd users enable``.

    \b
    Example:
        chatd users disable mallory
        chatd users disable mallory --server http://10.0.0.5:8000
    """
    _set_disabled(config_path, server_url, name, True)


@users.command("enable")
@config_option
@click.argument("name")
def users_enable(config_path: str | None, name: str) -> None:
    """Enable a disabled user again; the tokens they had work again.

    \b
    Example:
        chatd users enable mallory
    """
    _set_disabled(config_path, None, name, False)


@users.command("promote")
@config_option
@click.argument("name")
@click.option("--demote", is_flag=True, help="Take the admin role away instead.")
def users_promote(config_path: str | None, name: str, demote: bool) -> None:
    """Make a user an admin (or, with --demote, a plain user). Takes effect on their next request or connection.

    \b
    Example:
        chatd users promote alice
        chatd users promote bob --demote
    """
    cfg = build_config(config_path)

    async def act(store: Store) -> str:
        user = await find_user(store, name)
        await store.set_user(user.id, admin=not demote)
        return user.name

    stored = run_with_store(cfg, False, act)
    click.echo(f"{stored!r} is {'no longer an admin' if demote else 'an admin'}")


@users.command("reset-password")
@config_option
@server_option
@click.argument("name")
@click.option("--password-stdin", is_flag=True, help="Read the new password from the first line of standard input.")
@click.option("--token-only", is_flag=True, help="Remove the password: the user can then only use tokens.")
@click.option("--keep-tokens", is_flag=True, help="Do not revoke the user's tokens (by default all are revoked).")
def users_reset_password(
    config_path: str | None,
    server_url: str | None,
    name: str,
    password_stdin: bool,
    token_only: bool,
    keep_tokens: bool,
) -> None:
    """Set a new password for a user. Unless --keep-tokens, every token of theirs is revoked and their open
    sockets close on every node, since a reset usually means the old credentials leaked.

    \b
    Example:
        chatd users reset-password alice --password-stdin < new.pass
        pwgen -s 20 1 | tee /dev/stderr | chatd users reset-password bob --password-stdin
    """
    if password_stdin == token_only:
        raise click.UsageError("give --password-stdin (a new password) or --token-only (no password)")
    secret = read_password(None, password_stdin)
    cfg = build_config(config_path)
    from chatd.accounts.users import hash_password

    async def act(store: Store) -> tuple[str, int]:
        user = await find_user(store, name)
        if user.bot and secret:
            raise click.ClickException(f"{user.name!r} is a bot: bots cannot sign in with a password")
        await store.set_password_hash(user.id, hash_password(secret) if secret else None)
        revoked = 0
        if not keep_tokens:
            for token in await store.tokens(user=user.id):
                revoked += await store.revoke_token(token.hash)
            await tell_nodes(cfg, store, server_url, [[KICK_USER, str(user.id)]])
        return user.name, revoked

    stored, revoked = run_with_store(cfg, False, act)
    what = "removed the password of" if token_only else "set a new password for"
    click.echo(f"{what} {stored!r}; revoked {revoked} token(s)")


@users.command("tokens")
@config_option
@click.argument("name")
def users_tokens(config_path: str | None, name: str) -> None:
    """List a user's tokens: id (for chatd users revoke), when issued, when last used. The tokens themselves are
    never stored, so they cannot be shown.

    \b
    Example:
        chatd users tokens alice
    """
    cfg = build_config(config_path)

    async def act(store: Store) -> tuple[str, list[TokenRecord]]:
        user = await find_user(store, name)
        return user.name, await store.tokens(user=user.id)

    stored, tokens = run_with_store(cfg, False, act)
    ttl = cfg.auth.token_ttl
    click.echo(f"{'ID':<14} {'ISSUED':<21} {'LAST USED':<21} {'EXPIRES' if ttl else ''}".rstrip())
    for t in tokens:
        expires = f" {when(int(t.created + ttl * 1000))}" if ttl else ""
        click.echo(f"{t.id:<14} {when(t.created):<21} {when(t.last_used):<21}{expires}".rstrip())
    click.echo(f"{len(tokens)} token(s) of {stored!r}", err=True)


@users.command("revoke")
@config_option
@server_option
@click.argument("token_id")
def users_revoke(config_path: str | None, server_url: str | None, token_id: str) -> None:
    """Revoke one token by the id ``chatd users tokens`` shows (or a longer start of its hash); sockets opened with
    it close (code 4401) on every node.

    \b
    Example:
        chatd users tokens alice
        chatd users revoke 3f9a0c1b2d4e
    """
    cfg = build_config(config_path)
    prefix = token_id.strip().lower()
    if len(prefix) < 8:
        raise click.UsageError("give at least 8 characters of the token id")

    async def act(store: Store) -> TokenRecord:
        found = await store.tokens(id_prefix=prefix)
        if not found:
            raise click.ClickException(f"no token with id {token_id!r} (chatd users tokens NAME lists them)")
        if len(found) > 1:
            raise click.ClickException(f"{len(found)} tokens start with {token_id!r}; give more of the id")
        await store.revoke_token(found[0].hash)
        await tell_nodes(cfg, store, server_url, [[KICK_TOKEN, str(found[0].user), found[0].hash]])
        return found[0]

    token = run_with_store(cfg, False, act)
    click.echo(f"revoked token {token.id} of {token.name!r}")


@users.command("rename")
@config_option
@server_option
@click.argument("old")
@click.argument("new")
def users_rename(config_path: str | None, server_url: str | None, old: str, new: str) -> None:
    """Give a user a new name. They stay the same user: same id, rooms, direct conversations, messages (shown
    under the new name, old ones too), reactions, read state, mentions, uploads and tokens, so they stay signed in.
    Their open sockets stay open and learn the new name, and every page is told to show it (a ``user`` frame), on
    every node. The old name is free for someone else, who gets none of it. Refused if NEW is taken (ignoring case)
    or not a valid name.

    \b
    Example:
        chatd users rename bob robert
        chatd users rename bob Bob --server http://10.0.0.5:8000
    """
    cfg = build_config(config_path)
    from chatd.accounts.users import check_username

    async def act(store: Store) -> tuple[str, int]:
        user = await find_user(store, old)
        check_username(new)
        was = await store.rename_user(user.id, new)
        await tell_nodes(cfg, store, server_url, [[USER_RENAMED, str(user.id), new, was]])
        return was, user.id

    was, uid = run_with_store(cfg, False, act)
    click.echo(f"renamed {was!r} to {new!r} (user id {uid})")
