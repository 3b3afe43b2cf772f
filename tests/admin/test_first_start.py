"""Issue 21.4: docs/operations.md's install and first start, run as a script: the blocks marked ``first-start``,
every line in order, as written, with /etc/chatd and /var/lib/chatd moved into a temporary directory.

Lines only root can run (making the system user, installing into /opt, chown) are skipped by name; anything else
in those blocks must be a ``chatd`` command, so a new step in the docs is run here, not skipped silently."""

from __future__ import annotations

import os
import re
import shlex
import subprocess
import sys
import time
from pathlib import Path

import httpx

from chatd.deploy.procs import free_port
from harness import ROOT, clean_env

ROOT_ONLY = ("useradd ", "install -d ", "python3 -m venv ", "ln -s ", "chown ")
AS_SERVICE_USER = "sudo -u chatd "
PASSWORD = "the admin's long password"


def first_start_commands() -> list[str]:
    text = (ROOT / "docs" / "operations.md").read_text()
    blocks = re.findall(r"<!-- first-start -->\n```sh\n(.*?)```", text, re.S)
    assert len(blocks) >= 3, "docs/operations.md lost its first-start blocks"
    return [line for block in blocks for line in block.splitlines() if line.strip()]


def as_args(line: str, places: dict[str, str]) -> tuple[list[str], str | None]:
    """The chatd command of a docs line as argv (after ``chatd``), and the file its stdin comes from."""
    for doc_path, here in places.items():
        line = line.replace(doc_path, here)
    words = shlex.split(line.removeprefix(AS_SERVICE_USER), comments=True)
    assert words[0] == "chatd", line
    stdin = None
    if "<" in words:
        at = words.index("<")
        stdin, words = words[at + 1], words[:at]
    return words[1:], stdin


def test_the_documented_first_start_works_as_written(tmp_path: Path) -> None:
    places = {"/etc/chatd": str(tmp_path / "etc"), "/var/lib/chatd": str(tmp_path / "var")}
    (tmp_path / "admin.pass").write_text(PASSWORD + "\n")
    port = free_port()
    env = clean_env({"PORT": str(port)})  # the docs' port 8000 may be taken on this machine
    ran: list[str] = []
    server: subprocess.Popen[str] | None = None
    try:
        for line in first_start_commands():
            if line.startswith(ROOT_ONLY):
                continue
            args, stdin = as_args(line, places)
            ran.append(args[0])
            command = [sys.executable, "-m", "chatd", *args]
            if args[0] == "serve":
                server = subprocess.Popen(command, cwd=tmp_path, env=env, stderr=subprocess.PIPE, text=True)
                continue
            with open(tmp_path / stdin) if stdin else open(os.devnull) as given:
                r = subprocess.run(command, cwd=tmp_path, env=env, stdin=given, capture_output=True, text=True)
            assert r.returncode == 0, f"`{line}` failed:\n{r.stdout}{r.stderr}"
            assert "PROBLEM" not in r.stdout and "Traceback" not in r.stderr, f"`{line}`:\n{r.stdout}{r.stderr}"
        assert ran == ["init", "config", "doctor", "users", "serve"], ran
        assert (tmp_path / "var" / "chatd.db").exists()  # init's --data placed it, users add made it
        assert server is not None
        deadline = time.monotonic() + 30
        while True:
            assert server.poll() is None, server.communicate()[1]
            try:
                if httpx.get(f"http://127.0.0.1:{port}/readyz", timeout=2).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            assert time.monotonic() < deadline, "the documented chatd serve never became ready"
            time.sleep(0.2)
        login = httpx.post(
            f"http://127.0.0.1:{port}/api/auth/login", json={"username": "admin", "password": PASSWORD}, timeout=10
        )
        assert login.status_code == 200 and login.json()["user"]["admin"] is True, login.text
    finally:
        if server is not None and server.poll() is None:
            server.terminate()
            server.wait(30)
