"""``chatd backup`` / ``chatd restore`` (SQLite files) and ``chatd export`` / ``chatd import`` (JSON Lines between
any two stores).

A backup is SQLite's online backup API: a consistent copy of the database as of one moment, taken while the
server runs (WAL readers do not block the writer, and the copy includes what is committed in ``-wal``). A restore
copies a backup back through the same API while holding the server's lock file, so no server can be using the
database meanwhile; the database it replaces is kept next to it. A restored database is a new incarnation of every
room's history: each room gets a new epoch, so a client that had seen past the backup (or anything written after
it) is told to reload the room instead of resuming into a history that is not the one it saw (``chatd.core.feed``).

An export is one JSON object per line: a header, then every user (with its id; deleted users as tombstones), token
(its hash), room, member, message (with its seq, client_id and timestamp), reaction, upload record, read position,
mention, invite and single sign-on link, each ``{"kind": …, <columns>}``, in a stable order, so two exports of the
same data are byte-identical whichever store they came from. Users are referred to by id everywhere (format 2). An
import needs an empty store and keeps every value, ids included, so a deployment moves from SQLite to PostgreSQL (or
back) with seqs, idempotency keys, tokens and identities intact. Epochs are not exported: an export may be older than
what clients saw, so an imported room gets a new epoch and clients reload it once (``joined`` with ``reset``) instead
of resuming.

An export made before user ids (format 1, names everywhere) is imported through a scratch SQLite database: its rows
go in with the schema they were made with, migration ``012_user_ids`` turns names into ids there exactly as it does
for a database (``chatd.store.legacy``), and the result is imported like a format-2 export.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import os
import sqlite3
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any

import click
import msgspec

from chatd.admin.options import build_config, config_option, create_option, run_with_store
from chatd.config import Config
from chatd.failures import path_problem
from chatd.store.base import EXPORT_COLUMNS, EXPORT_KINDS, LATER_COLUMNS, Store, import_value

FORMAT = 2
LEGACY_FORMAT = 1  # names instead of user ids
HEADER = {"kind": "chatd-export", "format": FORMAT}
# The columns of a format-1 export, as the schema before migration 012 names them: users without id and tombstone
# flag, messages with their reactions (and a reaction event's users) as JSON, no reaction, invite, sso_link or hook
# rows, and none of the columns added to format 2 later (``LATER_COLUMNS``).
LEGACY_COLUMNS: dict[str, tuple[str, ...]] = {
    kind: tuple(
        c
        for c in {
            "user": ("name", "password_hash", "admin", "bot", "created", "disabled"),
            "message": (*EXPORT_COLUMNS["message"], "reactions", "data"),
        }.get(kind, EXPORT_COLUMNS[kind])
        if c not in LATER_COLUMNS.get(kind, {})
    )
    for kind in EXPORT_KINDS
    if kind not in ("reaction", "invite", "sso_link", "hook")
}
BATCH = 1000
_encoder = msgspec.json.Encoder()


def sqlite_path(cfg: Config, command: str) -> Path:
    if cfg.store.backend != "sqlite":
        raise click.ClickException(
            f"chatd {command} copies SQLite files; for the {cfg.store.backend} store use its own tools "
            "(PostgreSQL: pg_dump and pg_restore), or chatd export / chatd import"
        )
    return Path(cfg.store.path)


def check_chatd_database(path: Path) -> list[str]:
    """The migrations a database file has, after checking it is a sound chatd database; ClickException if not."""
    from chatd.store.migrations import MIGRATIONS, SchemaTooNew, check_not_newer

    try:
        conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
        try:
            if conn.execute("PRAGMA integrity_check").fetchone()[0] != "ok":
                raise click.ClickException(f"{path} is damaged (PRAGMA integrity_check failed)")
            done = [r[0] for r in conn.execute("SELECT name FROM _migrations ORDER BY name")]
        finally:
            conn.close()
    except sqlite3.DatabaseError as e:
        raise click.ClickException(f"{path} is not a chatd database ({e})") from None
    try:
        check_not_newer(done, [name for name, _ in MIGRATIONS])
    except SchemaTooNew as e:
        raise click.ClickException(str(e)) from None
    return done


def online_copy(source: Path, target: Path) -> None:
    """Copy ``source`` to ``target`` with SQLite's backup API; ``target`` appears only once complete."""
    partial = target.with_name(target.name + ".partial")
    partial.unlink(missing_ok=True)
    os.close(os.open(partial, os.O_RDWR | os.O_CREAT, 0o600))  # holds every message: private like the store
    src = sqlite3.connect(f"file:{source}?mode=ro", uri=True)
    dst = sqlite3.connect(partial)
    try:
        # Pages in steps, so the server's writer waits at most one step's worth at a time.
        src.backup(dst, pages=1024, sleep=0.005)
        dst.execute("PRAGMA journal_mode=DELETE")  # one self-contained file, no -wal beside it
    finally:
        dst.close()
        src.close()
    os.replace(partial, target)


@contextlib.contextmanager
def server_lock(db: Path) -> Iterator[None]:
    """Hold ``<db>.lock`` as a server does; ClickException if a server holds it."""
    fd = os.open(f"{db}.lock", os.O_RDWR | os.O_CREAT, 0o600)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise click.ClickException(
                f"a chatd server is using {db} (it holds {db}.lock): stop it first, then restore"
            ) from None
        yield
    finally:
        os.close(fd)


@click.command()
@config_option
@click.argument("file", type=click.Path(dir_okay=False))
def backup(config_path: str | None, file: str) -> None:
    """Write a consistent copy of the SQLite store to FILE, safely while the server runs.

    The copy is one self-contained SQLite file (no -wal beside it), readable by the server's user only, checked
    with PRAGMA integrity_check. Restore it with chatd restore.

    \b
    Example:
        chatd backup /var/backups/chatd/chatd-$(date +%F).db
    """
    cfg = build_config(config_path)
    db = sqlite_path(cfg, "backup")
    if not db.exists():
        raise click.ClickException(f"no chatd database at {db.resolve()}: pass --config, or CHATD_STORE_PATH")
    target = Path(file)
    if target.resolve() == db.resolve():
        raise click.UsageError("the backup file must not be the database itself")
    started = time.monotonic()
    try:
        online_copy(db, target)
    except OSError as e:
        raise click.ClickException(path_problem(e, target, "the backup")) from None
    done = check_chatd_database(target)
    conn = sqlite3.connect(f"file:{target}?mode=ro", uri=True)
    try:
        counts = {t: conn.execute(f"SELECT COUNT(*) FROM {t}").fetchone()[0] for t in ("users", "rooms", "messages")}
    finally:
        conn.close()
    click.echo(
        f"backed up {db.resolve()} to {target} in {time.monotonic() - started:.1f}s: {counts['users']} users, "
        f"{counts['rooms']} rooms, {counts['messages']} messages (schema {done[-1] if done else 'empty'})"
    )


@click.command()
@config_option
@click.argument("file", type=click.Path(exists=True, dir_okay=False))
def restore(config_path: str | None, file: str) -> None:
    """Put a backup made by chatd backup back as the SQLite store. Refuses while a server uses the database; the
    database it replaces is kept as <store.path>.pre-restore-<time>.

    \b
    Example:
        systemctl stop chatd
        chatd restore /var/backups/chatd/chatd-2024-05-01.db
        systemctl start chatd
    """
    cfg = build_config(config_path)
    db = sqlite_path(cfg, "restore")
    source = Path(file)
    check_chatd_database(source)
    try:
        db.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    except OSError as e:
        raise click.ClickException(path_problem(e, db, "the store")) from None
    with server_lock(db):
        kept = None
        if db.exists():
            kept = db.with_name(f"{db.name}.pre-restore-{time.strftime('%Y%m%d-%H%M%S')}")
            online_copy(db, kept)
            for suffix in ("-wal", "-shm"):
                Path(f"{db}{suffix}").unlink(missing_ok=True)
            db.unlink()
        online_copy(source, db)
        rooms = renew_epochs(db)
    click.echo(
        f"restored {source} to {db.resolve()}"
        + (f"; the database it replaced is {kept}" if kept else "")
        + f"; {rooms} rooms have a new epoch (clients reload them)"
    )


def renew_epochs(db: Path) -> int:
    """Give every room of a restored database a new epoch; returns how many rooms it has. A backup taken before
    rooms had epochs gets them from its migration when a server opens it."""
    from chatd.store.migrations import NEW_EPOCH_SQL

    conn = sqlite3.connect(db)
    try:
        columns = {row[1] for row in conn.execute("PRAGMA table_info(rooms)")}
        with conn:
            if "epoch" in columns:
                conn.execute(f"UPDATE rooms SET epoch = {NEW_EPOCH_SQL}")
        return int(conn.execute("SELECT COUNT(*) FROM rooms").fetchone()[0])
    finally:
        conn.close()


# --- export / import ------------------------------------------------------------------------------------------


async def write_export(store: Store, out: IO[bytes]) -> dict[str, int]:
    counts = dict.fromkeys(EXPORT_KINDS, 0)
    out.write(_encoder.encode(HEADER) + b"\n")
    async with store.snapshot():
        for kind in EXPORT_KINDS:
            async for row in store.export_rows(kind):
                out.write(_encoder.encode({"kind": kind, **row}) + b"\n")
                counts[kind] += 1
    return counts


async def read_import(store: Store, lines: IO[bytes]) -> dict[str, int]:
    header = msgspec.json.decode(lines.readline() or b"{}")
    if not isinstance(header, dict) or header.get("kind") != "chatd-export":
        raise click.ClickException("not a chatd export (its first line is not the chatd-export header)")
    if header.get("format") not in (FORMAT, LEGACY_FORMAT):
        raise click.ClickException(
            f"export format {header.get('format')!r}; this chatd reads formats {LEGACY_FORMAT} and {FORMAT}"
        )
    if not await store.is_empty():
        raise click.ClickException(
            f"{store.describe()} already holds users or rooms; import into an empty store (a new database)"
        )
    if header["format"] == LEGACY_FORMAT:
        return await import_legacy(store, lines)
    counts = dict.fromkeys(EXPORT_KINDS, 0)
    for kind, batch in exported_batches(lines, EXPORT_KINDS):
        await flush(store, kind, batch, counts)
    return counts


def exported_batches(lines: IO[bytes], kinds: tuple[str, ...]) -> Iterator[tuple[str, list[dict[str, Any]]]]:
    """The rows after the header, as batches of one kind (at most ``BATCH`` rows), checking their order."""
    order = {kind: i for i, kind in enumerate(kinds)}
    batch: list[dict[str, Any]] = []
    kind = kinds[0]
    for number, line in enumerate(lines, start=2):
        try:
            row = msgspec.json.decode(line)
            row_kind = row.pop("kind")
        except (msgspec.DecodeError, KeyError, AttributeError, TypeError):
            raise click.ClickException(f"line {number}: not an exported row") from None
        if row_kind not in order or order[row_kind] < order[kind]:
            raise click.ClickException(
                f"line {number}: a {row_kind!r} row out of order (rows come in the order {', '.join(kinds)})"
            )
        if row_kind != kind or len(batch) >= BATCH:
            yield kind, batch
            batch = []
            kind = row_kind
        batch.append(row)
    yield kind, batch


async def flush(store: Store, kind: str, batch: list[dict[str, Any]], counts: dict[str, int]) -> None:
    try:
        await store.import_rows(kind, batch)
    except ValueError as e:
        raise click.ClickException(str(e)) from None
    counts[kind] += len(batch)


async def import_legacy(store: Store, lines: IO[bytes]) -> dict[str, int]:
    """A format-1 export (names, not ids) into ``store``: through a scratch SQLite database at the schema it was
    made with, which migration ``012_user_ids`` brings to ids (see the module docstring)."""
    from chatd.store.sqlite import SQLiteStore

    with tempfile.TemporaryDirectory(prefix="chatd-import-") as scratch:
        path = Path(scratch) / "legacy.db"
        await asyncio.to_thread(load_legacy, path, lines)
        legacy = SQLiteStore(path, exclusive=False)
        await legacy.open()  # migrates: names become ids
        try:
            counts = dict.fromkeys(EXPORT_KINDS, 0)
            for kind in EXPORT_KINDS:
                batch: list[dict[str, Any]] = []
                async for row in legacy.export_rows(kind):
                    batch.append(row)
                    if len(batch) >= BATCH:
                        await flush(store, kind, batch, counts)
                        batch = []
                await flush(store, kind, batch, counts)
        finally:
            await legacy.close()
    return counts


def load_legacy(path: Path, lines: IO[bytes]) -> None:
    """A new SQLite database at the schema before migration 012, holding a format-1 export's rows as they are."""
    import sqlite_utils

    from chatd.store.migrations import MIGRATIONS

    db = sqlite_utils.Database(path)
    try:
        db.table("_migrations").create({"name": str, "applied": int}, pk="name")
        for name, migration in MIGRATIONS:
            if name >= "012":
                break
            with db.conn:
                migration(db)
                db.table("_migrations").insert({"name": name, "applied": int(time.time())})
        with db.conn:
            for kind, batch in exported_batches(lines, tuple(LEGACY_COLUMNS)):
                cols = LEGACY_COLUMNS[kind]
                for row in batch:
                    if set(row) != set(cols):
                        raise click.ClickException(
                            f"a {kind} row of a format-1 export must have exactly the keys {', '.join(cols)}"
                        )
                names = ", ".join("kind" if c == "change" else c for c in cols)
                db.conn.executemany(
                    f"INSERT INTO {kind}s ({names}) VALUES ({', '.join('?' * len(cols))})",
                    [tuple(import_value(c, row[c], sqlite=True) for c in cols) for row in batch],
                )
    finally:
        db.close()


def summary(counts: dict[str, int]) -> str:
    return ", ".join(f"{n} {kind}s" for kind, n in counts.items())


@click.command("export")
@config_option
@click.argument("file", type=click.Path(dir_okay=False, allow_dash=True), default="-")
def export_cmd(config_path: str | None, file: str) -> None:
    """Write every user (deleted ones as tombstones), token hash, room, member, message, reaction, upload record, read
    position, mention, invite and single sign-on link of the store as JSON Lines to FILE (default: standard
    output). Works while the server runs (one consistent moment). Attachment files themselves stay in
    uploads.dir: copy that directory alongside.

    \b
    Example:
        chatd export chatd.jsonl
        chatd export -c sqlite.toml | chatd import -c postgres.toml -
    """
    cfg = build_config(config_path)

    async def act(store: Store) -> dict[str, int]:
        if file == "-":
            return await write_export(store, sys.stdout.buffer)
        partial = Path(file + ".partial")
        try:
            fd = os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        except OSError as e:
            raise click.ClickException(path_problem(e, file, "the export")) from None
        with open(fd, "wb", buffering=1 << 20) as out:
            counts = await write_export(store, out)
        partial.replace(file)
        return counts

    counts = run_with_store(cfg, False, act)
    click.echo(f"exported {summary(counts)}", err=True)


@click.command("import")
@config_option
@create_option
@click.argument("file", type=click.File("rb"), default="-")
def import_cmd(config_path: str | None, create: bool, file: IO[bytes]) -> None:
    """Load a chatd export (JSON Lines from chatd export) into the configured store, which must be empty. Seqs,
    client_ids, timestamps, user ids and token hashes are kept: clients carry on as if nothing moved. An export
    made by a chatd from before user ids (format 1) is turned into ids on the way in.

    \b
    Example:
        CHATD_STORE_BACKEND=postgres CHATD_STORE_DSN=postgresql://chatd@db/chatd chatd import chatd.jsonl
        chatd import --create -c new.toml backup.jsonl
    """
    cfg = build_config(config_path)
    counts = run_with_store(cfg, create, lambda store: read_import(store, file))
    click.echo(f"imported {summary(counts)}", err=True)
