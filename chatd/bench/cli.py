"""``chatd bench``: run a scenario against a protocol-v1 server; ``chatd bench compare``: against several."""

from __future__ import annotations

import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import click
import msgspec

from chatd.bench.report import RunReport, format_report, write_json
from chatd.bench.runner import Auth, run_scenario
from chatd.bench.scenario import PRESETS, Scenario, load_scenario, override
from chatd.bench.target import Target, resolve
from chatd.rlimit import raise_open_files

F = Callable[..., Any]
OPEN_FILES = 131_072  # enough for the largest connect scenario on both sides of a loopback run

PG_SERVER_DEFAULT = "postgresql://postgres@127.0.0.1:5432"


def _stacked(*decorators: F) -> Callable[[F], F]:
    def apply(fn: F) -> F:
        for d in reversed(decorators):
            fn = d(fn)
        return fn

    return apply


scenario_options = _stacked(
    click.option(
        "--scenario",
        "-s",
        "scenario_ref",
        default="steady",
        show_default=True,
        help=f"Preset ({', '.join(sorted(PRESETS))}) or a TOML file (bench/scenarios/NAME.toml may be given as NAME).",
    ),
    click.option("--clients", type=int, help="Override: connections that join rooms."),
    click.option("--rooms", type=int, help="Override: number of rooms."),
    click.option("--rate", type=float, help="Override: offered msgs/s over all senders (0 = window-limited)."),
    click.option("--body-bytes", type=int, help="Override: message body size."),
    click.option("--duration", type=float, help="Override: measured seconds."),
    click.option("--warmup", type=float, help="Override: seconds before measuring."),
    click.option("--connections", type=int, help="Override (connect): concurrent connections to open."),
    click.option("--steps", help="Override (ramp): comma-separated rates or sender counts."),
    click.option("--step-duration", type=float, help="Override (ramp): seconds per step."),
)

run_options = _stacked(
    click.option(
        "--procs", "-p", type=int, default=1, show_default=True, help="Load processes to spread the clients over."
    ),
    click.option(
        "--token-file",
        type=click.Path(exists=True, dir_okay=False),
        help="Authenticate with tokens: one 'NAME TOKEN' (or just TOKEN) per line.",
    ),
    click.option(
        "--admin-token",
        envvar="CHATD_BENCH_ADMIN_TOKEN",
        help="Create bench users as bots via POST /api/admin/bots with this admin token.",
    ),
    click.option(
        "--namespace",
        "--user-prefix",
        "user_prefix",
        default="bench",
        show_default=True,
        help="What the run creates is named after this: users NAMESPACE1..., rooms NAMESPACE-<run id>-...",
    ),
    click.option(
        "--cleanup/--no-cleanup",
        default=None,
        help="Delete the run's rooms and bot users afterwards (admin API). Default: on when --admin-token made "
        "the users.",
    ),
    click.option("--server-pid", type=int, help="Pid of a local server, to report its CPU and memory."),
    click.option("--quiet", "-q", is_flag=True, help="No progress output."),
    click.option(
        "--calm",
        type=float,
        metavar="LOAD",
        help="Before each run, wait (up to 10 min) until the 1-minute load average is below LOAD.",
    ),
)

output_options = _stacked(
    click.option("--json", "json_path", type=click.Path(dir_okay=False), help="Write the full report as JSON."),
    click.option(
        "--html",
        "html_path",
        type=click.Path(dir_okay=False),
        help="Write a self-contained HTML report with inline SVG charts.",
    ),
    click.option("--svg-dir", type=click.Path(file_okay=False), help="Write each chart as an SVG file here."),
)


def build_scenario(ref: str, **overrides: Any) -> Scenario:
    steps = overrides.pop("steps", None)
    if steps:
        overrides["steps"] = [float(s) for s in steps.split(",") if s.strip()]
    try:
        return override(load_scenario(ref), **overrides)
    except ValueError as e:
        raise click.ClickException(str(e)) from None


def build_auth(token_file: str | None, admin_token: str | None, prefix: str, cleanup: bool | None = None) -> Auth:
    if cleanup and not admin_token:
        raise click.UsageError("--cleanup deletes through the admin API: give --admin-token too")
    if token_file:
        pairs: list[tuple[str, str]] = []
        for line in Path(token_file).read_text().splitlines():
            parts = line.split()
            if parts:
                pairs.append((parts[0], parts[1]) if len(parts) > 1 else (f"token{len(pairs)}", parts[0]))
        return Auth("tokens", pairs, admin_token=admin_token, prefix=prefix, cleanup=bool(cleanup))
    if admin_token:
        # The bench made these users and rooms itself, so by default it also takes them away.
        return Auth("bots", admin_token=admin_token, prefix=prefix, cleanup=cleanup is not False)
    return Auth("open", prefix=prefix)


def _progress(quiet: bool) -> Callable[[str], None] | None:
    if quiet:
        return None

    def out(text: str) -> None:
        sys.stderr.write(text)
        sys.stderr.flush()

    return out


def wait_calm(limit: float | None, progress: Callable[[str], None] | None, timeout: float = 600.0) -> None:
    """Other work on the machine skews both server and generator; give it a chance to finish first."""
    if limit is None:
        return
    import os
    import time

    deadline = time.monotonic() + timeout
    while os.getloadavg()[0] > limit and time.monotonic() < deadline:
        if progress:
            progress(f"waiting for load average {os.getloadavg()[0]:.2f} to fall below {limit:g}\n")
        time.sleep(10)


def execute(
    scn: Scenario, spec: str, procs: int, auth: Auth, server_pid: int | None, quiet: bool, calm: float | None = None
) -> RunReport:
    """Resolve the target (spawning it if asked), run, and always stop what we spawned."""
    wait_calm(calm, None if quiet else _progress(False))
    try:
        target: Target = resolve(spec, scn.connections if scn.kind == "connect" else scn.clients, server_pid)
    except (ValueError, RuntimeError) as e:
        raise click.ClickException(str(e)) from None
    progress = _progress(quiet)
    if progress:
        progress(f"target: {target.label} at {target.ws_url}\n")
    try:
        import uvloop

        return uvloop.run(run_scenario(scn, target, procs, auth, progress))
    except (RuntimeError, ValueError) as e:
        raise click.ClickException(str(e)) from None
    finally:
        target.stop()


class _Runs(msgspec.Struct):
    """A comparison's JSON: one report per target."""

    runs: list[RunReport]


def write_outputs(reports: list[RunReport], json_path: str | None, html_path: str | None, svg_dir: str | None) -> None:
    from chatd.bench.charts import charts_for, html_report

    if json_path:
        write_json(json_path, reports[0] if len(reports) == 1 else {"runs": reports})
    if html_path:
        Path(html_path).write_text(html_report(reports), encoding="utf-8")
    if svg_dir:
        out = Path(svg_dir)
        out.mkdir(parents=True, exist_ok=True)
        for name, svg in charts_for(reports).items():
            (out / f"{name}.svg").write_text(svg, encoding="utf-8")


@click.group(invoke_without_command=True)
@click.option(
    "--target",
    "-t",
    default="spawn",
    show_default=True,
    help="'spawn' (start a local chatd), 'naive' (the naive FastAPI peer), 'durable' (the same peer with one committed "
    "SQLite INSERT per message), 'ceiling' (the picows no-framework "
    "ceiling), 'cluster:redis' / 'cluster:rabbitmq' (2 nodes behind nginx; cluster:redis:3 for 3) or a ws:// URL.",
)
@click.option("--spawn", "spawn_flag", is_flag=True, help="Same as --target spawn.")
@scenario_options
@run_options
@output_options
@click.option("--strict", is_flag=True, help="Exit 1 if anything was lost, duplicated, reordered or unanswered.")
@click.pass_context
def bench(
    ctx: click.Context,
    /,
    target: str,
    spawn_flag: bool,
    scenario_ref: str,
    procs: int,
    token_file: str | None,
    admin_token: str | None,
    user_prefix: str,
    cleanup: bool | None,
    server_pid: int | None,
    quiet: bool,
    calm: float | None,
    json_path: str | None,
    html_path: str | None,
    svg_dir: str | None,
    strict: bool,
    **overrides: Any,
) -> None:
    """Load-test a protocol-v1 chat server and report throughput, latency and every lost message.

    Runs one scenario (a preset or a TOML file) against one target, prints a summary table, and optionally
    writes JSON, an HTML report and SVG charts. See docs/bench.md.

    \b
    Example:
        chatd bench --spawn -s smoke
        chatd bench --spawn -s steady --rate 4000 --procs 2 --json steady.json --html steady.html
        chatd bench -t ws://chat.example:8000/ws --admin-token $ADMIN -s ramp
        chatd bench -t naive -s burst
        chatd bench compare -s ramp -t spawn -t naive
    """
    # Every connection is a descriptor here and in a spawned server, which inherits the limit.
    raise_open_files(OPEN_FILES)
    if ctx.invoked_subcommand is not None:
        return
    scn = build_scenario(scenario_ref, **overrides)
    auth = build_auth(token_file, admin_token, user_prefix, cleanup)
    report = execute(scn, "spawn" if spawn_flag else target, procs, auth, server_pid, quiet, calm)
    click.echo(format_report(report), nl=False)
    write_outputs([report], json_path, html_path, svg_dir)
    if strict and not report.clean:
        sys.exit(1)


@bench.command("compare")
@click.option(
    "--target",
    "-t",
    "targets",
    multiple=True,
    default=("spawn", "naive"),
    show_default=True,
    help="Targets in turn (repeat the option); ratios are against the first.",
)
@scenario_options
@run_options
@output_options
@click.option("--pause", type=float, default=3.0, show_default=True, help="Seconds of rest between targets.")
@click.option(
    "--repeat",
    type=int,
    default=1,
    show_default=True,
    help="Rounds of all targets, interleaved (A B A B ...); the comparison uses each target's median.",
)
def compare(
    targets: tuple[str, ...],
    scenario_ref: str,
    procs: int,
    token_file: str | None,
    admin_token: str | None,
    user_prefix: str,
    cleanup: bool | None,
    server_pid: int | None,
    quiet: bool,
    calm: float | None,
    json_path: str | None,
    html_path: str | None,
    svg_dir: str | None,
    pause: float,
    repeat: int,
    **overrides: Any,
) -> None:
    """Run one scenario against several targets in turn and print the ratios.

    With --repeat N the targets take turns N times, so drift on a shared machine hits them alike, and every
    figure in the comparison is the median of a target's runs (each run is listed too).

    \b
    Example:
        chatd bench compare -s ramp                       # spawned chatd vs the naive FastAPI peer
        chatd bench compare -s ramp --repeat 3 --calm 0.7
        chatd bench compare -s steady --rate 2000 -t spawn -t naive -t ws://10.0.0.5:8000/ws
    """
    import time

    from chatd.bench.charts import format_comparison, format_rounds, median_report

    scn = build_scenario(scenario_ref, **overrides)
    auth = build_auth(token_file, admin_token, user_prefix, cleanup)
    rounds: list[list[RunReport]] = []
    for n in range(max(1, repeat)):
        row = []
        for i, spec in enumerate(targets):
            if i or n:
                time.sleep(pause)  # let sockets in TIME_WAIT and the page cache settle between servers
            report = execute(scn, spec, procs, auth, server_pid, quiet, calm)
            click.echo(format_report(report))
            row.append(report)
        rounds.append(row)
    if len(rounds) > 1:
        click.echo(format_rounds(rounds), nl=False)
    reports = [median_report([row[i] for row in rounds]) for i in range(len(targets))]
    click.echo(format_comparison(reports), nl=False)
    every = [r for row in rounds for r in row]
    write_outputs(reports if len(rounds) == 1 else every, json_path, None, None)
    write_outputs(reports, None, html_path, svg_dir)


@bench.command("render")
@click.argument("result", type=click.Path(exists=True, dir_okay=False))
@click.option("--html", "html_path", type=click.Path(dir_okay=False), help="Write the HTML page here.")
@click.option("--svg-dir", type=click.Path(file_okay=False), help="Write the SVG charts into this folder.")
def render(result: str, html_path: str | None, svg_dir: str | None) -> None:
    """Draw the HTML page and SVG charts of a finished run again from its JSON result.

    The JSON (``--json``) is the record of a run; pages and charts are derived from it, so only the JSON and text
    results are kept in bench/results/ and the pages are made on demand.

    \b
    Example:
        chatd bench render bench/results/steady.json --html /tmp/steady.html
    """
    if not (html_path or svg_dir):
        raise click.UsageError("say what to draw: --html FILE and/or --svg-dir DIR")
    data = Path(result).read_bytes()
    try:
        runs = msgspec.json.decode(data, type=_Runs).runs
    except msgspec.ValidationError:
        try:
            runs = [msgspec.json.decode(data, type=RunReport)]
        except msgspec.ValidationError as e:
            raise click.ClickException(f"{result} is not a chatd bench result: {e}") from None
    write_outputs(runs, None, html_path, svg_dir)
    for path in (html_path, svg_dir):
        if path:
            click.echo(f"wrote {path}")


@bench.command("rest")
@click.option(
    "--target", "-t", default="spawn", show_default=True, help="'spawn', 'cluster:redis' and so on (open mode)."
)
@click.option("--clients", "-c", type=int, default=80, show_default=True, help="Concurrent clients, one request each.")
@click.option("--rooms", type=int, default=10, show_default=True, help="Rooms the clients are spread over.")
@click.option("--duration", type=float, default=20.0, show_default=True, help="Measured seconds.")
@click.option("--warmup", type=float, default=2.0, show_default=True, help="Seconds before measuring.")
@click.option("--body-bytes", type=int, default=100, show_default=True)
@click.option("--json", "json_path", type=click.Path(dir_okay=False), help="Write the report as JSON here.")
@click.option("--strict", is_flag=True, help="Exit 1 on any error or lost message.")
def rest(
    target: str,
    clients: int,
    rooms: int,
    duration: float,
    warmup: float,
    body_bytes: int,
    json_path: str | None,
    strict: bool,
) -> None:
    """Send over REST from a fixed number of concurrent clients and report throughput, latency and errors.

    Every client keeps one request in flight on its own keep-alive connection. After the run each message that was
    answered 201 is looked up in its room's history; a missing one counts as lost.

    \b
    Example:
        chatd bench rest                      # 80 clients against a spawned chatd
        chatd bench rest -c 200 -t cluster:redis --json rest.json
    """
    import asyncio

    import msgspec

    from chatd.bench.rest import format_rest, run_rest

    server = resolve(target, clients + 10)
    try:
        report = asyncio.run(run_rest(server, clients, rooms, duration, warmup, body_bytes))
    finally:
        server.stop()
    click.echo(format_rest(report), nl=False)
    if json_path:
        Path(json_path).write_bytes(msgspec.json.format(msgspec.json.encode(report)))
    if strict and (report.errors or report.lost):
        sys.exit(1)


@bench.command("chaos")
@click.option(
    "--broker",
    type=click.Choice(["redis", "rabbitmq", "both"]),
    default="both",
    show_default=True,
    help="The broker the nodes share; 'both' runs once over each.",
)
@click.option("--broker-url", default="", help="The broker's URL (default: the machine's, as `cluster up` uses).")
@click.option("--pg", "pg_server", default=PG_SERVER_DEFAULT, show_default=True, help="PostgreSQL server (no db).")
@click.option("--nodes", type=int, default=3, show_default=True)
@click.option("--duration", type=float, default=60.0, show_default=True, help="Seconds of faults, per broker.")
@click.option("--seed", type=int, default=1, show_default=True, help="Seeds the fault schedule.")
@click.option("--senders", type=int, default=6, show_default=True, help="Resending clients (one room each).")
@click.option("--rooms", type=int, default=3, show_default=True)
@click.option("--rate", type=float, default=4.0, show_default=True, help="Sends per second per sender.")
@click.option("--fault", "faults", multiple=True, help="Only these fault kinds (repeatable; default: all).")
@click.option("--fault-max", type=float, default=10.0, show_default=True, help="Longest fault, in seconds.")
@click.option("--workdir", type=click.Path(file_okay=False), default="chaos-run", show_default=True)
@click.option("--json", "json_path", type=click.Path(dir_okay=False), help="Write the report(s) as JSON here.")
def chaos(
    broker: str,
    broker_url: str,
    pg_server: str,
    nodes: int,
    duration: float,
    seed: int,
    senders: int,
    rooms: int,
    rate: float,
    faults: tuple[str, ...],
    fault_max: float,
    workdir: str,
    json_path: str | None,
) -> None:
    """Run a deployment on this machine through seeded random faults and check that no promise broke.

    Starts NODES nodes over the broker and PostgreSQL, each behind fault proxies of its own, with resending clients
    and a reader per node and room. Faults come one at a time: kill -9 (and restart), SIGSTOP, a node's broker or
    PostgreSQL link blackholed or slowed, the broker links cut, PostgreSQL sessions terminated. The store is then
    checked against what the clients saw (lost, duplicated, gaps, order, deaf nodes); exit status 1 if anything
    broke. Needs Redis or RabbitMQ (and rabbitmqctl), PostgreSQL and nothing else; see docs/bench.md.

    \b
    Example:
        chatd bench chaos --duration 60 --seed 7
        chatd bench chaos --broker rabbitmq --duration 600 --json chaos.json
    """
    import asyncio

    import msgspec

    from chatd.bench.chaos import FAULTS, ChaosSettings, format_report, run_chaos

    unknown = [f for f in faults if f not in FAULTS]
    if unknown:
        raise click.BadParameter(f"unknown fault {unknown[0]!r}; choose from {', '.join(FAULTS)}", param_hint="--fault")
    reports = []
    for name in ("redis", "rabbitmq") if broker == "both" else (broker,):
        s = ChaosSettings(
            broker=name,
            broker_url=broker_url,
            pg_server=pg_server,
            nodes=nodes,
            duration=duration,
            seed=seed,
            senders=senders,
            rooms=rooms,
            rate=rate,
            fault_max=fault_max,
            faults=faults or FAULTS,
            workdir=Path(workdir) / name,
        )
        report = asyncio.run(run_chaos(s, lambda text: click.echo(text, err=True)))
        click.echo(format_report(report), nl=False)
        reports.append(report)
    if json_path:
        Path(json_path).write_bytes(msgspec.json.format(msgspec.json.encode(reports)))
    if any(r.violations for r in reports):
        sys.exit(1)


def main() -> None:  # pragma: no cover - ``python -m chatd.bench.cli``
    bench(prog_name="chatd bench")


if __name__ == "__main__":  # pragma: no cover
    main()
