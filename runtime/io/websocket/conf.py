"""The websocket conf group (``etc/sources/websocket.toml``, one table per CONF_KEY): fields, defaults, validation.

An empty ``addr`` means server mode (clients connect to Oort's global data server on the stream's path);
``host:port`` or a ``ws://``/``wss://`` URL means client mode (Oort dials out).

``parse_ws_conf`` checks every key and lists every problem at once, each with its key, so a user fixes a conf
group in one round instead of one error per edit (eKuiper silently ignores unknown keys).
"""

from __future__ import annotations

from typing import Any, final

import attrs

from runtime.errors import ConfigProblem, PlanError
from runtime.io.confcheck import Check, as_bool, as_count, as_seconds, as_str, describe

DEFAULT_MAX_MESSAGE_SIZE = 1 << 20


@final
@attrs.frozen
class WsConf:
    """One conf group, validated. Durations are in seconds (floats)."""

    addr: str = ""
    scheme: str = "ws"
    certification_path: str = ""
    private_key_path: str = ""
    root_ca_path: str = ""
    insecure_skip_verify: bool = False
    request_headers: dict[str, str] = attrs.field(factory=dict, hash=False)
    open_message: str = ""
    connect_timeout: float = 5.0
    reconnect_min_delay: float = 0.1
    reconnect_max_delay: float = 10.0
    ping_interval: float = 20.0
    max_message_size: int = DEFAULT_MAX_MESSAGE_SIZE
    # Server mode only: cap of simultaneous connections per path (0 = no cap), a bearer token clients must
    # present (``Authorization: Bearer <token>`` or ``?token=``), and the allowed Origin headers (empty = any).
    max_connections: int = 0
    token: str = ""
    allowed_origins: tuple[str, ...] = ()

    @property
    def server_mode(self) -> bool:
        return not self.addr


def endpoint_differences(a: WsConf, b: WsConf) -> list[str]:
    """The server-mode endpoint settings (by their conf key) on which ``a`` and ``b`` differ; the token's value
    is compared, never shown."""
    differ = []
    if a.token != b.token:
        differ.append("token")
    if frozenset(a.allowed_origins) != frozenset(b.allowed_origins):
        differ.append("allowedOrigins")
    if a.max_connections != b.max_connections:
        differ.append("maxConnections")
    if a.max_message_size != b.max_message_size:
        differ.append("maxMessageSize")
    if a.ping_interval != b.ping_interval:
        differ.append("pingInterval")
    return differ


def _scheme(value: Any) -> str:
    scheme = as_str(value).strip().lower()
    if scheme not in ("ws", "wss"):
        raise ConfigProblem(f"expected 'ws' or 'wss', got {value!r}")
    return scheme


def _addr(value: Any) -> str:
    addr = as_str(value).strip()
    if not addr:
        return ""
    if "://" in addr:
        scheme, _, rest = addr.partition("://")
        if scheme.lower() not in ("ws", "wss"):
            raise ConfigProblem(f"a URL must start with ws:// or wss://, got {value!r}")
        hostport = rest.split("/", 1)[0]
        if not hostport:
            raise ConfigProblem(f"expected ws://host:port, got {value!r}")
        return addr
    host, sep, port = addr.rpartition(":")
    if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise ConfigProblem(f"expected 'host:port' or a ws:// or wss:// URL, got {value!r}")
    return addr


def _headers(value: Any) -> dict[str, str]:
    if not isinstance(value, dict):
        raise ConfigProblem(f"expected a table of header = value strings, got {describe(value)}")
    bad = sorted(str(k) for k, v in value.items() if not isinstance(k, str) or not isinstance(v, str))
    if bad:
        raise ConfigProblem(f"header values must be strings: {', '.join(bad)}")
    return dict(value)


def _origins(value: Any) -> tuple[str, ...]:
    if isinstance(value, str):
        return (value,) if value else ()
    if not isinstance(value, list) or not all(isinstance(item, str) for item in value):
        raise ConfigProblem(f"expected a list of strings, got {describe(value)}")
    return tuple(value)


# conf key (as users write it, eKuiper's camelCase) -> (WsConf attribute, checker)
_KEYS: dict[str, tuple[str, Check]] = {
    "addr": ("addr", _addr),
    "scheme": ("scheme", _scheme),
    "certificationPath": ("certification_path", as_str),
    "privateKeyPath": ("private_key_path", as_str),
    "rootCaPath": ("root_ca_path", as_str),
    "insecureSkipVerify": ("insecure_skip_verify", as_bool),
    "requestHeaders": ("request_headers", _headers),
    "openMessage": ("open_message", as_str),
    "connectTimeout": ("connect_timeout", as_seconds),
    "reconnectMinDelay": ("reconnect_min_delay", as_seconds),
    "reconnectMaxDelay": ("reconnect_max_delay", as_seconds),
    "pingInterval": ("ping_interval", as_seconds),
    "maxMessageSize": ("max_message_size", as_count),
    "maxConnections": ("max_connections", as_count),
    "token": ("token", as_str),
    "allowedOrigins": ("allowed_origins", _origins),
}

CONF_KEYS = tuple(_KEYS)
"""The keys a websocket conf group may hold, in documentation order."""


def parse_ws_conf(props: dict[str, Any], where: str) -> WsConf:
    """Validate a merged conf group (``[default]`` + named group + EXTRA) into a ``WsConf``.

    Raises:
      PlanError: every unknown key and wrong value, listed with ``where`` (e.g. ``websocket conf group 'feed'``)
        and the key, all in one message.
    """
    values: dict[str, Any] = {}
    problems: list[str] = []
    for key, raw in props.items():
        entry = _KEYS.get(key)
        if entry is None:
            problems.append(f"{key}: unknown key (known: {', '.join(CONF_KEYS)})")
            continue
        name, check = entry
        try:
            values[name] = check(raw)
        except ConfigProblem as exc:
            problems.append(f"{key}: {exc}")
    if not problems:
        conf = WsConf(**values)
        if conf.reconnect_min_delay > conf.reconnect_max_delay:
            problems.append(
                f"reconnectMinDelay: {conf.reconnect_min_delay:g}s is above "
                f"reconnectMaxDelay {conf.reconnect_max_delay:g}s"
            )
        else:
            return conf
    raise PlanError("; ".join(f"{where}: {problem}" for problem in problems))
