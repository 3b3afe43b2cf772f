"""``chatd bench`` end to end against real servers it spawns, through the click command line."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from chatd.bench.cli import bench
from chatd.bench.client import PORTS_PER_SOURCE, source_address
from chatd.bench.scenario import PRESETS, frame_size, layout, load_scenario
from chatd.bench.target import spawn_chatd
from chatd.bench.wsconn import WsConn, with_user

ROOT = Path(__file__).resolve().parents[2]


def run(*args: str) -> tuple[int, str]:
    result = CliRunner().invoke(bench, list(args), catch_exceptions=False)
    return result.exit_code, result.output


def test_spawned_smoke_run_loses_nothing_and_writes_json_html_and_svg(tmp_path: Path) -> None:
    out = tmp_path / "smoke.json"
    html = tmp_path / "smoke.html"
    code, text = run(
        "--spawn",
        "-s",
        "smoke",
        "--duration",
        "1.5",
        "-q",
        "--strict",
        "--json",
        str(out),
        "--html",
        str(html),
        "--svg-dir",
        str(tmp_path / "svg"),
    )
    assert code == 0, text
    assert "result: CLEAN" in text
    report = json.loads(out.read_text())
    t = report["tally"]
    assert t["sent"] > 50 and t["lost"] == 0 and t["unanswered"] == 0
    assert t["unique_deliveries"] == t["expected_deliveries"] == t["sent"] * 3  # rooms of 3
    assert report["delivery_ms"]["count"] > 0 and report["connections_ok"] == 6
    assert report["server"]["rss_peak"] > 0 and report["generator"]["cpu_percent"]
    page = html.read_text()
    assert "<svg" in page and "http" not in page.replace("http://www.w3.org/2000/svg", "")  # nothing remote
    assert (tmp_path / "svg" / "rate_over_time.svg").is_file()


def test_large_frames_are_delivered_up_to_the_limit_and_refused_past_it_never_silently(tmp_path: Path) -> None:
    out = tmp_path / "large.json"
    code, text = run("--spawn", "-s", "large", "-q", "--json", str(out))
    assert code == 0, text
    report = json.loads(out.read_text())
    limit = 64 * 1024  # chatd's default limits.max_frame_bytes, announced in hello
    sizes = {z["frame_bytes"]: z for z in report["sizes"]}
    assert set(sizes) == {frame_size(s, limit) for s in PRESETS["large"].sizes}
    for size, z in sizes.items():
        assert z["unanswered"] == 0 and z["sent"] > 0
        if size <= limit:
            assert z["acked"] == z["sent"] and z["delivered"] == z["expected"] > 0, z
        else:
            assert z["refused"] == {"too_large": z["sent"]} and z["delivered"] == 0, z
    assert report["tally"]["lost"] == 0 and report["clean"]


def test_connect_scenario_reports_success_and_memory_per_connection(tmp_path: Path) -> None:
    out = tmp_path / "connect.json"
    code, text = run("--spawn", "-s", "connect", "--connections", "200", "-q", "--json", str(out))
    assert code == 0, text
    c = json.loads(out.read_text())["connect"]
    assert c["ok"] == c["attempted"] == 200 and c["still_open"] == 200
    assert c["success_percent"] == 100.0 and c["connect_ms"]["count"] == 200
    assert c["rss_per_connection"] is not None
    assert c["idle_cpu_percent"] is not None and 0.0 <= c["idle_cpu_percent"] < 200.0
    assert "server CPU idle" in text


def test_loopback_connections_past_one_source_addresses_ports_use_the_next_address() -> None:
    assert source_address("127.0.0.1", 0) is None
    assert source_address("127.0.0.1", PORTS_PER_SOURCE - 1) is None
    assert source_address("127.0.0.1", PORTS_PER_SOURCE) == "127.0.0.2"
    assert source_address("127.0.0.1", 2 * PORTS_PER_SOURCE + 5) == "127.0.0.3"
    assert source_address("10.0.0.7", 5 * PORTS_PER_SOURCE) is None  # off loopback the kernel picks


async def test_a_connection_from_another_loopback_source_address_reaches_the_server() -> None:
    target = spawn_chatd(10)
    try:
        url = with_user(target.ws_url, "src")
        conn = await WsConn.open(url, target.host, target.port, local_host="127.0.0.3")
        assert conn.transport is not None and conn.transport.get_extra_info("sockname")[0] == "127.0.0.3"
        assert conn.hello is not None
        conn.abort()
    finally:
        target.stop()


def test_compare_runs_each_target_and_prints_ratios(tmp_path: Path) -> None:
    pytest.importorskip("fastapi")
    code, text = run(
        "compare",
        "-s",
        "smoke",
        "--duration",
        "1",
        "--warmup",
        "0",
        "-q",
        "--pause",
        "0",
        "-t",
        "spawn",
        "-t",
        "naive",
        "-t",
        "ceiling",
        "--json",
        str(tmp_path / "cmp.json"),
    )
    assert code == 0, text
    assert "comparison: smoke" in text and "naive FastAPI peer" in text and "picows ceiling" in text and "×)" in text
    runs = json.loads((tmp_path / "cmp.json").read_text())["runs"]
    assert [r["tally"]["lost"] for r in runs] == [0, 0, 0]


def test_every_scenario_file_and_preset_loads_and_lays_out_rooms() -> None:
    files = sorted((ROOT / "bench" / "scenarios").glob("*.toml"))
    assert files
    for path in files:
        scn = load_scenario(str(path))
        lay = layout(scn, "abc")
        if scn.kind == "connect":
            continue
        assert sorted(c for cs in lay.members.values() for c in cs) == sorted(
            c for c, rooms in lay.rooms_of.items() for _ in rooms
        )
    for scn in PRESETS.values():
        assert scn.description
    dm = layout(PRESETS["dm"], "abc")
    assert all(len(m) == 2 for m in dm.members.values())


def test_a_typo_in_a_scenario_file_is_an_error_naming_the_key(tmp_path: Path) -> None:
    bad = tmp_path / "bad.toml"
    bad.write_text('kind = "steady"\nclinets = 10\n')
    code, text = run("-s", str(bad))
    assert code != 0 and "clinets" in text


def test_frame_size_expressions() -> None:
    assert frame_size("1k", 100) == 1024
    assert frame_size("limit", 65536) == 65536
    assert frame_size("limit+1", 65536) == 65537
    assert frame_size("limit/2", 65536) == 32768
    assert frame_size("2*limit", 65536) == 131072
    with pytest.raises(ValueError):
        frame_size("huge", 1)


def test_every_scenario_field_and_option_is_documented() -> None:
    """docs/bench.md must name each scenario field and each command-line option, so none goes undocumented."""
    import msgspec

    from chatd.bench.cli import compare
    from chatd.bench.scenario import Scenario

    doc = (ROOT / "docs" / "bench.md").read_text()
    missing = [f.name for f in msgspec.structs.fields(Scenario) if f"`{f.name}`" not in doc]
    for command in (bench, compare):
        for param in command.params:
            names = [o for o in getattr(param, "opts", []) if o.startswith("--")]
            if names and not any(n in doc for n in names):
                missing.append(names[0])
    assert not missing, f"undocumented in docs/bench.md: {missing}"


def test_token_mode_users_are_created_as_bots_with_the_admin_token(tmp_path: Path) -> None:
    """Against a server in token mode, --admin-token makes the users through POST /api/admin/bots."""
    from harness import ChatdProcess, register, run_cli

    server = ChatdProcess(tmp_path / "srv", {"auth": {"mode": "token", "first_user_admin": True}}).start()
    try:
        admin = register(server, "boss")  # the first user to register is the admin (auth.first_user_admin)
        out = tmp_path / "tokens.json"
        code, text = run(
            "-t",
            server.ws,
            "--admin-token",
            admin,
            "--namespace",
            "bot",
            "--no-cleanup",
            "-s",
            "smoke",
            "--duration",
            "1",
            "--warmup",
            "0",
            "-q",
            "--strict",
            "--json",
            str(out),
        )
        assert code == 0, text
        assert json.loads(out.read_text())["tally"]["lost"] == 0
        auth = {"Authorization": f"Bearer {admin}"}
        rooms = [
            r["name"] for r in server.get("/api/rooms", headers=auth).json()["rooms"] if r["name"].startswith("bot-")
        ]
        members = {
            m for room in rooms for m in server.get(f"/api/rooms/{room}/members", headers=auth).json()["members"]
        }
        assert len(rooms) == 2 and members == {f"bot{i}" for i in range(1, 7)}  # the server numbers bots from 1
        code, text = run("-t", server.ws, "-s", "smoke", "--duration", "1", "-q")  # no credentials: refused
        assert "connections failed" in text and "closed 4401" in text

        # By default a run that made its own users deletes them and its rooms afterwards.
        code, text = run(
            *("-t", server.ws, "--admin-token", admin, "--namespace", "tidy", "-s", "smoke"),
            *("--duration", "1", "--warmup", "0", "--strict"),
        )
        assert code == 0, text
        assert "cleaned up 2 room(s) and 6 user(s) in namespace 'tidy'" in text
        names = [r["name"] for r in server.get("/api/rooms", headers=auth).json()["rooms"]]
        assert not [n for n in names if n.startswith("tidy")] and len([n for n in names if n.startswith("bot-")]) == 2
        gone = run_cli("users", "token", "tidy1", "--config", str(server.config_path), cwd=server.workdir)
        assert gone.returncode != 0 and "no user 'tidy1'" in gone.stderr
    finally:
        server.stop()


def test_rest_sends_from_concurrent_clients_are_all_stored_and_counted(tmp_path: Path) -> None:
    out = tmp_path / "rest.json"
    code, text = run("rest", "-c", "40", "--rooms", "4", "--duration", "1.5", "--warmup", "0.2", "--json", str(out))
    assert code == 0, text
    r = json.loads(out.read_text())
    assert r["errors"] == {} and r["lost"] == 0, text
    assert r["created"] == r["sent"] > 40
    assert r["latency_ms"]["count"] > 0 and r["throughput"] > 0
    assert "CLEAN" in text


def test_render_draws_the_page_and_charts_of_a_committed_result_again(tmp_path: Path) -> None:
    """Pages are derived from the JSON record (issue 22: generated files out of the tree), for a single run and a
    comparison alike; anything else is refused with a message."""
    root = Path(__file__).resolve().parents[2] / "bench" / "results"
    for name in ("steady", "dm"):
        html = tmp_path / f"{name}.html"
        result = CliRunner().invoke(
            bench, ["render", str(root / f"{name}.json"), "--html", str(html), "--svg-dir", str(tmp_path / name)]
        )
        assert result.exit_code == 0, result.output
        assert "<svg" in html.read_text() and list((tmp_path / name).glob("*.svg"))
    bogus = tmp_path / "bogus.json"
    bogus.write_text('{"hello": 1}')
    result = CliRunner().invoke(bench, ["render", str(bogus), "--html", str(tmp_path / "x.html")])
    assert result.exit_code != 0 and "not a chatd bench result" in result.output


def test_the_durable_peer_commits_every_acked_message_before_its_ack() -> None:
    """``-t durable`` (issue 23's same-durability baseline) really stores what it acks: after a smoke run, its SQLite
    file holds one row per acked send, and a restart of the peer would see them."""
    pytest.importorskip("fastapi")
    import asyncio
    import sqlite3

    from chatd.bench.cli import build_scenario
    from chatd.bench.runner import run_scenario
    from chatd.bench.target import resolve

    target = resolve("durable", 10)
    try:
        assert target.workdir is not None
        scn = build_scenario("smoke", duration=1.0, warmup=0.0)
        report = asyncio.run(run_scenario(scn, target))
        db = sqlite3.connect(target.workdir / "peer.db")
        rows = db.execute("SELECT COUNT(*) FROM messages").fetchone()[0]
        journal = db.execute("PRAGMA journal_mode").fetchone()[0]
        db.close()
    finally:
        target.stop()
    assert report.tally.acked > 0 and rows == report.tally.acked
    assert journal == "wal"
