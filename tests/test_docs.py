"""Docs that must not drift from the code."""

from __future__ import annotations

import re
from pathlib import Path

import msgspec

from chatd.config import Config
from chatd.errors import markdown_tables

ROOT = Path(__file__).resolve().parent.parent


def test_protocol_and_reliability_docs_carry_the_error_table_from_the_code() -> None:
    for page in ("protocol.md", "reliability.md"):
        text = (ROOT / "docs" / page).read_text()
        block = re.search(r"<!-- error-table:start -->\n(.*?)\n<!-- error-table:end -->", text, re.S)
        assert block is not None, page
        assert block.group(1).strip() == markdown_tables().strip(), f"{page}: regenerate the table"


def test_reliability_page_gives_every_limit_with_its_default() -> None:
    text = (ROOT / "docs" / "reliability.md").read_text()
    cfg = Config()
    for section in ("limits", "broker", "uploads", "rooms"):
        for key in msgspec.to_builtins(getattr(cfg, section)):
            if key in ("url", "namespace", "spill_path", "backend", "auto_create", "dir"):
                continue
            assert f"`{section}.{key}`" in text, f"{section}.{key} missing from docs/reliability.md"


def test_every_setting_is_documented_in_chatd_toml() -> None:
    text = (ROOT / "chatd.toml").read_text()
    for section, values in msgspec.to_builtins(Config()).items():
        assert f"[{section}]" in text
        for key in values:
            assert re.search(rf"^# {key} = ", text, re.M), f"{section}.{key} is not documented"


def test_readme_has_the_two_commands() -> None:
    text = (ROOT / "README.md").read_text()
    assert "chatd serve" in text and "./scripts/test" in text


def test_example_configs_are_valid() -> None:
    from chatd.config import load_config

    for path in sorted((ROOT / "config").glob("*.toml")):
        load_config(path, environ={})


def test_the_protocol_pages_hello_example_is_the_hello_the_server_sends() -> None:
    """A client written from docs/protocol.md alone sees every field of hello, features included."""
    from chatd.protocol.frames import FEATURES, Hello

    text = (ROOT / "docs" / "protocol.md").read_text()
    examples = [msgspec.json.decode(line[2:]) for line in text.splitlines() if line.startswith('← {"type":"hello"')]
    assert examples, "docs/protocol.md has no hello example"
    for example in examples:
        assert set(example) == {"type", *Hello.__struct_fields__}, example
        assert example["features"] == list(FEATURES)
