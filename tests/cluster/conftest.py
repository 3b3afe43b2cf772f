"""Multi-node fixtures: N chatd nodes behind a real nginx, on the machine's broker and PostgreSQL.

``cluster(nodes=3, settings=…)`` starts the same :class:`chatd.deploy.local.LocalCluster` that ``chatd cluster
up`` starts, with the broker under test (each test runs once per broker), the test's own namespace and database.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from chatd.deploy.local import LocalCluster, free_port
from clients import MakeCluster


@pytest.fixture
def cluster(
    tmp_path: Path, broker: tuple[str, str], namespace: str, pg_dsn: str, need_nginx: None
) -> Iterator[MakeCluster]:
    started: list[LocalCluster] = []

    def make(
        nodes: int = 3, settings: dict[str, dict[str, Any]] | None = None, broker_url: str | None = None
    ) -> LocalCluster:
        base: dict[str, dict[str, Any]] = {
            "auth": {"mode": "open"},
            "limits": {"send_rate": 0},
            "server": {"drain_timeout": 10.0},
        }
        for section, values in (settings or {}).items():
            base.setdefault(section, {}).update(values)
        backend, url = broker
        run = LocalCluster(
            tmp_path / f"cluster{len(started)}", nodes, backend, broker_url or url, pg_dsn, namespace, free_port(), base
        )
        started.append(run)
        return run.start()

    yield make
    for run in started:
        run.stop()
