"""The configuration schema: the attrs classes of ``etc/oort.toml`` (``Config`` and its sections) and of a rule's
``options`` (``RuleOptions``), with their defaults and the value checks the strict converter runs on them.
"""

from __future__ import annotations

import ipaddress
import logging
import re
from collections.abc import Callable, Mapping
from types import MappingProxyType
from typing import Any

import attrs

LOG_LEVELS = ("debug", "info", "warn", "warning", "error")
LOG_FORMATS = ("text", "json")
# The Python logging level of each ``logLevel`` name (read-only).
PY_LOG_LEVELS: Mapping[str, int] = MappingProxyType(
    {
        "debug": logging.DEBUG,
        "info": logging.INFO,
        "warn": logging.WARNING,
        "warning": logging.WARNING,
        "error": logging.ERROR,
    }
)
BUFFER_FULL_POLICIES = ("block", "dropOldest", "dropNewest")

# Rule options eKuiper documents (see its rule docs) that Oort does not implement. Rules exported from eKuiper
# carry them, so they are accepted and kept verbatim in ``RuleOptions.extra`` instead of failing the rule.
EKUIPER_ONLY_OPTIONS = frozenset(
    {
        "cron",
        "duration",
        "cronDatetimeRange",
        "debug",
        "logFilename",
        "planOptimizeStrategy",
        "disableBufferFullDiscard",
        "enableSaveStateBeforeStop",
        "forceExitTimeout",
        "notifySub",
        "experiment",
    }
)

# attrs metadata keys read by the converter: a value check run after the strict scalar hook, and "accepts a Go
# duration string".
META_CHECK = "oort_check"
META_DURATION = "oort_duration"
Check = Callable[[Any], "str | None"]
"""A value check: the reason the value is wrong, or None when it is fine."""


def is_loopback(host: str) -> bool:
    """Whether binding ``host`` keeps a server reachable from this machine only."""
    name = host.strip("[]").lower()
    if name == "localhost":
        return True
    try:
        return ipaddress.ip_address(name).is_loopback
    except ValueError:
        return False  # a name that may resolve anywhere


MAX_ID_LENGTH = 128
"""Longest id of a stream, table, rule, conf key or connector type: each becomes a file name."""
_ID = re.compile(r"[A-Za-z0-9_-]+")


def id_problem(value: object) -> str | None:
    """Why ``value`` is not a valid id (eKuiper's rule: letters, digits, ``_`` and ``-``, matched whole), or None."""
    if not isinstance(value, str) or not _ID.fullmatch(value):
        shown = value if isinstance(value, str) and value.isprintable() else repr(value).strip("'")
        if len(shown) > MAX_ID_LENGTH:
            shown = shown[:MAX_ID_LENGTH] + "..."
        return f"id '{shown}' contains invalid characters: only alphanumeric, hyphens and underscores are allowed"
    if len(value) > MAX_ID_LENGTH:
        return f"id of {len(value)} characters is too long: the limit is {MAX_ID_LENGTH}"
    return None


def _between(low: float, high: float | None = None) -> Check:
    def check(value: Any) -> str | None:
        if value < low or (high is not None and value > high):
            bound = f"in {low}..{high}" if high is not None else f">= {low}"
            return f"must be {bound}, got {value!r}"
        return None

    return check


def _one_of(choices: tuple[str, ...]) -> Check:
    def check(value: Any) -> str | None:
        return None if value in choices else f"must be one of {', '.join(choices)}, got {value!r}"

    return check


def _not_empty(value: Any) -> str | None:
    return None if value else "must not be empty"


def _field(default: Any, check: Check | None = None, *, duration: bool = False) -> Any:
    return attrs.field(default=default, metadata={META_CHECK: check, META_DURATION: duration})


_port = _between(0, 65535)


def _origins(values: Any) -> str | None:
    for origin in values:
        scheme, sep, rest = origin.partition("://")
        if origin == "*" or not sep or scheme not in ("http", "https") or not rest or "/" in rest.rstrip("/"):
            return f"each origin must be scheme://host[:port] (no wildcard), got {origin!r}"
    return None


def _hosts(values: Any) -> str | None:
    for host in values:
        if not host or any(c in host for c in "/:@ "):
            return f"each host must be a bare host name (or '*'), got {host!r}"
    return None


def _levels(values: Any) -> str | None:
    for name, level in values.items():
        if not isinstance(level, str) or level.lower() not in LOG_LEVELS:
            return f"the level of logger {name!r} must be one of {', '.join(LOG_LEVELS)}, got {level!r}"
    return None


def _roots(values: Any) -> str | None:
    return "each root must be a non-empty folder path" if any(not root for root in values) else None


@attrs.frozen
class BasicConf:
    """``[basic]``: the REST API endpoint, who may call it, and process-wide settings."""

    rest_ip: str = "127.0.0.1"
    rest_port: int = _field(9081, _port)
    log_level: str = _field("info", _one_of(LOG_LEVELS))
    timezone: str = _field("UTC", _not_empty)
    # Credentials on every REST route but / and /ping (runtime/api/auth.py); required off loopback.
    authentication: bool = False
    allowed_origins: tuple[str, ...] = _field((), _origins)
    allowed_hosts: tuple[str, ...] = _field((), _hosts)
    open_metrics: bool = False
    # Folders file sinks, file sources and ruleset imports may use (runtime/io/sandbox.py); empty: the
    # ``files`` folder of the data dir. Relative entries are taken from the working directory.
    file_roots: tuple[str, ...] = _field((), _roots)
    # Milliseconds a request body may take to arrive after the request head (408 beyond); also "30s".
    rest_body_timeout: int = _field(30000, _between(1), duration=True)
    # Logging (runtime/logsetup.py): eKuiper's consoleLog/fileLog/rotateSize/rotateCount/logDisableTimestamp,
    # plus the file's path, the line format, per-logger levels and the REST access log.
    console_log: bool = True
    file_log: bool = False
    log_file: str = ""
    rotate_size: int = _field(10 * 1024 * 1024, _between(1024))
    rotate_count: int = _field(3, _between(0))
    log_disable_timestamp: bool = False
    log_format: str = _field("text", _one_of(LOG_FORMATS))
    log_levels: dict[str, str] = attrs.field(factory=dict, hash=False, metadata={META_CHECK: _levels})
    access_log: bool = False


@attrs.frozen
class TlsConf:
    """``[source.httpServerTls]``: serve the data server over TLS; ``caFile`` turns on mutual TLS."""

    certfile: str = attrs.field(metadata={META_CHECK: _not_empty})
    keyfile: str = attrs.field(metadata={META_CHECK: _not_empty})
    ca_file: str = ""


@attrs.frozen
class SourceConf:
    """``[source]``: the global data server shared by server-mode http/websocket sources and sinks."""

    # Loopback by default: serving other machines is a deliberate act (give each path's conf group a token).
    http_server_ip: str = "127.0.0.1"
    http_server_port: int = _field(10081, _port)
    http_server_tls: TlsConf | None = None
    # Bytes all data-server connections together may hold (half-received messages, messages the rules have
    # not taken yet); past it connections stop reading (backpressure). Each path's maxMessageSize still applies.
    max_inbound_bytes: int = _field(64 * 1024 * 1024, _between(1024 * 1024))


@attrs.frozen
class RestartStrategy:
    """``restartStrategy``: retry a failed rule ``attempts`` times, delay * multiplier^n capped at maxDelay (ms)."""

    attempts: int = _field(0, _between(0))
    delay: int = _field(1000, _between(0))
    multiplier: float = _field(2.0, _between(1))
    max_delay: int = _field(30000, _between(0))
    jitter_factor: float = _field(0.1, _between(0, 1))


@attrs.frozen
class RuleOptions:
    """A rule's ``options`` (the rule options eKuiper documents, see its docs); also the ``[rule]`` defaults
    section of ``oort.toml``.

    Durations are integer milliseconds. ``extra`` keeps eKuiper-only options Oort accepts but ignores.
    """

    is_event_time: bool = False
    late_tolerance: int = _field(1000, _between(0), duration=True)
    concurrency: int = _field(1, _between(1))
    buffer_length: int = _field(1024, _between(1))
    send_meta_to_sink: bool = False
    send_error: bool = False
    send_nil_field: bool = False
    qos: int = _field(0, _between(0, 2))
    checkpoint_interval: int = _field(300000, _between(0), duration=True)
    restart_strategy: RestartStrategy = RestartStrategy()
    buffer_full_policy: str = _field("block", _one_of(BUFFER_FULL_POLICIES))
    extra: dict[str, Any] = attrs.field(factory=dict, hash=False)


@attrs.frozen
class Config:
    """The whole ``etc/oort.toml``. Every section is optional; an empty file means all defaults."""

    basic: BasicConf = BasicConf()
    source: SourceConf = SourceConf()
    rule: RuleOptions = RuleOptions()
