from __future__ import annotations

import os
import secrets
import subprocess
import sys
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))

import services  # noqa: E402
from chatd.deploy.local import (  # noqa: E402
    LocalCluster,
    NginxProcess,
    drop_database,
    ensure_database,
    port_open,
)
from chatd.deploy.procs import free_port  # noqa: E402
from harness import ChatdProcess  # noqa: E402

if TYPE_CHECKING:
    from chatd.core.node import Node

IN_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")


# --- the fast tier (./scripts/test --fast) -------------------------------------------------------------------------
# Tests marked ``fast`` run in this process: no server process, browser or outside service (a module says
# ``pytestmark = pytest.mark.fast``; a contract marks its in-process backend's parameter). ``--fast`` runs only them,
# for the inner loop; CI runs everything.


_EXIT_STATUS: list[int] = []


@pytest.hookimpl(trylast=True)
def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    _EXIT_STATUS.append(int(exitstatus))


def pytest_unconfigure(config: pytest.Config) -> None:
    """A store a test forgot to close leaves its connections' worker threads running, and the interpreter would
    wait for them forever after the summary (a CI run that never ends). Name them, and end with pytest's status."""
    import threading

    left = [t.name for t in threading.enumerate() if t is not threading.main_thread() and not t.daemon]
    if left and _EXIT_STATUS:
        print(f"\nthreads a test left running (a store not closed?): {', '.join(sorted(left))}", file=sys.stderr)
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(_EXIT_STATUS[-1])


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption("--fast", action="store_true", help="run only the in-process tier (tests marked fast)")


def _says_fast(path: Path) -> bool:
    files = [path] if path.is_file() else path.rglob("test_*.py")
    return any("mark.fast" in f.read_text(encoding="utf-8") for f in files)


def pytest_ignore_collect(collection_path: Path, config: pytest.Config) -> bool | None:
    """Under ``--fast`` a test module (or folder) that never says ``mark.fast`` is not even imported: importing
    every module, and the browser driver and the rest they import, took longer than the tier's tests."""
    if not config.getoption("fast"):
        return None
    if collection_path.is_dir() and collection_path.name not in ("__pycache__",):
        return None if _says_fast(collection_path) else True
    if collection_path.name.startswith("test_") and collection_path.suffix == ".py":
        return None if _says_fast(collection_path) else True
    return None


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if not config.getoption("fast"):
        return
    slow = [item for item in items if item.get_closest_marker("fast") is None]
    if slow:
        config.hook.pytest_deselected(items=slow)
        items[:] = [item for item in items if item.get_closest_marker("fast") is not None]


@pytest.fixture(autouse=True)
def _fast_means_in_process(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> None:
    """Under ``--fast`` a test that starts a process fails, naming the reason, instead of slowing the tier down."""
    if not request.config.getoption("fast"):
        return

    def refuse(*args: Any, **kwargs: Any) -> None:
        raise AssertionError("a test marked fast started a process: it belongs outside the fast tier")

    monkeypatch.setattr(subprocess.Popen, "__init__", refuse)
    monkeypatch.setattr(os, "fork", refuse)  # multiprocessing's workers


@pytest.fixture
async def node(tmp_path: Path) -> AsyncIterator[Node]:
    """A started in-process Node: memory broker, SQLite, its files in the test's ``tmp_path`` (tests/inprocess.py)."""
    from inprocess import node_config

    from chatd.core.node import Node

    started = Node(node_config(tmp_path))
    await started.start()
    yield started
    await started.close()


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ChatdProcess]:
    """A chatd in open mode shared by a test module; tests use their own room names."""
    proc = ChatdProcess(tmp_path_factory.mktemp("chatd")).start()
    yield proc
    proc.stop()


@pytest.fixture(scope="module")
def token_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ChatdProcess]:
    """A chatd in token mode shared by a test module."""
    proc = ChatdProcess(tmp_path_factory.mktemp("chatd"), {"auth": {"mode": "token"}}).start()
    yield proc
    proc.stop()


@pytest.fixture
def make_server(tmp_path: Path) -> Iterator:
    """Start servers with custom settings; all are stopped (or killed) at the end of the test."""
    started: list[ChatdProcess] = []

    def make(settings: dict | None = None, env: dict | None = None, sub: str = "srv") -> ChatdProcess:
        proc = ChatdProcess(tmp_path / f"{sub}{len(started)}", settings, env)
        started.append(proc)
        return proc

    yield make
    for proc in started:
        try:
            proc.stop(15)
        except Exception:
            proc.kill()


# --- the machine's services: Redis, RabbitMQ, PostgreSQL, nginx ----------------------------------------------------
# Every test gets its own broker namespace and its own PostgreSQL database, so runs (and tests) never see each
# other's data. A missing service skips its tests with the reason, and fails them under CI.

REDIS_URL = "redis://127.0.0.1:6379/0"
RABBIT_URL = "amqp://guest:guest@127.0.0.1:5672/"
PG_SERVER = "postgresql://postgres@127.0.0.1:5432"


def need(service: str, ok: bool) -> None:
    if ok:
        return
    message = f"{service} is not available on this machine"
    if IN_CI:
        pytest.fail(message + " (required under CI)")
    pytest.skip(message)


@pytest.fixture
def namespace() -> str:
    return f"t{secrets.token_hex(5)}"


@pytest.fixture
def redis_url(namespace: str) -> Iterator[str]:
    need("Redis on 127.0.0.1:6379", port_open(6379))
    yield REDIS_URL
    services.drop_redis_namespace(REDIS_URL, namespace)


@pytest.fixture
def rabbit_url(namespace: str) -> Iterator[str]:
    need("RabbitMQ on 127.0.0.1:5672", port_open(5672))
    yield RABBIT_URL
    services.drop_rabbit_namespace(namespace)


@pytest.fixture
def pg_dsn() -> Iterator[str]:
    need("PostgreSQL on 127.0.0.1:5432", port_open(5432))
    dsn = f"{PG_SERVER}/chatd_t_{secrets.token_hex(5)}"
    ensure_database(dsn)
    yield dsn
    drop_database(dsn)


@pytest.fixture(params=["redis", "rabbitmq"])
def broker(request: pytest.FixtureRequest, namespace: str) -> tuple[str, str]:
    """Each remote broker in turn: (backend, url)."""
    fixture = "redis_url" if request.param == "redis" else "rabbit_url"
    return request.param, request.getfixturevalue(fixture)


@pytest.fixture
def need_nginx() -> None:
    need("nginx (apt-get install nginx)", NginxProcess.binary() is not None)


@pytest.fixture
def cluster(
    tmp_path: Path, broker: tuple[str, str], namespace: str, pg_dsn: str, need_nginx: None
) -> Iterator[Callable[..., LocalCluster]]:
    """``cluster(nodes=3, settings=…)``: the same LocalCluster ``chatd cluster up`` starts, over the broker under
    test (tests using it run once per broker), with the test's own namespace and database, behind nginx."""
    started: list[LocalCluster] = []

    def make(
        nodes: int = 3,
        settings: dict[str, dict[str, Any]] | None = None,
        broker_url: str | None = None,
        node_env: dict[int, dict[str, str]] | None = None,
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
            tmp_path / f"cluster{len(started)}",
            nodes,
            backend,
            broker_url or url,
            pg_dsn,
            namespace,
            free_port(),
            base,
            node_env,
        )
        started.append(run)
        return run.start()

    yield make
    for run in started:
        run.stop()
