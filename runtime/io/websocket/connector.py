"""The ``websocket`` source and sink factories: conf group + stream/action properties -> a mode's connector.

A source reads its conf group (``etc/sources/websocket.toml``, CONF_KEY, merged with EXTRA by the planner):
an empty ``addr`` gives a server-mode source (clients connect to Oort's data server on DATASOURCE), otherwise a
client-mode source (Oort dials ``scheme://addr`` + DATASOURCE). A sink is configured in the rule action itself:
``path`` (required), and for client mode ``addr``, ``scheme`` and the TLS keys; ``confKey`` names a conf group of
``etc/sources/websocket.toml`` to start from, so a source and a sink can share one address and its TLS files.

The registry also gets this module's conf group check (``check_websocket_conf``, run by the REST API before a
conf group is saved) and connection test (``test_websocket_connection``).

The mode modules are imported inside the factories: they pull in wsproto, which the
registry (imported by every engine, CLI and test) does not need until a websocket rule is actually built.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

import trio

from runtime.clock import Clock
from runtime.config import conf_group
from runtime.errors import ConfigError, EngineError, PlanError
from runtime.formats.decode import make_decoder
from runtime.io.contract import Sink, SinkSpec, Source, SourceSpec
from runtime.io.services import Services
from runtime.io.websocket.conf import WsConf, parse_ws_conf
from runtime.metrics import ConnectionMetrics
from runtime.sql.ast import StreamDef, StreamOptions

LOGGER = logging.getLogger("oort.websocket")
SINK_CONF_KEY = "confKey"
"""Action property naming a conf group of ``etc/sources/websocket.toml`` the sink starts from."""

# Action properties a websocket sink accepts besides the conf keys: its path, conf group and the format helpers
# its encoder reads. (The runtime's own keys, the cache's among them, never reach a connector.)
_SINK_OWN = frozenset({"path", SINK_CONF_KEY, "format", "delimiter", "hasHeader", "schemaId"})


def websocket_source(spec: SourceSpec) -> Source:
    """Source factory for ``TYPE="websocket"``: a ``ServerSource`` for an empty ``addr``, else a ``ClientSource``.

    Raises:
      PlanError: a bad conf group (every problem listed), a DATASOURCE not starting with ``/`` or a FORMAT
        that cannot be decoded; the message names the stream.
      SourceError: the mode's own checks (malformed address).
    """
    where = f"stream {spec.stream}"
    if not spec.datasource.startswith("/"):
        raise PlanError(
            f"{where}: websocket DATASOURCE must be a URL path starting with '/', got {spec.datasource!r}"
        )
    conf = parse_ws_conf(dict(spec.props), f"{where}: websocket conf group")
    definition = spec.definition or StreamDef(
        spec.stream, "stream", (), StreamOptions(datasource=spec.datasource, format=spec.format or "json")
    )
    decoder = make_decoder(definition)
    if conf.server_mode:
        from runtime.io.websocket.server_mode import ServerSource

        return ServerSource(spec, conf, decoder)
    from runtime.io.websocket.client_mode import ClientSource

    return ClientSource(spec, conf, decoder)


def sink_conf(spec: SinkSpec) -> tuple[WsConf, str]:
    """The sink's connection settings and path from its action properties (over ``confKey``'s group).

    Raises:
      PlanError: no ``path`` or one not starting with ``/``, an unknown conf group, unknown keys or bad values.
    """
    where = f"websocket sink (action {spec.index})"
    props = spec.props
    path = props.get("path")
    if not isinstance(path, str) or not path.startswith("/"):
        raise PlanError(f"{where}: property 'path' is required and must start with '/', got {path!r}")
    base: dict[str, Any] = {}
    key = props.get(SINK_CONF_KEY)
    if key is not None:
        if not isinstance(key, str) or not key:
            raise PlanError(f"{where}: {SINK_CONF_KEY} must be a conf group name, got {key!r}")
        etc_dir = spec.ctx.services.etc_dir
        if etc_dir is None:
            raise PlanError(f"{where}: {SINK_CONF_KEY} needs the engine's etc folder")
        try:
            base = conf_group(etc_dir, "sources", "websocket", key, spec.ctx.services.conf_overlay)
        except ConfigError as exc:
            raise PlanError(f"{where}: {exc.message}") from exc
    own = {k: v for k, v in props.items() if k not in _SINK_OWN}
    return parse_ws_conf({**base, **own}, where), path


def websocket_sink(spec: SinkSpec) -> Sink:
    """Sink factory for the ``websocket`` action: ``ServerSink`` without ``addr``, else ``ClientSink``.

    Raises:
      PlanError: see ``sink_conf``; an unknown ``format``.
      SinkError: the mode's own checks (malformed address).
    """
    conf, path = sink_conf(spec)
    if conf.server_mode:
        from runtime.io.websocket.server_mode import ServerSink

        return ServerSink(spec, conf, path)
    from runtime.io.websocket.client_mode import ClientSink

    return ClientSink(spec, conf, path)


def check_websocket_conf(props: Mapping[str, Any], where: str) -> None:
    """The registry's conf group check: every wrong key or value of a websocket conf group at once.

    Raises:
      PlanError: unknown keys (naming the nearest valid one) and bad values, each prefixed by ``where``.
    """
    parse_ws_conf(dict(props), where)


async def test_websocket_connection(services: Services, clock: Clock, props: Mapping[str, Any]) -> str:
    """The registry's connection test: dial a client-mode conf group (``datasource`` is the URL path).

    Uses the engine's real shared-connection pool (joining an identical live connection if one exists) and
    waits up to the conf group's ``connectTimeout`` for the connection.

    Raises:
      EngineError: invalid properties, server mode (nothing to dial) or the connection failed (with why).
    """
    values = dict(props)
    path = str(values.pop("datasource", "/") or "/")
    conf = parse_ws_conf(values, "connection test")
    if conf.server_mode:
        raise EngineError("connection test: addr is empty (server mode has nothing to dial)")
    metrics = ConnectionMetrics()
    async with services.ws_clients.subscribe(conf, path, clock=clock, metrics=metrics) as client:
        with trio.move_on_after(conf.connect_timeout + 0.5):
            await client.wait_connected()
            return f"connected to {client.url}"
    # One answer for every failure (refused, reset, not a websocket server, TLS, HTTP status): a detailed one
    # would tell a caller which ports of the daemon's network are open. The reason goes to the log, and the
    # wait is the same connectTimeout whatever happened, since the client keeps retrying until then.
    LOGGER.info(
        "connection test to %s failed: %s", client.url, metrics.last_disconnected_message or "timed out"
    )
    raise EngineError(
        f"cannot connect to {client.url}: no websocket connection within {conf.connect_timeout:g} s "
        "(the daemon's log has the reason)"
    )
