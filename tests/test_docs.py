"""Docs that must not drift from the code."""

from __future__ import annotations

import re
from pathlib import Path

import msgspec
import pytest

from chatd.config import Config
from chatd.errors import markdown_tables

pytestmark = pytest.mark.fast  # in-process: ./scripts/test --fast runs it

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
        for key, value in values.items():
            if isinstance(value, dict):  # a subtable, such as [auth.oidc]
                assert f"[{section}.{key}]" in text, f"[{section}.{key}] is not documented"
                for sub in value:
                    assert re.search(rf"^# {sub} = ", text, re.M), f"{section}.{key}.{sub} is not documented"
                continue
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


# --- numbers that stay true (issue 21.9) ------------------------------------------------------------------------

RESULTS = ROOT / "bench" / "results"
NUMBER = re.compile(r"(?<![\w.,])\d{1,3}(?:,\d{3})+(?:\.\d+)?(?![\w])|(?<![\w.,])\d+(?:\.\d+)?(?![\w])")
CITED = re.compile(r"bench/results/([\w.-]+\.(?:txt|json))")
# A rule, not a result: "p99 ≤ 50 ms" says what was required.
THRESHOLD = re.compile(r"(?:≤|≥|<=|>=)\s*(?:" + NUMBER.pattern + ")")


UNIT = re.compile(r"\s?(ms|msgs/s|deliveries/s|sends/s|KiB|MiB|%|×)(?![\w/])")


def _numbers(text: str) -> list[tuple[str, str]]:
    """Every number with the unit right after it ("13.2", "ms"), or "" when none follows."""
    out = []
    for m in NUMBER.finditer(text):
        unit = UNIT.match(text, m.end())
        out.append((m.group(0), unit.group(1) if unit else ""))
    return out


def _matches(claim: tuple[str, str], found: list[tuple[str, str]]) -> bool:
    """``claim`` is one of the file's numbers, as printed or rounded to the claim's precision, with the same unit
    when the claim gives one. A number with the same unit elsewhere in the file (an ack p99 for a delivery p99)
    still passes: the check keeps old runs and made-up figures out, it does not read the sentence."""
    number, unit = claim
    plain = number.replace(",", "")
    decimals = len(plain.partition(".")[2])
    value = float(plain)
    for f, f_unit in found:
        if unit and f_unit != unit:
            continue
        f_plain = f.replace(",", "")
        if f_plain == plain or round(float(f_plain), decimals) == value:
            return True
    return False


def _check_claim(where: str, claim: str, sources: list[str]) -> None:
    assert sources, f"{where} quotes no bench/results file: {claim!r}"
    found: list[tuple[str, str]] = []
    for name in sources:
        path = RESULTS / name
        assert path.is_file(), f"{where} cites {name}, which bench/results/ does not have"
        found += _numbers(path.read_text())
    text = re.sub(r"\[[^\]]*\]\(bench/results/[^)]*\)|`bench/results/[^`]*`", "", claim)
    text = THRESHOLD.sub("", text)
    numbers = _numbers(text)
    assert numbers, f"{where}: no number to check in {claim!r}"
    missing = [" ".join(n).strip() for n in numbers if not _matches(n, found)]
    assert not missing, f"{where}: {missing} are not in {', '.join(sources)}: {claim!r}"


def test_readmes_numbers_are_quoted_from_bench_results() -> None:
    text = (ROOT / "README.md").read_text()
    section = text.split("\n## Numbers\n", 1)[1].split("\n## ", 1)[0]
    bullets = re.findall(r"^- (.*(?:\n  .*)*)", section, re.M)
    assert len(bullets) >= 5, "README's Numbers section lost its bullets"
    for bullet in bullets:
        _check_claim("README", " ".join(bullet.split()), CITED.findall(bullet))


def test_benchmarks_summary_quotes_its_results_files() -> None:
    text = (ROOT / "BENCHMARKS.md").read_text()
    section = text.split("\n## Summary against the targets\n", 1)[1].split("\n## ", 1)[0]
    rows = [line for line in section.splitlines() if line.startswith("| ") and not line.startswith("| target")]
    rows = [r for r in rows if not set(r) <= set("|- ")]
    assert len(rows) >= 5
    for row in rows:
        cells = [c.strip() for c in row.strip("|").split(" | ")]
        assert len(cells) == 4, row
        _check_claim("BENCHMARKS.md summary", cells[1], CITED.findall(cells[3]))


def test_the_load_test_config_lifts_exactly_the_limits_the_docs_list() -> None:
    """config/chatd.loadtest.toml, docs/bench.md's table and README's settings table name the same limits, with
    their real defaults; the file turns each off and changes nothing else that matters."""
    import tomllib

    lifted = tomllib.loads((ROOT / "config" / "chatd.loadtest.toml").read_text())
    keys = {f"{section}.{key}": value for section, values in lifted.items() for key, value in values.items()}
    keys = {k: v for k, v in keys.items() if k not in ("server.host", "server.port", "auth.mode")}
    assert keys and all(value == 0 for value in keys.values()), keys
    defaults = msgspec.to_builtins(Config())
    bench_doc = (ROOT / "docs" / "bench.md").read_text()
    table = re.search(r"<!-- loadtest-table:start -->\n(.*?)\n<!-- loadtest-table:end -->", bench_doc, re.S)
    assert table is not None
    rows = dict(re.findall(r"^\| `([\w.]+)` \| ([\d.]+) \|", table.group(1), re.M))
    assert set(rows) == set(keys), "docs/bench.md's load-test table and config/chatd.loadtest.toml differ"
    readme = (ROOT / "README.md").read_text()
    for key, shown in rows.items():
        section, name = key.split(".")
        assert float(shown) == defaults[section][name], f"{key}: docs/bench.md says {shown}"
        assert re.search(rf"^\| `{re.escape(key)}` \| {re.escape(shown)} \|", readme, re.M), f"README: {key}"


def _section(text: str, heading: str) -> str:
    return text.split(f"\n## {heading}\n", 1)[1].split("\n## ", 1)[0]


# How docs/web.md names each feature the server announces in hello (chatd.protocol.frames.FEATURES).
FEATURE_WORDS = {
    "edit": "edit",
    "delete": "delete",
    "react": "react",
    "reply": "repl",
    "topic": "topic",
    "read": "read",
    "mentions": "mention",
    "dms": "direct message",
    "search": "search",
}


def test_the_web_page_doc_is_held_to_the_page() -> None:
    """docs/web.md lists the page's files, shows what /api/server answers, describes every feature the server
    announces and does not deny any of them (it said "no notifications, no message editing, and no search")."""
    import json

    from chatd.gateway.info import ServerInfo
    from chatd.protocol.frames import FEATURES

    text = (ROOT / "docs" / "web.md").read_text()
    web = ROOT / "chatd" / "web"
    listed = set(re.findall(r"^\| `([^`]+)` \|", _section(text, "Files"), re.M))
    page_files = {
        str(p.relative_to(web)) for p in web.rglob("*") if p.is_file() and p.suffix in (".js", ".html", ".css")
    }
    assert page_files <= listed, f"docs/web.md does not list {sorted(page_files - listed)}"
    for name in listed:
        assert (web / name).exists() or (ROOT / name).exists(), f"docs/web.md lists {name}, which does not exist"
    example = re.search(r"```json\n(.*?)```", _section(text, "What the page asks the server first"), re.S)
    assert example is not None
    assert set(json.loads(example.group(1))) == set(ServerInfo.__struct_fields__)
    limits = _section(text, "Known limits").lower()
    features_text = text.lower().replace(limits, "")
    for feature in FEATURES:
        word = FEATURE_WORDS[feature]
        assert word in features_text, f"docs/web.md does not say how the page offers {feature}"
        assert not re.search(rf"\bno\b[^.\n]*\b{word}", limits), f"docs/web.md's known limits deny {feature}"
    assert not re.search(r"\bno\b[^.\n]*\bnotification", limits)
