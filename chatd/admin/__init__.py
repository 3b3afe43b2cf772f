"""Commands for running a deployment: user and room administration, backups, export/import, set-up checks.

They live here rather than in ``chatd.cli`` so that module stays the core (serve, users add, chat, cluster).
"""

from __future__ import annotations

import click


def register(cli: click.Group) -> None:
    """Attach the admin commands to ``cli`` (the ``users`` group gains its subcommands on import)."""
    from chatd.admin import users  # noqa: F401 - registers onto the users group
    from chatd.admin.bots import bots
    from chatd.admin.data import backup, export_cmd, import_cmd, restore
    from chatd.admin.hooks import hooks
    from chatd.admin.invites import invites
    from chatd.admin.outhooks import webhooks
    from chatd.admin.rooms import rooms
    from chatd.admin.setup import doctor, init, migrate

    for command in (
        bots,
        hooks,
        rooms,
        invites,
        webhooks,
        backup,
        restore,
        export_cmd,
        import_cmd,
        init,
        migrate,
        doctor,
    ):
        cli.add_command(command)
