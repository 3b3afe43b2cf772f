"""Docs that must not drift from the code."""

from __future__ import annotations

import re
from pathlib import Path

import msgspec

from chatd.config import Config
from chatd.errors import markdown_tables

ROOT = Path(__file__).resolve().parent.parent


def test_protocol_doc_carries_the_error_table_from_the_code() -> None:
    text = (ROOT / "docs" / "protocol.md").read_text()
    block = re.search(r"<!-- error-table:start -->\n(.*?)\n<!-- error-table:end -->", text, re.S)
    assert block is not None
    assert block.group(1).strip() == markdown_tables().strip(), "regenerate with chatd.errors.markdown_tables()"


def test_every_setting_is_documented_in_chatd_toml() -> None:
    text = (ROOT / "chatd.toml").read_text()
    for section, values in msgspec.to_builtins(Config()).items():
        assert f"[{section}]" in text
        for key in values:
            assert re.search(rf"^# {key} = ", text, re.M), f"{section}.{key} is not documented"


def test_readme_has_the_two_commands() -> None:
    text = (ROOT / "README.md").read_text()
    assert "chatd serve" in text and "./scripts/test" in text
