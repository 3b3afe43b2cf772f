"""Typed configuration: ``chatd.toml`` → msgspec structs, with environment overrides.

Precedence, lowest first: the defaults below, the TOML file, ``CHATD_<SECTION>_<KEY>`` environment variables
(plus ``PORT``), then command-line flags. Every default is also written, with a comment, in ``chatd.toml`` at the
top of the repository; ``tests/test_config.py`` fails if the two drift apart.
"""

from __future__ import annotations

import difflib
import ipaddress
import os
import re
import tomllib
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, Literal, get_args, get_origin
from urllib.parse import urlsplit, urlunsplit

import msgspec

from chatd import registry

KiB = 1024
SEARCH_OFFSET_CEILING = 10_000  # the most search.offset_max may be (the API's documented bound)
MiB = 1024 * KiB


class _Section(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    pass


class ServerConfig(_Section):
    host: str = "127.0.0.1"
    port: int = 8000
    dev: bool = False
    node_id: str = ""
    drain_timeout: float = 10.0
    log_level: Literal["debug", "info", "warning", "error"] = "info"
    log_format: Literal["text", "json"] = "text"
    trusted_proxies: list[str] = msgspec.field(default_factory=list)


class OidcConfig(_Section):
    """``[auth.oidc]``: single sign-on with an OpenID Connect provider (``chatd.accounts.sso``); off while ``issuer`` is
    empty."""

    issuer: str = ""
    client_id: str = ""
    client_secret: str = ""
    client_secret_file: str = ""
    redirect_base: str = ""
    scopes: list[str] = msgspec.field(default_factory=lambda: ["openid", "profile", "email"])
    allowed_domains: list[str] = msgspec.field(default_factory=list)
    password_sign_in: bool = True
    label: str = "Sign in with SSO"
    flow_ttl: float = 600.0

    @property
    def enabled(self) -> bool:
        return bool(self.issuer)


class AuthConfig(_Section):
    mode: Literal["token", "open"] = "token"
    # true and false, from before invites, mean "open" and "closed"
    registration: bool | Literal["open", "invite", "closed"] = "open"
    first_user_admin: bool = False
    attempts_per_minute: float = 20.0
    registrations_per_hour: float = 20.0
    login_failures: int = 5
    account_failures: int = 20
    lockout_seconds: float = 60.0
    token_ttl: float = 0.0
    secret: str = ""
    ticket_ttl: float = 30.0
    media_ttl: float = 43200.0
    oidc: OidcConfig = msgspec.field(default_factory=OidcConfig)


def registration_mode(auth: AuthConfig) -> str:
    """``auth.registration`` as one of "open", "invite", "closed"."""
    value = auth.registration
    if isinstance(value, bool):
        return "open" if value else "closed"
    return value


class StoreConfig(_Section):
    backend: str = "sqlite"
    path: str = "chatd.db"
    synchronous: Literal["NORMAL", "FULL"] = "NORMAL"
    batch_max: int = 512
    dsn: str = ""
    min_free_bytes: int = 64 * MiB
    pool_size: int = 8
    # PostgreSQL only: bounds that keep one node's fault from stalling the others (docs/scale-out.md). 0 = off.
    lock_timeout: float = 5.0
    idle_transaction_timeout: float = 5.0
    statement_timeout: float = 30.0
    keepalive_idle: float = 10.0


class BrokerConfig(_Section):
    backend: str = "memory"
    url: str = ""
    namespace: str = "chatd"
    queue_max_messages: int = 10_000
    queue_max_bytes: int = 16 * MiB
    spill_path: str = ""
    node_timeout: float = 30.0
    presence_interval: float = 10.0
    gap_wait: float = 0.05
    sweep_interval: float = 5.0


class RoomsConfig(_Section):
    auto_create: bool = True
    replay_max: int = 1000
    history_max_limit: int = 500
    create_per_hour: float = 60.0
    dms_per_minute: float = 10.0


class LimitsConfig(_Section):
    max_frame_bytes: int = 64 * KiB
    close_frame_bytes: int = 1 * MiB
    outbound_queue_bytes: int = 1 * MiB
    send_rate: float = 20.0
    send_burst: int = 60
    max_connections: int = 20_000
    max_connections_per_user: int = 32
    handshake_timeout: float = 10.0
    heartbeat_interval: float = 30.0
    heartbeat_timeout: float = 90.0
    body_timeout: float = 10.0
    body_min_rate: int = 4096
    max_requests_per_ip: int = 64
    typing_rate: float = 1.0
    typing_burst: int = 5
    presence_rate: float = 2.0
    presence_burst: int = 100
    reactions_per_message: int = 50
    reactions_per_user: int = 20
    rest_send_timeout: float = 10.0
    pending_sends_max: int = 100_000
    hook_rate: float = 1.0
    hook_burst: int = 30
    hook_body_bytes: int = 128 * KiB


class WebConfig(_Section):
    allowed_origins: list[str] = msgspec.field(
        default_factory=lambda: ["http://localhost:*", "http://127.0.0.1:*", "http://[::1]:*"]
    )
    allow_missing_origin: bool = True


class UploadsConfig(_Section):
    dir: str = "uploads"
    max_bytes: int = 10 * MiB
    allowed_types: list[str] = msgspec.field(
        default_factory=lambda: ["image/png", "image/jpeg", "image/gif", "image/webp", "application/pdf", "text/plain"]
    )
    quota_bytes: int = 1024 * MiB
    rate: float = 0.5
    burst: int = 10
    unposted_ttl: float = 86400.0
    min_free_bytes: int = 512 * MiB


class SearchConfig(_Section):
    rate: float = 0.5
    burst: int = 10
    prefix_min: int = 2
    offset_max: int = 1000
    timeout: float = 2.0
    concurrency: int = 2


class RetentionConfig(_Section):
    messages_days: float = 0.0
    uploads_days: float = 0.0
    interval: float = 3600.0


class WebhooksConfig(_Section):
    concurrency: int = 8
    timeout: float = 10.0
    poll_interval: float = 1.0
    lease: float = 30.0
    backoff_min: float = 1.0
    backoff_max: float = 600.0
    max_attempts: int = 12
    per_room_max: int = 10
    allow_private: bool = False


class Config(_Section):
    server: ServerConfig = msgspec.field(default_factory=ServerConfig)
    auth: AuthConfig = msgspec.field(default_factory=AuthConfig)
    store: StoreConfig = msgspec.field(default_factory=StoreConfig)
    broker: BrokerConfig = msgspec.field(default_factory=BrokerConfig)
    rooms: RoomsConfig = msgspec.field(default_factory=RoomsConfig)
    limits: LimitsConfig = msgspec.field(default_factory=LimitsConfig)
    web: WebConfig = msgspec.field(default_factory=WebConfig)
    uploads: UploadsConfig = msgspec.field(default_factory=UploadsConfig)
    search: SearchConfig = msgspec.field(default_factory=SearchConfig)
    retention: RetentionConfig = msgspec.field(default_factory=RetentionConfig)
    webhooks: WebhooksConfig = msgspec.field(default_factory=WebhooksConfig)


class ConfigError(Exception):
    """A config problem, with the offending key named in the message."""


_PATH_RE = re.compile(r"`\$((?:\.[A-Za-z_][A-Za-z0-9_]*|\[\d+\])*)`")


# CHATD_* variables that are not config keys: read by other commands, or by the tests.
OTHER_VARS = frozenset({"CHATD_CONFIG", "CHATD_TOKEN", "CHATD_CHROMIUM"})
OTHER_PREFIXES = ("CHATD_BENCH_",)


def _valid_values(key: str) -> str:
    """``; valid values: a, b`` for a key with a few possible values, else nothing."""
    section, _, name = key.partition(".")
    for f in msgspec.structs.fields(_section_types().get(section, _Section)):
        if f.name != name:
            continue
        if get_origin(f.type) is Literal:
            return "; valid values: " + ", ".join(str(v) for v in get_args(f.type))
        if f.type is bool or f.type == "bool":
            return "; valid values: true, false"
    return ""


def _explain(err: msgspec.ValidationError, source: str, env_names: dict[str, str] | None = None) -> ConfigError:
    """Rewrite msgspec's ``... - at `$.server.port``` into ``server.port: ...`` so the key leads. With
    ``env_names`` (key → the variable that set it), the variable is named, since that is what the user wrote."""
    text = str(err)
    unknown = re.match(r"Object contains unknown field `([^`]+)`(?: - at `\$\.?([^`]*)`)?", text)
    if unknown:
        key = ".".join(p for p in (unknown.group(2), unknown.group(1)) if p)
        return ConfigError(f"{source}: unknown key '{key}'")
    m = _PATH_RE.search(text)
    key = m.group(1).lstrip(".") if m else "?"
    reason = text.split(" - at ")[0] + _valid_values(key)
    if env_names and key in env_names:
        return ConfigError(f"{source}: invalid value {env_names[key]} (for '{key}'): {reason}")
    return ConfigError(f"{source}: invalid value for '{key}': {reason}")


def _env_keys() -> list[tuple[str, tuple[str, ...], Any]]:
    """Every key a variable can set: (``CHATD_…`` name, its path in the config, its type). A subtable such as
    ``[auth.oidc]`` gives ``CHATD_AUTH_OIDC_<KEY>`` for each of its keys."""
    out: list[tuple[str, tuple[str, ...], Any]] = []
    for section, t in _section_types().items():
        for f in msgspec.structs.fields(t):
            if isinstance(f.type, type) and issubclass(f.type, _Section):
                for sub in msgspec.structs.fields(f.type):
                    var = f"CHATD_{section.upper()}_{f.name.upper()}_{sub.name.upper()}"
                    out.append((var, (section, f.name, sub.name), sub.type))
            else:
                out.append((f"CHATD_{section.upper()}_{f.name.upper()}", (section, f.name), f.type))
    return out


def _check_env_names(environ: dict[str, str]) -> None:
    """A misspelt CHATD_* variable stops start-up, as the same typo in the file does, instead of being ignored."""
    known = {var for var, _, _ in _env_keys()}
    bad = sorted(
        var
        for var in environ
        if var.startswith("CHATD_")
        and var not in known
        and var not in OTHER_VARS
        and not var.startswith(OTHER_PREFIXES)
    )
    if not bad:
        return
    hints = []
    for var in bad:
        close = difflib.get_close_matches(var, known, n=1, cutoff=0.8)
        hints.append(f"{var} (did you mean {close[0]}?)" if close else var)
    raise ConfigError(
        f"environment: unknown variable{'s' if len(bad) > 1 else ''} {', '.join(hints)}; config variables are "
        "CHATD_<SECTION>_<KEY> for a key in chatd.toml, such as CHATD_STORE_PATH for [store] path"
    )


def _coerce_env(value: str, hint: Any) -> Any:
    """Environment values are strings; lists may be written as JSON or comma-separated."""
    if getattr(hint, "__origin__", None) is list:
        value = value.strip()
        if value.startswith("["):
            return msgspec.json.decode(value)
        return [v.strip() for v in value.split(",") if v.strip()]
    return value


def _env_overrides(environ: dict[str, str], names: dict[str, str]) -> dict[str, dict[str, Any]]:
    """The overrides the environment makes; ``names`` is filled with key → ``VAR='value'`` that set it."""
    out: dict[str, dict[str, Any]] = {}
    for var, path, hint in _env_keys():
        if var in environ:
            target = out.setdefault(path[0], {})
            for part in path[1:-1]:
                target = target.setdefault(part, {})
            target[path[-1]] = _coerce_env(environ[var], hint)
            names[".".join(path)] = f"{var}={environ[var]!r}"
    if "PORT" in environ and "CHATD_SERVER_PORT" not in environ:
        out.setdefault("server", {})["port"] = environ["PORT"]
        names["server.port"] = f"PORT={environ['PORT']!r}"
    return out


def _section_types() -> dict[str, type]:
    return {f.name: f.type for f in msgspec.structs.fields(Config)}


def _merge(base: dict[str, Any], over: dict[str, dict[str, Any]]) -> dict[str, Any]:
    merged = {k: (dict(v) if isinstance(v, dict) else v) for k, v in base.items()}
    for section, values in over.items():
        target = merged.setdefault(section, {})
        if not isinstance(target, dict):
            raise ConfigError(f"'{section}' must be a table")
        for key, value in values.items():
            # A subtable ([auth.oidc]) is merged key by key too, so one variable does not drop the file's others.
            if isinstance(value, dict) and isinstance(target.get(key), dict):
                target[key] = {**target[key], **value}
            else:
                target[key] = value
    return merged


def load_config(
    path: str | Path | None = None,
    environ: dict[str, str] | None = None,
    overrides: dict[str, dict[str, Any]] | None = None,
) -> Config:
    """Build the effective config. Raises ConfigError naming the bad key."""
    environ = dict(os.environ if environ is None else environ)
    raw: dict[str, Any] = {}
    source = "defaults"
    if path is not None:
        p = Path(path)
        source = str(p)
        try:
            raw = tomllib.loads(p.read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise ConfigError(f"{source}: no such config file") from None
        except tomllib.TOMLDecodeError as e:
            raise ConfigError(f"{source}: not valid TOML: {e}") from None
    # File values are strict (a port written as "80" is a mistake); env values are strings by nature.
    try:
        cfg = msgspec.convert(raw, Config)
    except msgspec.ValidationError as e:
        raise _explain(e, source) from None
    _check_env_names(environ)
    env_names: dict[str, str] = {}
    env = _env_overrides(environ, env_names)
    if env:
        try:
            cfg = msgspec.convert(_merge(msgspec.to_builtins(cfg), env), Config, strict=False)
        except msgspec.ValidationError as e:
            raise _explain(e, "environment", env_names) from None
    if overrides:
        try:
            cfg = msgspec.convert(_merge(msgspec.to_builtins(cfg), overrides), Config, strict=False)
        except msgspec.ValidationError as e:
            raise _explain(e, "command line") from None
    if cfg.server.dev:
        cfg.auth.mode = "open"
    validate(cfg)
    return cfg


# Bounds a type cannot say, as data. Above zero: counts, sizes and durations that 0 would break.
_ABOVE_ZERO = (
    "auth.ticket_ttl",
    "auth.media_ttl",
    "store.batch_max",
    "store.pool_size",
    "broker.queue_max_messages",
    "broker.queue_max_bytes",
    "broker.node_timeout",
    "broker.presence_interval",
    "broker.sweep_interval",
    "rooms.replay_max",
    "rooms.history_max_limit",
    "limits.max_frame_bytes",
    "limits.outbound_queue_bytes",
    "limits.max_connections",
    "limits.max_connections_per_user",
    "limits.handshake_timeout",
    "limits.heartbeat_interval",
    "limits.heartbeat_timeout",
    "limits.body_timeout",
    "limits.reactions_per_message",
    "limits.reactions_per_user",
    "limits.hook_body_bytes",
    "uploads.max_bytes",
    "search.burst",
    "search.prefix_min",
    "search.concurrency",
    "retention.interval",
    "webhooks.concurrency",
    "webhooks.timeout",
    "webhooks.poll_interval",
    "webhooks.lease",
    "webhooks.backoff_min",
    "webhooks.backoff_max",
    "webhooks.max_attempts",
)

# Zero or more, with what 0 means (said in the message, so whoever sees it knows how to turn a feature off).
_OFF = "0 turns it off"
_RATE_OFF = "0 turns the rate limit off"
_ZERO_OR_MORE = {
    "auth.attempts_per_minute": _OFF,
    "auth.registrations_per_hour": _OFF,
    "auth.login_failures": _OFF,
    "auth.account_failures": _OFF,
    "auth.lockout_seconds": _OFF,
    "auth.token_ttl": _OFF,
    "store.min_free_bytes": _OFF,
    "store.lock_timeout": _OFF,
    "store.idle_transaction_timeout": _OFF,
    "store.statement_timeout": _OFF,
    "store.keepalive_idle": _OFF,
    "broker.gap_wait": "",
    "rooms.create_per_hour": _OFF,
    "rooms.dms_per_minute": _OFF,
    "limits.send_rate": _RATE_OFF,
    "limits.hook_rate": _RATE_OFF,
    "limits.body_min_rate": _OFF,
    "limits.max_requests_per_ip": _OFF,
    "limits.typing_rate": _OFF,
    "limits.presence_rate": _OFF,
    "uploads.quota_bytes": _OFF,
    "uploads.rate": _OFF,
    "uploads.unposted_ttl": _OFF,
    "uploads.min_free_bytes": _OFF,
    "search.timeout": _OFF,
    "retention.messages_days": "0 keeps everything",
    "retention.uploads_days": "0 keeps everything",
    "webhooks.per_room_max": "0: no bound",
}

_NAMESPACE = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,63}")
_DOMAIN = re.compile(r"[a-z0-9]([a-z0-9-]*[a-z0-9])?(\.[a-z0-9]([a-z0-9-]*[a-z0-9])?)+")


def validate(cfg: Config) -> None:
    """Cross-field checks that a type alone cannot express: every problem found, in one ConfigError."""
    problems = [problem for check in _CHECKS for problem in check(cfg)]
    if problems:
        raise ConfigError("; ".join(problems))


def _setting(cfg: Config, key: str) -> Any:
    section, _, name = key.partition(".")
    return getattr(getattr(cfg, section), name)


def _bounds(cfg: Config) -> Iterator[str]:
    for key in _ABOVE_ZERO:
        if (value := _setting(cfg, key)) <= 0:
            yield f"'{key}' must be > 0 (got {value})"
    for key, zero in _ZERO_OR_MORE.items():
        if _setting(cfg, key) < 0:
            yield f"'{key}' must be >= 0 ({zero})" if zero else f"'{key}' must be >= 0"


def _server(cfg: Config) -> Iterator[str]:
    if not 1 <= cfg.server.port <= 65535:
        yield f"'server.port' must be 1-65535 (got {cfg.server.port})"
    for proxy in cfg.server.trusted_proxies:
        try:
            ipaddress.ip_network(proxy, strict=False)
        except ValueError:
            yield f"'server.trusted_proxies': {proxy!r} is not an IP address or network"


def _backends(cfg: Config) -> Iterator[str]:
    for kind, key, backend, needs in (
        ("brokers", "broker", cfg.broker.backend, "url"),
        ("stores", "store", cfg.store.backend, "dsn"),
    ):
        known = registry.names(kind)
        if backend not in known:
            yield f"unknown {key} backend {backend!r} in '{key}.backend'; choose one of: {', '.join(known)}"
        elif backend not in ("memory", "sqlite") and not getattr(getattr(cfg, key), needs):
            yield f"'{key}.{needs}' is needed for {key} backend {backend!r}"


def _broker(cfg: Config) -> Iterator[str]:
    if cfg.broker.presence_interval >= cfg.broker.node_timeout:
        yield "'broker.presence_interval' must be below 'broker.node_timeout'"
    if not _NAMESPACE.fullmatch(cfg.broker.namespace):
        yield (
            "'broker.namespace' must be 1-64 characters of A-Z a-z 0-9 _ . - starting with a letter "
            f"or digit (got {cfg.broker.namespace!r})"
        )


def _limits(cfg: Config) -> Iterator[str]:
    limits = cfg.limits
    if limits.close_frame_bytes < limits.max_frame_bytes:
        yield "'limits.close_frame_bytes' must be >= 'limits.max_frame_bytes'"
    # A rate with no burst would refuse everything; with the rate off the burst is unused.
    for rate, burst in ((limits.send_rate, "send_burst"), (limits.hook_rate, "hook_burst")):
        if rate > 0 and getattr(limits, burst) < 1:
            yield f"'limits.{burst}' must be >= 1"


def _search(cfg: Config) -> Iterator[str]:
    if not 0 <= cfg.search.offset_max <= SEARCH_OFFSET_CEILING:
        yield f"'search.offset_max' must be 0-{SEARCH_OFFSET_CEILING} (got {cfg.search.offset_max})"


def _webhooks(cfg: Config) -> Iterator[str]:
    if cfg.webhooks.lease < 2 * cfg.webhooks.timeout:
        # A lease must outlive a POST with room to spare, or a slow receiver lets a second node deliver alongside.
        yield "'webhooks.lease' must be at least twice 'webhooks.timeout'"


def _oidc(cfg: Config) -> Iterator[str]:
    oidc = cfg.auth.oidc
    if oidc.enabled:
        yield from _oidc_provider(cfg.auth)
    elif not oidc.password_sign_in:
        yield "'auth.oidc.password_sign_in' = false needs 'auth.oidc.issuer': nobody could sign in"


def _oidc_provider(auth: AuthConfig) -> Iterator[str]:
    """What single sign-on needs once ``auth.oidc.issuer`` is set."""
    oidc = auth.oidc
    if auth.mode != "token":
        yield "'auth.oidc' needs 'auth.mode' = \"token\" (open mode has no sign-in to replace)"
    for key in ("issuer", "redirect_base"):
        url = urlsplit(getattr(oidc, key))
        # Plain http only to this machine (a provider or a server under test); anything else would carry codes
        # and tokens in the clear.
        if url.scheme != "https" and not (url.scheme == "http" and is_loopback(url.hostname or "")):
            yield f"'auth.oidc.{key}' must be an https:// URL (http:// only on loopback)"
    if not oidc.client_id:
        yield "'auth.oidc.client_id' is needed with 'auth.oidc.issuer'"
    if oidc.client_secret and oidc.client_secret_file:
        yield "set one of 'auth.oidc.client_secret' and 'auth.oidc.client_secret_file', not both"
    if "openid" not in oidc.scopes:
        yield "'auth.oidc.scopes' must include \"openid\""
    if oidc.flow_ttl <= 0:
        yield "'auth.oidc.flow_ttl' must be > 0"
    for domain in oidc.allowed_domains:
        if not _DOMAIN.fullmatch(domain):
            yield f"'auth.oidc.allowed_domains': {domain!r} is not a lower-case domain name"


# Each section's checks that relate keys or read their form; ``_bounds`` has the plain numeric ones.
_CHECKS: tuple[Callable[[Config], Iterator[str]], ...] = (
    _bounds,
    _server,
    _oidc,
    _backends,
    _broker,
    _limits,
    _search,
    _webhooks,
)


def is_loopback(host: str) -> bool:
    return host in ("localhost", "::1") or host.startswith("127.")


_KV_PASSWORD = re.compile(r"(?P<head>\bpassword\s*=\s*)(?:'[^']*'|[^\s&]+)", re.I)


def safe_url(url: str) -> str:
    """A broker URL or store DSN fit for a message or a log line: any password replaced by ``***``, the rest (user,
    host, port, database) kept, since that is what an operator needs to see where it failed."""
    parts = urlsplit(url)
    if parts.netloc and "@" in parts.netloc:
        userinfo, _, hostport = parts.netloc.rpartition("@")
        if ":" in userinfo:
            userinfo = userinfo.split(":", 1)[0] + ":***"
        url = urlunsplit(parts._replace(netloc=f"{userinfo}@{hostport}"))
    return _KV_PASSWORD.sub(r"\g<head>***", url)


def dump_toml(cfg: Config) -> str:
    """Render the effective settings as TOML (for ``chatd config check``), the SSO client secret masked: the output
    is made to be pasted into issues and chat."""
    settings = msgspec.to_builtins(cfg)
    if settings["auth"]["oidc"]["client_secret"]:
        settings["auth"]["oidc"]["client_secret"] = "***"
    return settings_to_toml(settings)


def settings_to_toml(settings: dict[str, dict[str, Any]]) -> str:
    """Render ``{section: {key: value}}`` as TOML; enough for chatd's flat config (also used by the bench and the
    tests to write configs for servers they start)."""
    lines: list[str] = []
    for section, values in settings.items():
        lines.append(f"[{section}]")
        lines += [f"{key} = {toml_value(value)}" for key, value in values.items() if not isinstance(value, dict)]
        lines.append("")
        for key, value in values.items():
            if isinstance(value, dict):  # a subtable, such as [auth.oidc]
                lines.append(f"[{section}.{key}]")
                lines += [f"{k} = {toml_value(v)}" for k, v in value.items()]
                lines.append("")
    return "\n".join(lines)


def toml_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return repr(value)
    if isinstance(value, list):
        return "[" + ", ".join(toml_value(v) for v in value) + "]"
    return msgspec.json.encode(str(value)).decode()
