"""Room epochs: a resume position that no longer matches the room is answered with ``joined`` ``reset``, never with
silence. Through real servers, on SQLite and PostgreSQL: a ``since`` past the room's end, a room deleted and made
again, ``chatd restore`` of an older backup, and ``chatd import`` into a fresh store."""

from __future__ import annotations

import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from harness import ChatdProcess, Client, run_cli

Make = Callable[..., ChatdProcess]


def ok(r: subprocess.CompletedProcess[str]) -> subprocess.CompletedProcess[str]:
    assert r.returncode == 0, r.stderr
    return r


@pytest.fixture(params=["sqlite", "postgres"])
def store_settings(request: pytest.FixtureRequest) -> dict[str, dict[str, Any]]:
    if request.param == "sqlite":
        return {}
    return {"store": {"backend": "postgres", "dsn": request.getfixturevalue("pg_dsn")}}


async def join(c: Client, room: str, since: int | None = None, epoch: str | None = None) -> dict[str, Any]:
    frame: dict[str, Any] = {"type": "join", "room": room}
    if since is not None:
        frame["since"] = since
    if epoch is not None:
        frame["epoch"] = epoch
    await c.send(frame)
    return await c.expect("joined")


async def bodies_live(reader: Client, writer: Client, room: str, bodies: list[str], tag: str) -> list[str]:
    """Send ``bodies`` from ``writer`` and return what ``reader`` receives of them."""
    for n, body in enumerate(bodies):
        await writer.say(room, body, f"{tag}{n}")
    return [m["body"] for m in await reader.messages(len(bodies))]


async def test_a_since_past_the_end_is_reset_and_new_messages_arrive(make_server: Make, store_settings) -> None:
    server = make_server(store_settings).start()
    reader = await Client.connect(server.ws, user="eve")
    joined = await join(reader, "fresh", since=5)  # a position this room never had
    assert joined["reset"] is True and joined["seq"] == 0 and joined["epoch"]
    assert "replay" not in joined
    writer = await Client.connect(server.ws, user="wes")
    await writer.join("fresh")
    assert await bodies_live(reader, writer, "fresh", ["one", "two", "three"], "p") == ["one", "two", "three"]
    # The position it was given is good: a resume from it is not reset.
    again = await Client.connect(server.ws, user="eve")
    resumed = await join(again, "fresh", since=3, epoch=joined["epoch"])
    assert "reset" not in resumed and resumed["epoch"] == joined["epoch"] and resumed["seq"] == 3
    for c in (reader, writer, again):
        await c.close()


async def test_a_room_made_again_resets_positions_from_before(make_server: Make, store_settings) -> None:
    server = make_server(store_settings).start()
    cfg = ["--config", str(server.config_path)]
    c = await Client.connect(server.ws, user="ann")
    first = await c.join("phoenix")
    for n in range(3):
        await c.say("phoenix", f"old {n}", f"o{n}")
    await c.close()
    ok(run_cli("rooms", "delete", "phoenix", "--yes", *cfg))
    maker = await Client.connect(server.ws, user="bob")
    second = await maker.join("phoenix")  # made again (rooms.auto_create)
    assert second["seq"] == 0 and second["epoch"] != first["epoch"]
    for n in range(4):
        await maker.say("phoenix", f"new {n}", f"n{n}")
    # Behind the new room's end (1 < 4) but from the old epoch: the new 2..4 would have been skipped unseen.
    behind = await Client.connect(server.ws, user="ann")
    joined = await join(behind, "phoenix", since=1, epoch=first["epoch"])
    assert joined["reset"] is True and (joined["seq"], joined["epoch"]) == (4, second["epoch"])
    # Past the new end (3 of the old room, 4 new, then 3 more would have been dropped as repeats).
    past = await Client.connect(server.ws, user="cy")
    assert (await join(past, "phoenix", since=7, epoch=first["epoch"]))["reset"] is True
    got = await bodies_live(past, maker, "phoenix", ["a", "b", "c"], "l")
    assert got == ["a", "b", "c"]
    assert [m["body"] for m in await behind.messages(3)] == ["a", "b", "c"]
    for cl in (maker, behind, past):
        await cl.close()


async def test_a_restored_backup_gives_every_room_a_new_epoch(make_server: Make, tmp_path: Path) -> None:
    server = make_server().start()
    cfg = ["--config", str(server.config_path)]
    c = await Client.connect(server.ws, user="keeper")
    before = await c.join("vault")
    for n in range(5):
        await c.say("vault", f"kept {n}", f"k{n}")
    ok(run_cli("backup", str(tmp_path / "at5.db"), *cfg))
    for n in range(5):
        await c.say("vault", f"lost {n}", f"x{n}")  # seen by clients, not in the backup
    await c.close()
    server.stop()
    out = ok(run_cli("restore", str(tmp_path / "at5.db"), *cfg)).stdout
    assert "new epoch" in out
    server.start()
    # A client that had seen seq 10 of the old history, and one that had seen 7.
    at10 = await Client.connect(server.ws, user="keeper")
    at7 = await Client.connect(server.ws, user="other")
    j10 = await join(at10, "vault", since=10, epoch=before["epoch"])
    j7 = await join(at7, "vault", since=7, epoch=before["epoch"])
    for j in (j10, j7):
        assert j["reset"] is True and j["seq"] == 5 and j["epoch"] != before["epoch"]
    writer = await Client.connect(server.ws, user="writer")
    await writer.join("vault")
    got = await bodies_live(at10, writer, "vault", [f"after {n}" for n in range(5)], "r")
    assert got == [f"after {n}" for n in range(5)]  # 6..10 again, all of them
    assert [m["seq"] for m in await at7.messages(5)] == [6, 7, 8, 9, 10]
    for cl in (at10, at7, writer):
        await cl.close()


async def test_an_import_into_a_fresh_store_gives_new_epochs(make_server: Make, tmp_path: Path, pg_dsn: str) -> None:
    source = make_server().start()
    c = await Client.connect(source.ws, user="mover")
    before = await c.join("moving")
    for n in range(3):
        await c.say("moving", f"m{n}", f"m{n}")
    await c.close()
    dump = tmp_path / "export.jsonl"
    ok(run_cli("export", str(dump), "--config", str(source.config_path)))
    source.stop()
    target = make_server({"store": {"backend": "postgres", "dsn": pg_dsn}})
    ok(run_cli("import", str(dump), "--config", str(target.config_path)))
    target.start()
    r = await Client.connect(target.ws, user="mover")
    joined = await join(r, "moving", since=3, epoch=before["epoch"])
    assert joined["reset"] is True and joined["seq"] == 3 and joined["epoch"] != before["epoch"]
    await r.close()


async def test_new_epochs_after_a_restore_by_hand_resets_resumes(make_server: Make, store_settings) -> None:
    server = make_server(store_settings).start()
    c = await Client.connect(server.ws, user="op")
    before = await c.join("handmade")
    await c.say("handmade", "one", "h1")
    await c.close()
    out = ok(run_cli("rooms", "new-epochs", "--config", str(server.config_path))).stdout
    assert "have a new epoch" in out
    r = await Client.connect(server.ws, user="op")
    joined = await join(r, "handmade", since=1, epoch=before["epoch"])
    assert joined["reset"] is True and joined["seq"] == 1 and joined["epoch"] != before["epoch"]
    await r.close()
