"""Config: typed parsing, errors that name the key, environment overrides, and chatd.toml documenting defaults."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

import msgspec
import pytest

from chatd.config import Config, ConfigError, load_config
from harness import run_cli

ROOT = Path(__file__).resolve().parent.parent


def write(tmp_path: Path, text: str) -> Path:
    p = tmp_path / "c.toml"
    p.write_text(text)
    return p


def test_defaults_need_no_file() -> None:
    cfg = load_config(None, environ={})
    assert cfg.server.port == 8000 and cfg.auth.mode == "token" and cfg.store.path == "chatd.db"


@pytest.mark.parametrize(
    "text, key",
    [
        ("[server]\nprot = 1\n", "server.prot"),
        ("[nosuch]\nx = 1\n", "nosuch"),
        ("[limits]\nmax_frame_bytes = 1\nmax_frames = 2\n", "limits.max_frames"),
    ],
)
def test_unknown_keys_stop_startup_naming_the_key(tmp_path: Path, text: str, key: str) -> None:
    with pytest.raises(ConfigError, match=re.escape(f"unknown key '{key}'")):
        load_config(write(tmp_path, text), environ={})


@pytest.mark.parametrize(
    "text, key",
    [
        ('[server]\nport = "eighty"\n', "server.port"),
        ('[auth]\nmode = "maybe"\n', "auth.mode"),
        ("[limits]\nsend_rate = true\n", "limits.send_rate"),
        ('[web]\nallowed_origins = "http://x"\n', "web.allowed_origins"),
        ("server = 3\n", "server"),
    ],
)
def test_wrong_types_stop_startup_naming_the_key(tmp_path: Path, text: str, key: str) -> None:
    with pytest.raises(ConfigError, match=re.escape(f"'{key}'")):
        load_config(write(tmp_path, text), environ={})


def test_out_of_range_values_are_refused(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="server.port"):
        load_config(write(tmp_path, "[server]\nport = 70000\n"), environ={})
    with pytest.raises(ConfigError, match="close_frame_bytes"):
        load_config(write(tmp_path, "[limits]\nmax_frame_bytes = 2000\nclose_frame_bytes = 1000\n"), environ={})


def test_bad_toml_and_missing_file_are_clear(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="not valid TOML"):
        load_config(write(tmp_path, "[server\n"), environ={})
    with pytest.raises(ConfigError, match="no such config file"):
        load_config(tmp_path / "absent.toml", environ={})


def test_environment_overrides_file(tmp_path: Path) -> None:
    path = write(tmp_path, '[store]\npath = "from-file.db"\n[server]\nport = 9000\n')
    cfg = load_config(
        path,
        environ={
            "CHATD_STORE_PATH": "/tmp/env.db",
            "CHATD_AUTH_MODE": "open",
            "PORT": "9100",
            "CHATD_LIMITS_SEND_RATE": "2.5",
            "CHATD_WEB_ALLOWED_ORIGINS": "https://a.example, https://b.example",
            "CHATD_ROOMS_AUTO_CREATE": "false",
        },
    )
    assert cfg.store.path == "/tmp/env.db" and cfg.auth.mode == "open" and cfg.server.port == 9100
    assert cfg.limits.send_rate == 2.5 and cfg.rooms.auto_create is False
    assert cfg.web.allowed_origins == ["https://a.example", "https://b.example"]
    cfg = load_config(path, environ={"PORT": "9100", "CHATD_SERVER_PORT": "9200"})
    assert cfg.server.port == 9200  # the specific variable wins over the generic PORT


def test_bad_environment_values_name_the_variable_key() -> None:
    with pytest.raises(ConfigError, match=r"environment.*'server.port'"):
        load_config(None, environ={"CHATD_SERVER_PORT": "lots"})
    with pytest.raises(ConfigError, match="auth.mode"):
        load_config(None, environ={"CHATD_AUTH_MODE": "sometimes"})


def test_a_misspelt_environment_variable_stops_startup_naming_it() -> None:
    with pytest.raises(ConfigError, match=r"unknown variable CHATD_STORE_PTH \(did you mean CHATD_STORE_PATH\?\)"):
        load_config(None, environ={"CHATD_STORE_PTH": "elsewhere.db"})
    with pytest.raises(ConfigError, match="CHATD_LIMITS_NOPE, CHATD_STROE_PATH"):  # all of them at once
        load_config(None, environ={"CHATD_STROE_PATH": "x.db", "CHATD_LIMITS_NOPE": "1"})
    # Variables other commands read are not config keys, and are not refused.
    others = {"CHATD_CONFIG": "c.toml", "CHATD_TOKEN": "t", "CHATD_BENCH_ADMIN_TOKEN": "t", "CHATD_CHROMIUM": "c"}
    assert load_config(None, environ=others).server.port == 8000


def test_a_bad_port_names_the_variable_and_few_valued_keys_list_their_values() -> None:
    with pytest.raises(ConfigError, match=r"PORT='abc' \(for 'server.port'\)"):
        load_config(None, environ={"PORT": "abc"})
    with pytest.raises(ConfigError, match=r"CHATD_AUTH_MODE='opn'.*valid values: token, open$"):
        load_config(None, environ={"CHATD_AUTH_MODE": "opn"})
    with pytest.raises(ConfigError, match=r"CHATD_SERVER_DEV='maybe'.*valid values: true, false$"):
        load_config(None, environ={"CHATD_SERVER_DEV": "maybe"})


def test_serve_refuses_a_misspelt_variable_before_listening(tmp_path: Path) -> None:
    r = run_cli("serve", "--port", "0", env={"CHATD_AUTH_MOD": "open"}, cwd=tmp_path)
    assert r.returncode != 0 and "CHATD_AUTH_MOD" in r.stderr and "CHATD_AUTH_MODE" in r.stderr


def test_dev_flag_means_open_mode() -> None:
    assert load_config(None, environ={}, overrides={"server": {"dev": True}}).auth.mode == "open"


def test_chatd_toml_documents_every_default() -> None:
    """Every key appears in chatd.toml, commented out with its default; uncommented, it equals the defaults."""
    text = (ROOT / "chatd.toml").read_text()
    uncommented = "\n".join(re.sub(r"^# (\w+ = )", r"\1", line) for line in text.splitlines())
    parsed = tomllib.loads(uncommented)
    defaults = msgspec.to_builtins(Config())
    assert parsed == defaults, "chatd.toml and chatd/config.py disagree"


def test_config_check_prints_effective_settings(tmp_path: Path) -> None:
    path = write(tmp_path, "[rooms]\nreplay_max = 7\n")
    r = run_cli("config", "check", "--config", str(path), env={"CHATD_STORE_PATH": "x.db"}, cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    assert "replay_max = 7" in r.stdout and 'path = "x.db"' in r.stdout
    bad = write(tmp_path, "[rooms]\nreplay_maximum = 7\n")
    r = run_cli("config", "check", "--config", str(bad), cwd=tmp_path)
    assert r.returncode != 0 and "rooms.replay_maximum" in r.stderr


def test_serve_refuses_a_bad_config_before_listening(tmp_path: Path) -> None:
    r = run_cli("serve", "--config", str(write(tmp_path, '[server]\nport = "x"\n')), cwd=tmp_path)
    assert r.returncode != 0 and "server.port" in r.stderr


def test_the_oidc_subtable_reads_from_the_file_and_from_nested_variables(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        '[auth.oidc]\nissuer = "https://id.example.com"\nclient_id = "chatd"\nredirect_base = "https://chat.example.com"\n'
        'allowed_domains = ["example.com"]\n',
    )
    cfg = load_config(path, environ={"CHATD_AUTH_OIDC_CLIENT_SECRET": "s3cret", "CHATD_AUTH_OIDC_LABEL": "Use Okta"})
    oidc = cfg.auth.oidc
    assert oidc.enabled and oidc.issuer == "https://id.example.com" and oidc.allowed_domains == ["example.com"]
    assert oidc.client_secret == "s3cret" and oidc.label == "Use Okta"  # one variable kept the file's other keys
    with pytest.raises(ConfigError, match=r"CHATD_AUTH_OIDC_ISUER \(did you mean CHATD_AUTH_OIDC_ISSUER\?\)"):
        load_config(path, environ={"CHATD_AUTH_OIDC_ISUER": "x"})
    r = run_cli("config", "check", "--config", str(path), env={"CHATD_AUTH_OIDC_CLIENT_SECRET": "s3cret"}, cwd=tmp_path)
    assert "[auth.oidc]" in r.stdout and "s3cret" not in r.stdout, r.stdout + r.stderr
    with pytest.raises(ConfigError, match=re.escape("unknown key 'auth.oidc.isuer'")):
        load_config(write(tmp_path, '[auth.oidc]\nisuer = "x"\n'), environ={})


@pytest.mark.parametrize(
    "text, problem",
    [
        ('issuer = "http://id.example.com"\nclient_id = "c"\nredirect_base = "https://c.example"', "auth.oidc.issuer"),
        ('issuer = "https://id.example.com"\nredirect_base = "https://c.example"', "auth.oidc.client_id"),
        ('issuer = "https://id.example.com"\nclient_id = "c"', "auth.oidc.redirect_base"),
        ("password_sign_in = false", "nobody could sign in"),
        (
            'issuer = "https://i.example"\nclient_id = "c"\nredirect_base = "https://c.example"\n'
            'allowed_domains = ["Example.COM"]',
            "lower-case domain",
        ),
    ],
)
def test_an_oidc_setup_that_cannot_work_stops_startup(tmp_path: Path, text: str, problem: str) -> None:
    with pytest.raises(ConfigError, match=re.escape(problem)):
        load_config(write(tmp_path, f"[auth.oidc]\n{text}\n"), environ={})
