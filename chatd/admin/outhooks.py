"""``chatd webhooks list | add | remove | enable``: a room's outgoing webhooks, straight in the store.

Nodes read webhooks from the store at every poll, so what these commands change takes effect on every node within
``webhooks.poll_interval`` without telling them.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

import click

from chatd.admin.options import build_config, config_option, json_option, print_listing, run_with_store
from chatd.admin.users import when
from chatd.features.outhooks import manage
from chatd.features.outhooks.signing import KINDS
from chatd.store.base import Store


@click.group()
def webhooks() -> None:
    """Outgoing webhooks: URLs that get a room's events, signed (docs/integrations.md)."""


@webhooks.command("list")
@config_option
@click.argument("room", required=False)
@json_option
def webhooks_list(config_path: str | None, room: str | None, as_json: bool) -> None:
    """List webhooks (of ROOM, or all) with their state: active, retrying or failing, and the last error.

    \b
    Example:
        chatd webhooks list
        chatd webhooks list --json | jq 'select(.state == "failing")'
    """
    cfg = build_config(config_path)

    async def act(store: Store) -> list[manage.WebhookView]:
        return await manage.views(store, await store.webhooks(room))

    def line(h: manage.WebhookView) -> str:
        text = f"{h.id:>5} {h.room:<20} {h.state:<9} {h.behind:>6} {h.delivered:>7} {h.attempts:>5}  {h.url}"
        if h.last_error:
            text += f"\n{'':>57}{h.last_error} (at {when(h.last_attempt)})"
        return text

    header = f"{'ID':>5} {'ROOM':<20} {'STATE':<9} {'BEHIND':>6} {'SENT':>7} {'TRIES':>5}  URL / LAST ERROR"
    print_listing(run_with_store(cfg, False, act), as_json, header, line)


@webhooks.command("add")
@config_option
@click.argument("room")
@click.argument("url")
@click.option(
    "--events",
    default="",
    help=f"Comma-separated kinds to POST, of: {', '.join(KINDS)} (default: all).",
)
def webhooks_add(config_path: str | None, room: str, url: str, events: str) -> None:
    """Subscribe URL to ROOM's events from now on. Prints the id and the signing secret (shown only now).

    \b
    Example:
        chatd webhooks add general https://ci.example.com/chatd
        chatd webhooks add general https://bot.example.com/in --events message,edit
    """
    cfg = build_config(config_path)

    async def act(store: Store) -> manage.NewWebhook:
        return await manage.add(store, cfg.webhooks, room, url, events.split(","), None)

    made = run_with_store(cfg, False, act)
    click.echo(f"webhook {made.id} on {made.room} → {made.url} ({', '.join(made.events)})")
    click.echo(f"secret: {made.secret}")
    click.echo("keep the secret: the receiver checks X-Chatd-Signature with it, and it is not shown again", err=True)


@webhooks.command("remove")
@config_option
@click.argument("hook_id", type=int)
def webhooks_remove(config_path: str | None, hook_id: int) -> None:
    """Remove a webhook: no further POSTs (one in flight may still arrive).

    \b
    Example:
        chatd webhooks remove 3
    """
    _on_webhook(config_path, hook_id, lambda store: store.delete_webhook(hook_id))
    click.echo(f"removed webhook {hook_id}")


@webhooks.command("enable")
@config_option
@click.argument("hook_id", type=int)
def webhooks_enable(config_path: str | None, hook_id: int) -> None:
    """Start a failing webhook again (or retry a waiting one now), from the event it stopped at.

    \b
    Example:
        chatd webhooks enable 3
    """
    _on_webhook(config_path, hook_id, lambda store: store.enable_webhook(hook_id))
    click.echo(f"webhook {hook_id} enabled: delivery goes on from where it stopped")


def _on_webhook(config_path: str | None, hook_id: int, act: Callable[[Store], Awaitable[bool]]) -> None:
    """Run ``act`` on the configured store; it answers whether webhook ``hook_id`` was there."""
    if not run_with_store(build_config(config_path), False, act):
        raise click.ClickException(f"no webhook {hook_id} (chatd webhooks list shows them)")
