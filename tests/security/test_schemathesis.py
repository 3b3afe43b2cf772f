"""The OpenAPI document matches the live server: schemathesis with every check, against ``chatd serve``.

The run is bounded (``MAX_EXAMPLES`` per operation, a fixed seed unless ``SCHEMATHESIS_SEED`` is set) so the
suite stays fast. The server runs on its token-mode defaults; the only route left out is ``POST
/api/auth/logout``, which would revoke the token every other request uses.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from security.conftest import hardened, new_user

from chatd.protocol.frames import USER_PATTERN
from harness import ChatdProcess

MAX_EXAMPLES = 25
CONFIG = Path(__file__).with_name("schemathesis.toml")


def schemathesis() -> list[str]:
    exe = Path(sys.executable).with_name("schemathesis")
    if exe.exists():
        return [str(exe)]
    found = shutil.which("schemathesis")
    if found is None:
        pytest.fail("schemathesis is not installed (pip install -e '.[test]')")
    return [found]


def test_schemathesis_all_checks_pass_against_a_live_server(make_server, tmp_path: Path) -> None:
    server: ChatdProcess = make_server(hardened({"auth": {"mode": "token"}})).start()
    token = new_user(server, "schema_tester")
    seed = os.environ.get("SCHEMATHESIS_SEED", "20261123")
    cmd = [
        *schemathesis(),
        "--config-file",
        str(CONFIG),
        "run",
        f"{server.http}/schema/openapi.json",
        "--checks",
        "all",
        "--max-examples",
        str(MAX_EXAMPLES),
        "--seed",
        seed,
        "--workers",
        "1",
        "--exclude-path",
        "/api/auth/logout",
        "-H",
        f"Authorization: Bearer {token}",
        "--report-dir",
        str(tmp_path / "report"),
    ]
    run = subprocess.run(cmd, capture_output=True, text=True, timeout=600, cwd=tmp_path)
    out = run.stdout + run.stderr
    summary = re.search(r"(\d+) generated, (\d+) passed", out)
    print(f"schemathesis (seed {seed}, --checks all, --max-examples {MAX_EXAMPLES}): {summary and summary.group(0)}")
    assert run.returncode == 0, out[-6000:]
    assert summary is not None and summary.group(1) == summary.group(2) and int(summary.group(1)) > 500, out[-3000:]
    assert "Traceback" not in server.log()


def test_the_document_states_chatds_rules_and_error_shape(hostile: ChatdProcess) -> None:
    """What the old document lost: the user name pattern, ``after >= 0``, chatd's error shape, the real statuses."""
    doc = hostile.get("/schema/openapi.json").json()
    schemas = doc["components"]["schemas"]
    username = schemas["Credentials"]["properties"]["username"]
    assert username["pattern"] == USER_PATTERN and username["maxLength"] == 32
    assert schemas["Credentials"]["additionalProperties"] is False
    assert set(schemas["ErrorBody"]["required"]) == {"code", "message", "ref"}
    history = doc["paths"]["/api/rooms/{room}/messages"]["get"]
    after = next(p for p in history["parameters"] if p["name"] == "after")
    assert after["schema"]["minimum"] == 0
    assert {"200", "400", "401", "404", "429", "500"} <= set(history["responses"])
    assert "403" not in history["responses"]  # a private room's outsider is told 404, as for a missing room
    for status in ("401", "404"):
        ref = history["responses"][status]["content"]["application/json"]["schema"]["$ref"]
        assert ref.endswith("/ErrorBody")
    upload = doc["paths"]["/api/uploads"]["post"]
    assert {"413", "415", "429", "507"} <= set(upload["responses"])
    assert "application/octet-stream" in upload["requestBody"]["content"]
    assert doc["components"]["securitySchemes"]["bearer"]["scheme"] == "bearer"
