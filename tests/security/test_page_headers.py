"""Also weak: the web page sent no Content-Security-Policy or frame-ancestors (clickjacking, injected scripts)."""

from __future__ import annotations

import pytest

from harness import ChatdProcess


@pytest.mark.parametrize("path", ["/", "/index.html", "/js/main.js", "/style.css"])
def test_the_page_forbids_framing_inline_script_and_other_origins(hostile: ChatdProcess, path: str) -> None:
    r = hostile.get(path)
    assert r.status_code == 200
    csp = {d.split()[0]: d.split()[1:] for d in r.headers["content-security-policy"].split("; ")}
    assert csp["frame-ancestors"] == ["'none'"] and csp["default-src"] == ["'self'"]
    assert csp["script-src"] == ["'self'"] and csp["object-src"] == ["'none'"]
    assert r.headers["x-frame-options"] == "DENY" and r.headers["referrer-policy"] == "no-referrer"
