"""``chatd rooms list | create | archive | unarchive | delete | members | new-epochs``."""

from __future__ import annotations

import click

from chatd.admin.options import build_config, config_option, json_option, print_listing, run_with_store
from chatd.admin.users import server_option, tell_nodes, when
from chatd.core.cluster import MEMBER_ADDED, MEMBER_REMOVED, ROOM_ARCHIVED, ROOM_DELETED
from chatd.features.rooms import Purged, purge_room
from chatd.store.base import RoomRecord, Store


@click.group()
def rooms() -> None:
    """Manage rooms directly in the store (works while the server runs)."""


def no_room(name: str) -> click.ClickException:
    return click.ClickException(f"no room {name!r} (chatd rooms list shows them)")


async def find_room(store: Store, name: str) -> RoomRecord:
    room = await store.get_room(name)
    if room is None:
        raise no_room(name)
    return room


@rooms.command("list")
@config_option
@json_option
def rooms_list(config_path: str | None, as_json: bool) -> None:
    """List every room, private ones included: members, messages (last seq), archived or not.

    \b
    Example:
        chatd rooms list
        chatd rooms list --json | jq -r 'select(.archived) | .name'
    """
    cfg = build_config(config_path)
    print_listing(
        run_with_store(cfg, False, lambda store: store.admin_rooms()),
        as_json,
        f"{'NAME':<32} {'KIND':<8} {'STATE':<9} {'MEMBERS':>7} {'LAST SEQ':>9}  CREATED BY",
        lambda r: (
            f"{r.name:<32} {'private' if r.private else 'public':<8} {'archived' if r.archived else 'open':<9} "
            f"{r.members:>7} {r.last_seq:>9}  {r.created_by} {when(r.created)}"
        ),
    )


@rooms.command("create")
@config_option
@click.argument("name")
@click.option("--owner", required=True, help="The user who creates it (its first member; may remove members).")
@click.option("--private", is_flag=True, help="Members only: others neither see nor join it.")
def rooms_create(config_path: str | None, name: str, owner: str, private: bool) -> None:
    """Create a room with OWNER as its first member.

    \b
    Example:
        chatd rooms create announcements --owner alice
        chatd rooms create staff --owner alice --private
    """
    cfg = build_config(config_path)
    from chatd.features.rooms import check_room_name

    async def act(store: Store) -> str:
        check_room_name(name)
        user = await store.get_user(owner)
        if user is None:
            raise click.ClickException(f"no user {owner!r}")
        await store.create_room(name, private, user.id)
        return user.name

    stored = run_with_store(cfg, False, act)
    click.echo(f"created {'private' if private else 'public'} room {name!r} owned by {stored!r}")


def _archive(config_path: str | None, server_url: str | None, name: str, archived: bool) -> None:
    cfg = build_config(config_path)

    async def act(store: Store) -> None:
        if not await store.set_room_archived(name, archived):
            raise no_room(name)
        await tell_nodes(cfg, store, server_url, [[ROOM_ARCHIVED, name]])

    run_with_store(cfg, False, act)
    click.echo(f"{'archived' if archived else 'unarchived'} {name!r}")


@rooms.command("archive")
@config_option
@server_option
@click.argument("name")
def rooms_archive(config_path: str | None, server_url: str | None, name: str) -> None:
    """Make a room read-only: its history stays readable, sends get error ``archived`` (on every node at once:
    the store refuses them).

    \b
    Example:
        chatd rooms archive project-2023
    """
    _archive(config_path, server_url, name, True)


@rooms.command("unarchive")
@config_option
@server_option
@click.argument("name")
def rooms_unarchive(config_path: str | None, server_url: str | None, name: str) -> None:
    """Open an archived room for sending again.

    \b
    Example:
        chatd rooms unarchive project-2023
    """
    _archive(config_path, server_url, name, False)


@rooms.command("new-epochs")
@config_option
def rooms_new_epochs(config_path: str | None) -> None:
    """Give every room's stream a new epoch, after restoring the store by other means than chatd restore (a copied
    SQLite file, pg_restore). Clients then reload each room once instead of resuming from positions the restored
    history may not have. chatd restore and chatd import do this themselves. Works while the server runs.

    \b
    Example:
        pg_restore --clean -d chatd chatd.dump && chatd rooms new-epochs
    """
    cfg = build_config(config_path)
    count = run_with_store(cfg, False, lambda store: store.renew_epochs())
    click.echo(f"{count} rooms have a new epoch: clients reload them once")


@rooms.command("delete")
@config_option
@server_option
@click.argument("name")
@click.option("--yes", is_flag=True, help="Really delete: the room, its members, every message and attachment.")
def rooms_delete(config_path: str | None, server_url: str | None, name: str, yes: bool) -> None:
    """Delete a room with all its history and attachments, for good (take a backup first). Members following it
    on any node are told they left it. Archive instead to keep the history.

    \b
    Example:
        chatd backup before-delete.db && chatd rooms delete spam-room --yes
    """
    if not yes:
        raise click.UsageError(f"this deletes {name!r} and every message in it for good; add --yes to do it")
    cfg = build_config(config_path)

    async def act(store: Store) -> Purged:
        purged = await purge_room(store, cfg.uploads.dir, name)
        if purged is None:
            raise no_room(name)
        private = "private" if purged.record.private else "public"
        members = [str(m.id) for m in purged.members] if purged.record.private else []
        await tell_nodes(cfg, store, server_url, [[ROOM_DELETED, name, private, *members]])
        return purged

    purged = run_with_store(cfg, False, act)
    click.echo(f"deleted {name!r} (last seq {purged.record.last_seq}) and {purged.uploads} attachment(s)")


@rooms.command("members")
@config_option
@server_option
@click.argument("name")
@click.option("--add", "add", multiple=True, metavar="USER", help="Add a member (repeatable).")
@click.option("--remove", "remove", multiple=True, metavar="USER", help="Remove a member (repeatable).")
def rooms_members(
    config_path: str | None, server_url: str | None, name: str, add: tuple[str, ...], remove: tuple[str, ...]
) -> None:
    """List a room's members, after adding or removing some. A removed member's sockets stop following the room
    on every node.

    \b
    Example:
        chatd rooms members staff
        chatd rooms members staff --add carol --remove mallory
    """
    cfg = build_config(config_path)

    async def act(store: Store) -> list[str]:
        await find_room(store, name)
        events = []
        for who, adding in [(u, True) for u in add] + [(u, False) for u in remove]:
            user = await store.get_user(who)
            if user is None:
                raise click.ClickException(f"no user {who!r}")
            if adding:
                await store.add_member(name, user.id)
                events.append([MEMBER_ADDED, name, str(user.id)])
            elif await store.remove_member(name, user.id):
                events.append([MEMBER_REMOVED, name, str(user.id)])
        if events:
            await tell_nodes(cfg, store, server_url, events)
        return [m.name for m in await store.members(name)]

    for member in run_with_store(cfg, False, act):
        click.echo(member)
