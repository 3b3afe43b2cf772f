"""The Grafana dashboard in config/ reads only metrics that chatd exposes, and /metrics speaks both the Prometheus
text format and OpenMetrics (from prometheus-client)."""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from pathlib import Path

from prometheus_client.parser import text_string_to_metric_families

from harness import ROOT, ChatdProcess, Client

DASHBOARD = ROOT / "config" / "grafana-dashboard.json"
PROMQL_WORDS = {"sum", "rate", "increase", "histogram_quantile", "by", "le", "instance", "min", "max"}


def queried_metrics() -> set[str]:
    dashboard = json.loads(DASHBOARD.read_text())
    names: set[str] = set()
    for panel in dashboard["panels"]:
        assert panel["title"] and panel["targets"], panel
        for target in panel["targets"]:
            found = set(re.findall(r"\b(chatd_[a-z0-9_]+)\b", target["expr"]))
            assert found, target["expr"]  # a query that reads no chatd metric is a mistake here
            names |= found
    return names


def exposed(server: ChatdProcess) -> set[str]:
    """Every sample name on /metrics (so a histogram contributes _bucket, _sum and _count)."""
    text = server.get("/metrics").text
    return {sample.name for family in text_string_to_metric_families(text) for sample in family.samples}


async def test_every_metric_the_dashboard_queries_is_exposed(make_server: Callable[..., ChatdProcess]) -> None:
    server = make_server().start()
    c = await Client.connect(server.ws, user="grafana")  # activity, so histograms and gauges have samples
    await c.join("dash")
    await c.say("dash", "hello", "g1")
    await c.close()
    missing = queried_metrics() - exposed(server)
    assert not missing, f"the dashboard queries metrics /metrics does not have: {sorted(missing)}"


def test_metrics_negotiate_openmetrics(make_server: Callable[..., ChatdProcess]) -> None:
    server = make_server().start()
    plain = server.get("/metrics")
    assert plain.headers["content-type"].startswith("text/plain; version=0.0.4")
    assert plain.headers["content-type"].count("charset") == 1
    om = server.get("/metrics", headers={"accept": "application/openmetrics-text; version=1.0.0"})
    assert om.headers["content-type"].startswith("application/openmetrics-text")
    assert om.text.rstrip().endswith("# EOF")
    assert "# TYPE chatd_messages_stored counter" in om.text  # OpenMetrics names the family without _total


def test_no_metric_has_a_per_room_or_per_user_label(make_server: Callable[..., ChatdProcess]) -> None:
    server = make_server().start()
    for family in text_string_to_metric_families(server.get("/metrics").text):
        for sample in family.samples:
            # "task": one of the node's fixed set of background tasks (chatd_task_crashes_total), never a room or user.
            assert set(sample.labels) <= {"le", "task"}, (sample.name, sample.labels)
            assert "task" not in sample.labels or sample.labels["task"].startswith("chatd-"), sample


def test_the_dashboard_is_in_the_operations_guide() -> None:
    assert Path(DASHBOARD).name in (ROOT / "docs" / "operations.md").read_text()
