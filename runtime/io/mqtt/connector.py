"""The ``mqtt`` source and sink (eKuiper's default stream ``TYPE``) and the registry's hooks for them.

A source reads its conf group (``etc/sources/mqtt.toml``: ``[default]``, the CONF_KEY group and the stream's
EXTRA, merged by the planner); DATASOURCE is the topic filter (several separated by commas; wildcards ``+`` and
``#``; ``$share/<group>/<filter>`` for a shared subscription). A sink takes its properties from the action,
over the connection settings of the conf group named by ``confKey``.

The client modules are imported inside the factories: they pull in paho-mqtt, which an engine without MQTT
rules never needs.
"""

from __future__ import annotations

import gzip
import logging
import zlib
from collections.abc import Callable, Mapping
from contextlib import AsyncExitStack
from typing import TYPE_CHECKING, Any, final

import trio

from runtime.clock import Clock
from runtime.config import conf_group
from runtime.errors import ConfigError, EncodeError, EngineError, PlanError, SinkUnavailable
from runtime.formats import encoder
from runtime.formats.decode import Decoder, make_decoder
from runtime.formats.gotemplate import PropertyTemplate, TemplateSyntaxError
from runtime.io.contract import Sink, SinkSpec, Source, SourceSpec
from runtime.io.mqtt.conf import (
    CONN_KEYS,
    SINK_CONF_KEY,
    SinkConf,
    SourceConf,
    parse_sink_conf,
    parse_source_conf,
)
from runtime.io.services import Services
from runtime.io.sinktemplate import message_data, message_text
from runtime.metrics import ConnectionMetrics
from runtime.model import Outbox, Row
from runtime.sql.ast import StreamDef, StreamOptions

if TYPE_CHECKING:
    from runtime.io.mqtt.client import MqttClient

LOGGER = logging.getLogger("oort.mqtt")


def topic_filters(datasource: str) -> list[str]:
    """The topic filters of a DATASOURCE (comma-separated, as eKuiper splits them).

    Raises:
      ValueError: an empty filter, or a wildcard that is not a whole level (``#`` only last).
    """
    filters = [part.strip() for part in datasource.split(",")]
    for topic_filter in filters:
        if not topic_filter:
            raise ValueError(f"empty topic filter in {datasource!r}")
        levels = topic_filter.split("/")
        if topic_filter.startswith("$share/"):
            if len(levels) < 3 or not levels[1]:
                raise ValueError(f"a shared subscription is $share/<group>/<filter>, got {topic_filter!r}")
            levels = levels[2:]
        for index, level in enumerate(levels):
            if ("#" in level or "+" in level) and len(level) > 1:
                raise ValueError(f"a wildcard must be a whole topic level, got {topic_filter!r}")
            if level == "#" and index != len(levels) - 1:
                raise ValueError(f"'#' must be the last topic level, got {topic_filter!r}")
    return filters


@final
class MqttSource:
    """Stream source ``TYPE="mqtt"``: messages of DATASOURCE's topic filters, each decoded with FORMAT.

    Each event's ``meta``: ``topic``, ``qos``, ``messageId`` (and ``properties``, MQTT 5 user properties).

    Raises (when built):
      PlanError: a bad conf group (every problem listed) or a malformed topic filter; the message names the stream.
    """

    def __init__(self, spec: SourceSpec, conf: SourceConf, decoder: Decoder) -> None:
        try:
            self._filters = topic_filters(spec.datasource)
        except ValueError as exc:
            raise PlanError(f"stream {spec.stream}: mqtt DATASOURCE: {exc}") from None
        self._spec = spec
        self._conf = conf
        self._decoder = decoder

    async def run(
        self, send: Outbox, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED
    ) -> None:
        """Deliver messages until cancelled, or until the stream's ``eofMessage`` arrives (then it returns).

        ``task_status.started()`` comes once the subscriptions exist (acknowledged by the broker when it is
        connected; a connection still being made subscribes on connect).

        Raises:
          SourceError: the conf group's TLS files cannot be loaded.
        """
        from runtime.io.mqtt.router import Subscription

        ctx = self._spec.ctx
        pool = ctx.services.mqtt
        conf = self._conf
        async with AsyncExitStack() as stack:
            subs = []
            for topic_filter in self._filters:
                conn = pool.dedicated(conf.conn) if topic_filter.startswith("$share/") else conf.conn
                sub = Subscription(
                    topic_filter,
                    conf.qos,
                    self._spec.stream,
                    self._decoder,
                    send,
                    conf.decompression,
                    conf.eof_message,
                    conf.max_message_size,
                )
                await stack.enter_async_context(
                    pool.subscription(conn, sub, clock=ctx.clock, metrics=ctx.connection)
                )
                subs.append(sub)
            task_status.started()
            async with trio.open_nursery() as nursery:
                for sub in subs:
                    nursery.start_soon(_wait_then_cancel, sub.ended, nursery.cancel_scope)

    def __repr__(self) -> str:
        return f"<MqttSource stream={self._spec.stream} topics={','.join(self._filters)}>"


async def _wait_then_cancel(event: trio.Event, scope: trio.CancelScope) -> None:
    await event.wait()
    scope.cancel()


def _compressor(kind: str) -> Callable[[bytes], bytes] | None:
    if kind == "gzip":
        return gzip.compress
    if kind == "zlib":
        return zlib.compress
    if kind == "flate":
        return lambda data: zlib.compress(data, wbits=-15)
    return None


@final
class MqttSink:
    """Action ``mqtt``: each message published to ``topic`` with ``qos`` and ``retained``.

    ``format`` (default json) encodes the message (a ``dataTemplate`` output is sent as it is); ``compression``
    compresses it. ``topic`` and the MQTT 5 ``properties`` values may be Go templates rendered per message
    (``"devices/{{.id}}/alarm"``, eKuiper's dynamic properties). QoS 1 and 2 wait for the broker's
    acknowledgement. While the broker is unreachable ``write`` raises ``SinkUnavailable`` (cached and resent when
    the action enables the sink cache).

    Raises (when built):
      PlanError: a template that does not parse, an unknown format.
    """

    def __init__(self, spec: SinkSpec, conf: SinkConf) -> None:
        props = spec.props
        try:
            self._topic = PropertyTemplate(conf.topic, name="topic")
            self._user_properties = {k: PropertyTemplate(v, name=k) for k, v in conf.properties.items()}
        except TemplateSyntaxError as exc:
            raise PlanError(f"mqtt sink (action {spec.index}): {exc}") from None
        self._dynamic = self._topic.is_template or any(t.is_template for t in self._user_properties.values())
        fmt = _str_prop(props, "format", "json")
        self._encode = encoder(
            fmt, delimiter=_str_prop(props, "delimiter", ","), has_header=props.get("hasHeader") is True
        )
        self._compress = _compressor(conf.compression)
        self._spec = spec
        self._conf = conf
        self._stack = AsyncExitStack()
        self._client: MqttClient | None = None
        self._first_write = True

    async def open(self) -> None:
        """Join the shared connection without waiting for it (its progress shows in the rule's status)."""
        ctx = self._spec.ctx
        self._client = await self._stack.enter_async_context(
            ctx.services.mqtt.connection(self._conf.conn, clock=ctx.clock, metrics=ctx.connection)
        )

    async def write(self, data: Row | list[Row] | str) -> None:
        """Publish one message.

        Raises:
          SinkUnavailable: not connected, or no acknowledgement (QoS 1/2).
        """
        client = self._client
        if client is None:
            raise SinkUnavailable(f"mqtt sink (action {self._spec.index}) is not open")
        if self._first_write:
            # The first message waits for the connection a fresh rule is still making (up to connectTimeout),
            # instead of failing with an avoidable "not connected"; later ones do not wait.
            self._first_write = False
            with trio.move_on_after(self._conf.conn.connect_timeout):
                await client.wait_status(1)
        payload = message_text(data).encode() if isinstance(data, str) else self._encode(data)
        if self._compress is not None:
            payload = self._compress(payload)
        conf = self._conf
        topic, properties = conf.topic, conf.properties
        if self._dynamic:
            topic, properties = self._render(data)
        await client.publish(topic, payload, conf.qos, conf.retained, properties)

    def _render(self, data: Row | list[Row] | str) -> tuple[str, dict[str, str]]:
        """The topic and user properties of one message (templates rendered against its row or rows).

        Raises:
          EncodeError: a template failed, or the topic came out empty or with a wildcard (this message only).
        """
        value = message_data(data)
        topic = self._topic.render(value)
        if not topic or "#" in topic or "+" in topic:
            raise EncodeError(f"mqtt sink (action {self._spec.index}): the topic template rendered {topic!r}")
        return topic, {k: t.render(value) for k, t in self._user_properties.items()}

    async def aclose(self) -> None:
        """Leave the shared connection (the last user disconnects it). Idempotent."""
        self._client = None
        await self._stack.aclose()

    def __repr__(self) -> str:
        return f"<MqttSink {self._conf.conn.server} topic={self._conf.topic}>"


def _str_prop(props: Row, key: str, default: str) -> str:
    value: Any = props.get(key, default)
    return value if isinstance(value, str) and value else default


def mqtt_source(spec: SourceSpec) -> Source:
    """Source factory for ``TYPE="mqtt"`` (and streams without ``TYPE``).

    Raises:
      PlanError: a bad conf group, topic filter or FORMAT; the message names the stream.
    """
    conf = parse_source_conf(dict(spec.props), f"stream {spec.stream}: mqtt conf group")
    definition = spec.definition or StreamDef(
        spec.stream, "stream", (), StreamOptions(datasource=spec.datasource, format=spec.format or "json")
    )
    return MqttSource(spec, conf, make_decoder(definition))


def mqtt_sink(spec: SinkSpec) -> Sink:
    """Sink factory for the ``mqtt`` action: the action's properties over its ``confKey`` connection settings.

    Raises:
      PlanError: unknown conf group, unknown keys, bad values, no topic or server, an unknown format.
    """
    where = f"mqtt sink (action {spec.index})"
    props = spec.props
    base: dict[str, Any] = {}
    key = props.get(SINK_CONF_KEY)
    if key is not None:
        if not isinstance(key, str) or not key:
            raise PlanError(f"{where}: {SINK_CONF_KEY} must be a conf group name, got {key!r}")
        etc_dir = spec.ctx.services.etc_dir
        if etc_dir is None:
            raise PlanError(f"{where}: {SINK_CONF_KEY} needs the engine's etc folder")
        try:
            group = conf_group(etc_dir, "sources", "mqtt", key, spec.ctx.services.conf_overlay)
        except ConfigError as exc:
            raise PlanError(f"{where}: {exc.message}") from exc
        base = {k: v for k, v in group.items() if k in CONN_KEYS}  # its qos is the sources' subscription QoS
    return MqttSink(spec, parse_sink_conf({**base, **props}, where))


def check_mqtt_conf(props: Mapping[str, Any], where: str) -> None:
    """The registry's conf group check: every wrong key or value of an mqtt conf group at once."""
    parse_source_conf(dict(props), where)


async def test_mqtt_connection(services: Services, clock: Clock, props: Mapping[str, Any]) -> str:
    """The registry's connection test: connect with a conf group's settings (joining an identical live
    connection if there is one) and wait up to its ``connectTimeout``.

    Raises:
      EngineError: invalid properties, or no connection within the timeout.
    """
    values = dict(props)
    values.pop("datasource", None)
    conn = parse_source_conf(values, "connection test").conn
    metrics = ConnectionMetrics()
    async with services.mqtt.connection(conn, clock=clock, metrics=metrics) as client:
        with trio.move_on_after(conn.connect_timeout + 0.5):
            await client.wait_status(1)
            return f"connected to mqtt broker {conn.server}"
    # As the websocket test: one answer whatever went wrong (a detailed one would map the daemon's network
    # for the caller); the reason goes to the log and to the status of rules using the connection.
    LOGGER.info(
        "connection test to mqtt broker %s failed: %s",
        conn.server,
        metrics.last_disconnected_message or "timed out",
    )
    raise EngineError(
        f"cannot connect to mqtt broker {conn.server}: no connection within {conn.connect_timeout:g} s "
        "(the daemon's log has the reason)"
    )
