"""Charts as hand-written SVG, and one self-contained HTML report (no scripts, no CDN, no plotting library).

Three charts: delivery latency against offered load (ramp steps, one line per target and percentile), msgs/s
over time (sent, acknowledged, delivered), and the server's ingest queue depth over time (from ``/metrics``).
Several reports (``compare``) share the axes, one colour per target.
"""

from __future__ import annotations

import html
import math
from collections.abc import Callable, Sequence

from chatd.bench.report import RunReport, format_report

W, H = 720, 360
PAD_L, PAD_R, PAD_T, PAD_B = 70, 20, 40, 50
COLOURS = ["#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e", "#17becf", "#8c564b"]
DASHES = ["", "6 3", "2 3"]

Series = tuple[str, list[tuple[float, float]], str, str]  # label, points, colour, dash


def _nice(hi: float) -> float:
    """A round axis maximum at or above ``hi``."""
    if hi <= 0:
        return 1.0
    exp = 10.0 ** math.floor(math.log10(hi))
    for m in (1, 2, 2.5, 5, 10):
        if m * exp >= hi:
            return m * exp
    return 10 * exp


def _fmt(v: float) -> str:
    if v >= 10_000:
        return f"{v / 1000:,.0f}k"
    if v >= 100 or v == int(v):
        return f"{v:,.0f}"
    return f"{v:.1f}"


def line_chart(title: str, x_label: str, y_label: str, series: Sequence[Series], log_y: bool = False) -> str:
    """An SVG line chart with axes, ticks, a legend and a point marker at each sample."""
    pts = [p for _, ps, _, _ in series for p in ps]
    if not pts:
        return _empty(title)
    x_max = _nice(max(x for x, _ in pts))
    y_top = max(y for _, y in pts)
    y_min = 0.0
    if log_y:
        y_min = 10.0 ** math.floor(math.log10(max(min((y for _, y in pts if y > 0), default=1.0), 1e-3)))
        y_max = 10.0 ** math.ceil(math.log10(max(y_top, y_min * 10)))
    else:
        y_max = _nice(y_top)
    pw, ph = W - PAD_L - PAD_R, H - PAD_T - PAD_B

    def sx(x: float) -> float:
        return PAD_L + pw * x / x_max

    def sy(y: float) -> float:
        if log_y:
            y = max(y, y_min)
            return PAD_T + ph * (1 - (math.log10(y) - math.log10(y_min)) / (math.log10(y_max) - math.log10(y_min)))
        return PAD_T + ph * (1 - y / y_max)

    out = [
        f'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {W} {H}" width="{W}" height="{H}" '
        f'font-family="sans-serif" font-size="12">',
        f'<rect width="{W}" height="{H}" fill="white"/>',
        f'<text x="{W / 2}" y="20" text-anchor="middle" font-size="14" font-weight="bold">{html.escape(title)}</text>',
    ]
    for i in range(6):
        x = x_max * i / 5
        out.append(f'<line x1="{sx(x):.1f}" y1="{PAD_T}" x2="{sx(x):.1f}" y2="{PAD_T + ph}" stroke="#eee"/>')
        out.append(f'<text x="{sx(x):.1f}" y="{PAD_T + ph + 16}" text-anchor="middle">{_fmt(x)}</text>')
    ticks = (
        [y_min * 10**k for k in range(int(round(math.log10(y_max / y_min))) + 1)]
        if log_y
        else [y_max * i / 5 for i in range(6)]
    )
    for y in ticks:
        out.append(f'<line x1="{PAD_L}" y1="{sy(y):.1f}" x2="{PAD_L + pw}" y2="{sy(y):.1f}" stroke="#eee"/>')
        out.append(f'<text x="{PAD_L - 6}" y="{sy(y) + 4:.1f}" text-anchor="end">{_fmt(y)}</text>')
    out.append(f'<rect x="{PAD_L}" y="{PAD_T}" width="{pw}" height="{ph}" fill="none" stroke="#444"/>')
    out.append(f'<text x="{PAD_L + pw / 2}" y="{H - 10}" text-anchor="middle">{html.escape(x_label)}</text>')
    out.append(
        f'<text transform="translate(16 {PAD_T + ph / 2}) rotate(-90)" text-anchor="middle">'
        f"{html.escape(y_label)}</text>"
    )
    for i, (label, ps, colour, dash) in enumerate(series):
        if not ps:
            continue
        path = " ".join(f"{sx(x):.1f},{sy(y):.1f}" for x, y in ps)
        dash_attr = f' stroke-dasharray="{dash}"' if dash else ""
        out.append(f'<polyline points="{path}" fill="none" stroke="{colour}" stroke-width="2"{dash_attr}/>')
        if len(ps) <= 40:
            out += [f'<circle cx="{sx(x):.1f}" cy="{sy(y):.1f}" r="2.5" fill="{colour}"/>' for x, y in ps]
        ly = PAD_T + 14 + 16 * i
        out.append(
            f'<line x1="{PAD_L + 10}" y1="{ly - 4}" x2="{PAD_L + 34}" y2="{ly - 4}" stroke="{colour}" '
            f'stroke-width="2"{dash_attr}/>'
        )
        out.append(f'<text x="{PAD_L + 40}" y="{ly}">{html.escape(label)}</text>')
    out.append("</svg>")
    return "\n".join(out)


def _empty(title: str) -> str:
    return (
        f'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {W} 60" width="{W}" height="60" '
        f'font-family="sans-serif"><text x="10" y="35">{html.escape(title)}: no data</text></svg>'
    )


def charts_for(reports: Sequence[RunReport]) -> dict[str, str]:
    """Every chart that has data, by file stem."""
    charts: dict[str, str] = {}
    multi = len(reports) > 1
    lat: list[Series] = []
    for i, r in enumerate(reports):
        steps = [p for p in r.phases if p.measured and p.delivery_ms.count]
        if len(steps) < 2:
            continue
        colour = COLOURS[i % len(COLOURS)]
        for j, q in enumerate(("p50", "p99")):
            pts = [(p.acked_rate, getattr(p.delivery_ms, q)) for p in steps]
            lat.append((f"{r.target} {q}" if multi else q, pts, colour if multi else COLOURS[j], DASHES[j]))
    if lat:
        charts["latency_vs_load"] = line_chart(
            "Delivery latency against load", "acknowledged msgs/s", "delivery latency, ms (log)", lat, log_y=True
        )
    rate: list[Series] = []
    for i, r in enumerate(reports):
        if not r.timeline:
            continue
        colour = COLOURS[i % len(COLOURS)]
        prefix = f"{r.target} " if multi else ""
        acked = [(p.t, p.acked_per_s) for p in r.timeline if p.t >= 0]
        deliv = [(p.t, p.delivered_per_s) for p in r.timeline if p.t >= 0]
        rate.append((prefix + "msgs/s in (acked)", acked, colour if multi else COLOURS[0], ""))
        rate.append((prefix + "deliveries/s out", deliv, colour if multi else COLOURS[1], "6 3"))
    if rate:
        charts["rate_over_time"] = line_chart("Throughput over time", "seconds since start", "per second", rate)
    lat_t: list[Series] = []
    for i, r in enumerate(reports):
        pts99 = [(p.t, p.delivery_p99_ms) for p in r.timeline if p.t >= 0 and p.delivery_p99_ms > 0]
        pts50 = [(p.t, p.delivery_p50_ms) for p in r.timeline if p.t >= 0 and p.delivery_p50_ms > 0]
        prefix = f"{r.target} " if multi else ""
        colour = COLOURS[i % len(COLOURS)]
        if pts99:
            lat_t.append((prefix + "p99", pts99, colour if multi else COLOURS[1], ""))
            lat_t.append((prefix + "p50", pts50, colour if multi else COLOURS[0], "6 3"))
    if lat_t:
        charts["latency_over_time"] = line_chart(
            "Delivery latency over time (by send time)",
            "seconds since start",
            "delivery latency, ms (log)",
            lat_t,
            log_y=True,
        )
    depth: list[Series] = []
    for i, r in enumerate(reports):
        pts = [(s.t, s.queue_depth) for s in r.server_samples if s.queue_depth is not None]
        if any(y for _, y in pts):  # a flat zero line says nothing
            depth.append((r.target if multi else "ingest queue depth", pts, COLOURS[i % len(COLOURS)], ""))
    if depth:
        charts["queue_depth"] = line_chart(
            "Server ingest queue depth (from /metrics)", "seconds since connect", "queued sends", depth
        )
    return charts


def _key(r: RunReport) -> float:
    """What ranks runs of one target: the sustainable rate of a ramp, else delivery p99 (lower is better)."""
    if r.sustainable_rate is not None:
        return r.sustainable_rate
    if r.connect is not None:
        return r.connect.connect_ms.p99
    return -r.delivery_ms.p99


def median_report(runs: Sequence[RunReport]) -> RunReport:
    """The run in the middle (by :func:`_key`): a real run, so its numbers belong together."""
    ordered = sorted(runs, key=_key)
    return ordered[(len(ordered) - 1) // 2]


def format_rounds(rounds: Sequence[Sequence[RunReport]]) -> str:
    """Each round's headline figures per target, so the spread between runs is visible."""
    first = rounds[0][0]
    what = (
        "sustainable msgs/s"
        if first.sustainable_rate is not None
        else "connect p99 ms"
        if first.connect is not None
        else "delivery p99 ms"
    )
    lines = ["", f"rounds ({what}, then msgs/s in, delivery p99 ms, generator CPU %):"]
    for n, row in enumerate(rounds, 1):
        cells = []
        for r in row:
            head = (
                f"{r.sustainable_rate:,.0f}"
                if r.sustainable_rate is not None
                else f"{r.connect.connect_ms.p99:.1f}"
                if r.connect is not None
                else f"{r.delivery_ms.p99:.1f}"
            )
            cpu = "/".join(f"{c:.0f}" for c in r.generator.cpu_percent)
            cells.append(f"{r.target}: {head}, {r.msgs_in_per_s:,.0f}, {r.delivery_ms.p99:.1f}, {cpu}")
        lines.append(f"  round {n}: " + " | ".join(cells))
    lines.append("  the comparison below uses each target's median run")
    return "\n".join(lines) + "\n"


def format_comparison(reports: Sequence[RunReport]) -> str:
    """A table of each target's key numbers, with ratios against the first target."""
    if not reports:
        return ""
    base = reports[0]
    rows: list[tuple[str, Callable[[RunReport], float], bool]] = [
        ("msgs/s in", lambda r: r.msgs_in_per_s, True),
        ("deliveries/s", lambda r: r.deliveries_per_s, True),
        ("delivery p50 ms", lambda r: r.delivery_ms.p50, False),
        ("delivery p99 ms", lambda r: r.delivery_ms.p99, False),
        ("lost", lambda r: float(r.tally.lost), False),
    ]
    if base.sustainable_rate is not None:
        rows.insert(0, ("sustainable msgs/s", lambda r: r.sustainable_rate or 0.0, True))
    if base.connect is not None:
        rows = [
            ("connected", lambda r: float(r.connect.ok if r.connect else 0), True),
            ("connect p99 ms", lambda r: r.connect.connect_ms.p99 if r.connect else 0.0, False),
            ("RSS/conn KiB", lambda r: (r.connect.rss_per_connection or 0) / 1024 if r.connect else 0.0, False),
        ]
    width = max(18, *(len(r.target) + 2 for r in reports))
    lines = [
        "",
        f"comparison: {base.scenario.name} ({base.scenario.kind}); ratios are target ÷ {base.target}",
        "",
        f"  {'':<20}" + "".join(f"{r.target:>{width}}" for r in reports),
    ]
    for name, get, _ in rows:
        cells = []
        for r in reports:
            v, b = get(r), get(base)
            ratio = f" ({v / b:.2f}×)" if r is not base and b else ""
            cells.append(f"{v:,.1f}{ratio}".rjust(width))
        lines.append(f"  {name:<20}" + "".join(cells))
    lines.append(
        "  generator CPU %     "
        + "".join("/".join(f"{c:.0f}" for c in r.generator.cpu_percent).rjust(width) for r in reports)
    )
    if base.sustainable_rate:
        for r in reports[1:]:
            if r.sustainable_rate:
                lines.append(
                    f"\n  {base.target} sustains {base.sustainable_rate / r.sustainable_rate:.2f}× the rate "
                    f"of {r.target}"
                )
    return "\n".join(lines) + "\n"


def html_report(reports: Sequence[RunReport]) -> str:
    """One self-contained page: summary tables (as text), comparison, and the charts inline."""
    title = "chatd bench: " + ", ".join(f"{r.scenario.name} on {r.target}" for r in reports)
    parts = [
        f"<!doctype html><meta charset='utf-8'><title>{html.escape(title)}</title>",
        "<style>body{font-family:sans-serif;max-width:960px;margin:2em auto}pre{background:#f6f6f6;"
        "padding:1em;overflow-x:auto}svg{display:block;margin:1em 0}</style>",
        f"<h1>{html.escape(title)}</h1>",
    ]
    for r in reports:
        parts.append(
            f"<h2>{html.escape(r.target)}</h2><p>started {html.escape(r.started)}, "
            f"{r.procs} load process(es)</p><pre>{html.escape(format_report(r))}</pre>"
        )
    if len(reports) > 1:
        parts.append(f"<h2>Comparison</h2><pre>{html.escape(format_comparison(reports))}</pre>")
    for svg in charts_for(reports).values():
        parts.append(svg)
    return "\n".join(parts) + "\n"
