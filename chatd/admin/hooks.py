"""``chatd hooks add | list | revoke``: a room's incoming webhooks (``chatd.features.hooks``)."""

from __future__ import annotations

import click

from chatd.admin.control import node_url
from chatd.admin.options import build_config, config_option, run_with_store
from chatd.admin.users import when
from chatd.store.base import HookRecord, Store


@click.group()
def hooks() -> None:
    """Manage incoming webhooks: URLs that post into a room (works while the server runs)."""


@hooks.command("add")
@config_option
@click.argument("room")
@click.option("--name", help="The name of the hook's bot user (default: hook- and 6 hex digits).")
@click.option(
    "--base-url",
    help="How the tool reaches chatd, for the printed URL (default: server.host and server.port from the config; "
    "behind nginx give the public address).",
)
def hooks_add(config_path: str | None, room: str, name: str | None, base_url: str | None) -> None:
    """Make an incoming webhook for ROOM and print its URL (shown once: it holds the secret).

    The hook posts as a bot user of its own, made a member of ROOM. POST Slack-compatible JSON to the URL.

    \b
    Example:
        URL="$(chatd hooks add ops --name ci --base-url https://chat.example.com)"
        curl -fsS -H 'Content-Type: application/json' -d '{"text": "build 42 passed"}' "$URL"
    """
    cfg = build_config(config_path)
    from chatd.features.hooks import create_hook, hook_path

    async def act(store: Store) -> tuple[HookRecord, str]:
        return await create_hook(store, room, name, None)

    hook, secret = run_with_store(cfg, False, act)
    base = (base_url or node_url(cfg.server.host, cfg.server.port)).rstrip("/")
    click.echo(base + hook_path(hook, secret))
    click.echo(
        f"hook {hook.id} posts into {room!r} as bot {hook.name!r}; the line above is its URL (shown once)", err=True
    )


@hooks.command("list")
@config_option
@click.argument("room", required=False)
def hooks_list(config_path: str | None, room: str | None) -> None:
    """List incoming webhooks (of ROOM, or all): id, room, the bot they post as, when made. Secrets are not stored,
    so URLs cannot be shown again; revoke and add to get a new one.

    \b
    Example:
        chatd hooks list ops
    """
    cfg = build_config(config_path)
    found = run_with_store(cfg, False, lambda store: store.hooks(room))
    click.echo(f"{'ID':<18} {'ROOM':<32} {'BOT':<24} CREATED")
    for h in found:
        click.echo(f"{h.id:<18} {h.room:<32} {h.name:<24} {when(h.created)}")
    click.echo(f"{len(found)} hook(s)", err=True)


@hooks.command("revoke")
@config_option
@click.argument("hook_id")
def hooks_revoke(config_path: str | None, hook_id: str) -> None:
    """Revoke a webhook: every node refuses its URL from the next request on (each request reads the store). Its
    bot is removed; the messages it posted stay, under its name.

    \b
    Example:
        chatd hooks revoke 3f9a0c1b2d4e5f60
    """
    cfg = build_config(config_path)
    from chatd.features.hooks import revoke_hook

    async def act(store: Store) -> HookRecord:
        hook = await store.get_hook(hook_id)
        if hook is None:
            raise click.ClickException(f"no hook {hook_id!r} (chatd hooks list shows them)")
        await revoke_hook(store, hook)
        return hook

    hook = run_with_store(cfg, False, act)
    click.echo(f"revoked hook {hook.id} of {hook.room!r}")
