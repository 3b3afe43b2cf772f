"""The ``chatd`` command line."""

from __future__ import annotations

import asyncio
import sys
import traceback
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from chatd import __version__
from chatd.admin.options import (
    build_config,
    config_option,
    create_option,
    read_password,
    resolve_config_path,
    run_with_store,
    users,
)
from chatd.config import dump_toml, safe_url

if TYPE_CHECKING:
    from chatd.store.base import Store


class ChatdGroup(click.Group):
    """The ``chatd`` group: whatever a command lets escape becomes one or two lines saying what failed, where and
    what to do (:func:`chatd.failures.explain`), and a non-zero exit; ``chatd --debug`` shows the traceback."""

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except click.ClickException as e:
            cause = e.__cause__ or e.__context__  # what a command turned into its one line
            if ctx.params.get("debug") and cause is not None and not isinstance(cause, click.ClickException):
                traceback.print_exception(cause)
            raise
        except (click.exceptions.Exit, click.Abort, SystemExit, KeyboardInterrupt):
            raise
        except Exception as e:
            if ctx.params.get("debug"):
                raise
            from chatd.broker.base import BrokerUnavailable
            from chatd.failures import explain
            from chatd.registry import BackendError
            from chatd.store.base import StoreRefused

            known = (StoreRefused, BrokerUnavailable, BackendError)
            raise click.ClickException(str(e) if isinstance(e, known) else explain(e)) from None


@click.group(cls=ChatdGroup)
@click.version_option(__version__, prog_name="chatd")
@click.option("--debug", is_flag=True, help="Show the traceback of a failure instead of one line about it.")
def cli(debug: bool) -> None:
    """chatd: a self-hosted real-time chat server that never loses an acknowledged message."""


@cli.command()
@config_option
@click.option("--host", help="Address to listen on (server.host).")
@click.option("--port", type=int, help="Port to listen on (server.port; also $PORT).")
@click.option("--dev", is_flag=True, help="Open mode: connect as ?user=NAME with no password. Loopback only.")
@click.option(
    "--log-format", type=click.Choice(["text", "json"]), help="server.log_format: json is one object per line."
)
def serve(config_path: str | None, host: str | None, port: int | None, dev: bool, log_format: str | None) -> None:
    """Run the chat server: WebSocket gateway, REST API and worker in one process.

    \b
    Example:
        chatd serve                      # built-in defaults, http://127.0.0.1:8000
        chatd serve --dev --port 9000    # open mode for a quick local try
        chatd serve -c config/chatd.example.toml
        chatd serve --log-format json 2>> /var/log/chatd.jsonl
    """
    overrides: dict[str, dict[str, Any]] = {}
    if host:
        overrides.setdefault("server", {})["host"] = host
    if port is not None:
        overrides.setdefault("server", {})["port"] = port
    if dev:
        overrides.setdefault("server", {})["dev"] = True
    if log_format:
        overrides.setdefault("server", {})["log_format"] = log_format
    cfg = build_config(config_path, overrides)
    from chatd.server import serve as run

    sys.exit(run(cfg, debug=click.get_current_context().find_root().params.get("debug", False)))


@cli.group()
def config() -> None:
    """Inspect configuration."""


@config.command("check")
@config_option
def config_check(config_path: str | None) -> None:
    """Validate a config and print the effective settings (file + environment).

    \b
    Example:
        chatd config check -c chatd.toml
        CHATD_AUTH_MODE=open chatd config check
    """
    path = resolve_config_path(config_path)
    cfg = build_config(config_path)
    from chatd.server import check_startup

    problem = check_startup(cfg)
    click.echo(f"# effective settings (source: {path or 'built-in defaults'} + environment)")
    click.echo(dump_toml(cfg), nl=False)
    if problem:
        raise click.ClickException(problem)
    click.echo("# ok", err=True)


cli.add_command(users)


@users.command("add")
@config_option
@create_option
@click.argument("name")
@click.option("--admin", is_flag=True, help="Make the user an admin (how the first admin is made).")
@click.option("--password", help="Set a password, so the user can also sign in to the web page.")
@click.option("--password-stdin", is_flag=True, help="Read the password from the first line of standard input.")
def users_add(
    config_path: str | None, create: bool, name: str, admin: bool, password: str | None, password_stdin: bool
) -> None:
    """Create a user and print a new API token for it.

    Without a password the user is token-only: it connects with the printed token but cannot sign in to the web
    page. Passwords follow the same rule as registration on the web.

    \b
    Example:
        chatd users add alice --admin --password-stdin < alice.pass
        websocat "ws://127.0.0.1:8000/ws?token=$(chatd users add bob)"
    """
    cfg = build_config(config_path)
    secret = read_password(password, password_stdin)
    from chatd.accounts.users import Accounts, check_username, hash_password

    async def add(store: Store) -> tuple[str, bool]:
        check_username(name)
        existing = await store.get_user(name)
        if existing is not None:
            raise click.ClickException(
                f"user {existing.name!r} already exists; for a new token: chatd users token {existing.name}"
            )
        record = await store.create_user(name, hash_password(secret) if secret else None, admin=admin)
        return await Accounts(store).issue(record.id), record.admin

    token, is_admin = run_with_store(cfg, create, add)
    click.echo(token)
    kind = "admin" if is_admin else "user"
    how = "with a password" if secret else "token-only (cannot sign in to the web page; add --password-stdin)"
    click.echo(f"created {kind} {name!r}, {how}; the line above is its token (shown once)", err=True)


@users.command("token")
@config_option
@click.argument("name")
def users_token(config_path: str | None, name: str) -> None:
    """Issue a new API token for an existing user (who may have registered on the web) and print it.

    \b
    Example:
        chatd chat --token "$(chatd users token alice)"
    """
    cfg = build_config(config_path)
    from chatd.accounts.users import Accounts

    async def issue(store: Store) -> str:
        user = await store.get_user(name)
        if user is None:
            raise click.ClickException(f"no user {name!r}; create one with: chatd users add {name}")
        return await Accounts(store).issue(user.id)

    click.echo(run_with_store(cfg, False, issue))
    click.echo(f"new token for {name!r} on the line above (shown once)", err=True)


@cli.command()
@click.option("--url", default="ws://127.0.0.1:8000/ws", show_default=True, help="The server's WebSocket URL.")
@click.option("--room", default="lobby", show_default=True, help="Room to join (created if public and new).")
@click.option("--user", help="Open mode: the name to chat as.")
@click.option("--token", envvar="CHATD_TOKEN", help="Token mode: an API token (or $CHATD_TOKEN).")
@click.option(
    "--history", default=20, show_default=True, type=click.IntRange(min=0), help="Recent messages to show on joining."
)
def chat(url: str, room: str, user: str | None, token: str | None, history: int) -> None:
    """Chat from a terminal: lines you type (or pipe in) are sent, messages are printed.

    At the end of input (Ctrl-D, or the end of a piped file) it exits once every line it read is stored. It exits
    non-zero when the server refuses the token or cannot be reached at all.

    \b
    Example:
        chatd chat --user alice                  # against chatd serve --dev
        chatd chat --token "$(chatd users add bob)" --room lobby
        chatd chat --user bot --room news < announcement.txt
    """
    if not (user or token):
        raise click.UsageError("give --user (open mode) or --token (token mode)")
    from chatd.terminal import ChatExit
    from chatd.terminal import chat as run

    try:
        asyncio.run(run(url, room, user, token, history))
    except KeyboardInterrupt:
        pass
    except ChatExit as e:
        raise click.ClickException(str(e)) from None


@cli.group()
def cluster() -> None:
    """Several nodes on this machine, behind nginx (for trying scale-out, and for the tests)."""


@cluster.command("up")
@click.option("--nodes", "-n", default=3, show_default=True, type=click.IntRange(1, 32), help="How many nodes.")
@click.option("--broker", type=click.Choice(["redis", "rabbitmq"]), default="redis", show_default=True)
@click.option("--broker-url", help="Default: the local redis (redis://127.0.0.1:6379/0) or rabbitmq (guest).")
@click.option(
    "--dsn",
    default="postgresql://postgres@127.0.0.1:5432/chatd",
    show_default=True,
    help="PostgreSQL for history; the database is created if missing.",
)
@click.option("--namespace", default="chatd", show_default=True, help="Prefix of the broker's keys and queues.")
@click.option("--port", default=8080, show_default=True, help="Where nginx listens (127.0.0.1).")
@click.option(
    "--dir",
    "workdir",
    type=click.Path(file_okay=False),
    default="cluster-run",
    show_default=True,
    help="Configs and logs of the nodes and nginx.",
)
@click.option("--dev", is_flag=True, help="Open mode (connect as ?user=NAME), as chatd serve --dev.")
def cluster_up(
    nodes: int, broker: str, broker_url: str | None, dsn: str, namespace: str, port: int, workdir: str, dev: bool
) -> None:
    """Start NODES chatd nodes sharing a broker and PostgreSQL, and nginx in front; Ctrl-C stops them all. A node
    that dies is reported and started again.

    Each node's DIR/nodeN/chatd.toml is complete (server.node_id, port, [store] dsn, [broker] backend, url and
    namespace, the settings CHATD_SERVER_NODE_ID, CHATD_STORE_DSN, CHATD_BROKER_URL… would give), so the operator's
    commands pointed at one act on the whole cluster. Logs are in DIR/nodeN/server.log.

    \b
    Example:
        chatd cluster up --nodes 3 --broker redis
        chatd cluster up -n 2 --broker rabbitmq --dev --port 9000
        chatd users add dave -c cluster-run/node1/chatd.toml      # in another terminal
    """
    import signal
    import threading

    from chatd.deploy.local import LocalCluster
    from chatd.deploy.procs import ServerFailed

    settings: dict[str, dict[str, Any]] = {"auth": {"mode": "open"}} if dev else {}
    run = LocalCluster(Path(workdir).resolve(), nodes, broker, broker_url, dsn, namespace, port, settings)
    click.echo(f"starting {nodes} nodes ({broker}, PostgreSQL {safe_url(dsn)}) and nginx …", err=True)
    try:
        run.start()
    except ServerFailed as e:
        raise click.ClickException(e.summary) from e
    except Exception as e:  # noqa: BLE001 - nginx missing or refusing its config, the database unreachable
        raise click.ClickException(str(e)) from e
    for i, node in enumerate(run.nodes, 1):
        assert node.proc is not None
        click.echo(f"  node{i}: {node.http}  (pid {node.proc.pid}, config: {node.config_path})", err=True)
    click.echo(f"chatd is up at {run.http}  (WebSocket {run.ws}); Ctrl-C stops everything")
    click.echo(f"  operator commands: chatd users add NAME -c {run.nodes[0].config_path}", err=True)
    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    run.watch(stop, lambda line: click.echo(line, err=True))
    click.echo("stopping: draining the nodes …", err=True)
    run.stop()


def _add_optional_commands() -> None:
    """Commands that live in their own packages, so ``chatd serve`` never imports them."""
    from chatd.admin import register

    register(cli)
    try:
        from chatd.bench.cli import bench
    except ModuleNotFoundError as e:
        if e.name and e.name.startswith("chatd.bench"):
            return
        raise
    cli.add_command(bench)


_add_optional_commands()


def main() -> None:
    cli(prog_name="chatd")


if __name__ == "__main__":
    main()
