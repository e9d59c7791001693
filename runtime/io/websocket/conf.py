"""The websocket conf group (``etc/sources/websocket.toml``, one table per CONF_KEY): fields and defaults.

An empty ``addr`` means server mode (clients connect to Oort's global data server on the stream's path);
``host:port`` or a ``ws://``/``wss://`` URL means client mode (Oort dials out). See WEBSOCKET.md §1.
"""

from __future__ import annotations

from typing import Any, final

import attrs

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


def parse_ws_conf(props: dict[str, Any], where: str) -> WsConf:
    """Validate a merged conf group (``[default]`` + named group + EXTRA) into a ``WsConf``.

    Raises:
      PlanError: every unknown key and wrong type, listed with ``where`` (e.g. ``websocket conf group 'feed'``).
    """
    # Placeholder until the formats/conf work lands: accept camelCase keys of the fields, nothing else.
    names = {_camel(a.name): a.name for a in attrs.fields(WsConf)}
    unknown = sorted(set(props) - set(names))
    if unknown:
        from runtime.errors import PlanError

        raise PlanError(f"{where}: unknown key(s) {', '.join(unknown)}")
    return WsConf(**{names[k]: v for k, v in props.items()})


def _camel(name: str) -> str:
    head, *rest = name.split("_")
    return head + "".join(part.capitalize() for part in rest)
