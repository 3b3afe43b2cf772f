"""The script that makes the README screenshot still runs (into test-artifacts/, not over docs/img/)."""

from __future__ import annotations

import pytest
from chatpage import artifact, require_browser

pytestmark = pytest.mark.browser


def test_readme_screenshot_script_still_works() -> None:
    require_browser()
    from make_screenshot import make_screenshot

    out = make_screenshot(artifact("chat.png"))
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and out.stat().st_size > 10_000
