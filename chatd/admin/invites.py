"""``chatd invites create | list``: codes for ``auth.registration = "invite"``."""

from __future__ import annotations

import time

import click

from chatd.admin.options import build_config, config_option, run_with_store
from chatd.admin.users import when
from chatd.config import registration_mode
from chatd.store.base import InviteRecord, Store


@click.group()
def invites() -> None:
    """Invite codes: with auth.registration = "invite", registering needs one (each makes one account)."""


@invites.command("create")
@config_option
@click.option("--count", "-n", default=1, show_default=True, type=click.IntRange(1, 1000), help="How many codes.")
@click.option("--days", default=7.0, show_default=True, type=click.FloatRange(min=0, min_open=True), help="Valid for.")
@click.option("--by", "created_by", help="The user recorded as who made them (default: none, an operator).")
def invites_create(config_path: str | None, count: int, days: float, created_by: str | None) -> None:
    """Make invite codes and print them, one a line (shown once: only their hashes are stored).

    \b
    Example:
        chatd invites create --count 5 --days 2
    """
    cfg = build_config(config_path)
    from chatd.accounts.users import make_invites

    expires = int((time.time() + days * 86400) * 1000)

    async def act(store: Store) -> list[str]:
        maker = await store.get_user(created_by) if created_by is not None else None
        if created_by is not None and maker is None:
            raise click.ClickException(f"no user {created_by!r} (chatd users list shows them)")
        return await make_invites(store, count, maker.id if maker else None, expires)

    for code in run_with_store(cfg, False, act):
        click.echo(code)
    click.echo(f"{count} invite code(s), valid until {when(expires)}", err=True)
    if registration_mode(cfg.auth) != "invite":
        click.echo(
            f'note: auth.registration is "{registration_mode(cfg.auth)}"; set it to "invite" for codes to be needed',
            err=True,
        )


@invites.command("list")
@config_option
def invites_list(config_path: str | None) -> None:
    """List invites: id, who made it, until when it is valid, who used it.

    \b
    Example:
        chatd invites list
    """
    cfg = build_config(config_path)
    rows: list[InviteRecord] = run_with_store(cfg, False, lambda store: store.invites())
    now = time.time() * 1000
    click.echo(f"{'ID':<14} {'BY':<16} {'EXPIRES':<21} STATE")
    for r in rows:
        state = f"used by {r.used_by}" if r.used_by else "expired" if r.expires <= now else "open"
        click.echo(f"{r.id:<14} {r.created_by or '(operator)':<16} {when(r.expires):<21} {state}")
