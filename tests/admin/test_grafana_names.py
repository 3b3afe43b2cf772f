"""The metric names config/grafana-dashboard.json queries (shared by the tests that check them)."""

from __future__ import annotations

import json
import re

import pytest

from harness import ROOT

pytestmark = pytest.mark.fast  # in-process: ./scripts/test --fast runs it


def dashboard_metrics() -> set[str]:
    dashboard = json.loads((ROOT / "config" / "grafana-dashboard.json").read_text())
    return {
        name
        for panel in dashboard["panels"]
        for target in panel["targets"]
        for name in re.findall(r"\b(chatd_[a-z0-9_]+)\b", target["expr"])
    }


def test_the_dashboard_queries_chatd_metrics() -> None:
    assert len(dashboard_metrics()) >= 15
