"""A real OpenID provider for the single sign-on tests: ``tests/oidc/provider.mjs`` (panva's oidc-provider, from the
npm registry, pinned by ``tests/oidc/package-lock.json``) on the machine's node.

``install()`` runs ``npm ci`` into ``tests/oidc/node_modules`` when the lock file changed since the last install
(a stamp records its hash), under a file lock, so it runs once however many test processes ask. Without node or npm
the tests skip with the reason, and fail under CI.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
import shutil
import subprocess
import time
from pathlib import Path
from typing import Any

import httpx
from chatpage import _unavailable

from harness import ROOT

HERE = ROOT / "tests" / "oidc"
STAMP = HERE / "node_modules" / ".chatd-lock-sha256"


def install() -> str:
    """The path of node, after making sure the pinned packages are installed."""
    node, npm = shutil.which("node"), shutil.which("npm")
    if not node or not npm:
        _unavailable("node and npm are needed to run the OpenID provider: apt-get install nodejs npm")
    assert node and npm
    want = hashlib.sha256((HERE / "package-lock.json").read_bytes()).hexdigest()
    with open(HERE / ".install.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not (STAMP.exists() and STAMP.read_text() == want):
            r = subprocess.run(
                [npm, "ci", "--no-audit", "--no-fund", "--loglevel=error"],
                cwd=HERE,
                capture_output=True,
                text=True,
                timeout=300,
            )
            if r.returncode != 0:
                _unavailable(f"npm ci in tests/oidc failed (is the npm registry reachable?):\n{r.stderr[-2000:]}")
            STAMP.write_text(want)
    return node


class OidcProvider:
    """oidc-provider on a free port of 127.0.0.1, with the given clients registered."""

    def __init__(self, workdir: Path, clients: list[dict[str, Any]]) -> None:
        self.node = install()
        self.log_path = workdir / "oidc-provider.log"
        self.clients = clients
        self.proc: subprocess.Popen[bytes] | None = None
        self.issuer = ""

    def start(self, timeout: float = 20.0) -> OidcProvider:
        env = {**os.environ, "PORT": "0", "CLIENTS": json.dumps(self.clients)}
        log = open(self.log_path, "wb")  # noqa: SIM115 - the process writes to it until stop()
        self.proc = subprocess.Popen(
            [self.node, str(HERE / "provider.mjs")], cwd=HERE, env=env, stdout=log, stderr=subprocess.STDOUT
        )
        deadline = time.monotonic() + timeout
        while not self.issuer:
            for line in self.log_path.read_text(errors="replace").splitlines():
                if line.startswith("listening "):
                    self.issuer = line.split(" ", 1)[1].strip()
            if self.proc.poll() is not None:
                raise RuntimeError(f"oidc-provider exited:\n{self.log()}")
            assert time.monotonic() < deadline, f"oidc-provider did not start:\n{self.log()}"
            time.sleep(0.05)
        return self

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def set_mode(self, mode: str) -> None:
        """How the provider spoils the ID tokens of its next token answers (see provider.mjs); "" for none."""
        httpx.post(self.issuer + "/__test/mode", json={"mode": mode}, timeout=5).raise_for_status()

    def set_account(self, sub: str, **claims: Any) -> None:
        """The claims the subject ``sub`` signs in with, over the defaults (name = sub, sub@example.com)."""
        httpx.post(self.issuer + "/__test/account", json={"sub": sub, "claims": claims}, timeout=5).raise_for_status()

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
