"""Connector type name -> source/sink factory and hooks: the one place a connector plugs in.

``builtin_registry()`` builds the registry of the connectors shipped with Oort; an engine owns one
instance, and tests or new connectors add theirs with ``register_source``/``register_sink``. Besides the
factory, a type may register a conf group check (run by the REST API before a conf group is saved) and, for
sources, a connection test (``POST /metadata/sources/connection/{type}``), so the management code never names
a connector type.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Generic, Literal, TypeVar, final

import attrs

from runtime.clock import Clock
from runtime.errors import EngineError, PlanError
from runtime.io.contract import ConfCheck, ConnectionTest, SinkFactory, SourceFactory
from runtime.io.file import FileSink
from runtime.io.file_source import FileSource
from runtime.io.http.connector import (
    check_httppull_conf,
    httppull_source,
    rest_sink,
    test_httppull_connection,
)
from runtime.io.httppush.connector import check_httppush_conf, httppush_source
from runtime.io.log import LogSink
from runtime.io.memory.connector import MemorySink, MemorySource
from runtime.io.mqtt.connector import check_mqtt_conf, mqtt_sink, mqtt_source, test_mqtt_connection
from runtime.io.nop import NopSink
from runtime.io.services import Services
from runtime.io.websocket.connector import (
    check_websocket_conf,
    test_websocket_connection,
    websocket_sink,
    websocket_source,
)

_F = TypeVar("_F")


@final
@attrs.frozen
class _Entry(Generic[_F]):
    name: str  # as registered (listed in errors and metadata)
    factory: _F
    check_conf: ConfCheck | None = None
    test_connection: ConnectionTest | None = None


@final
class Registry:
    """Factories for source types (stream ``TYPE``) and sink types (rule action names).

    Names are case-insensitive (``TYPE="Memory"`` works as in eKuiper); they are listed in errors as
    registered.
    """

    __slots__ = ("_sinks", "_sources")

    def __init__(self) -> None:
        self._sources: dict[str, _Entry[SourceFactory]] = {}
        self._sinks: dict[str, _Entry[SinkFactory]] = {}

    def register_source(
        self,
        type_name: str,
        factory: SourceFactory,
        *,
        replace: bool = False,
        check_conf: ConfCheck | None = None,
        test_connection: ConnectionTest | None = None,
    ) -> None:
        """Make ``TYPE="<type_name>"`` streams use ``factory``.

        Args:
          check_conf: validates a conf group of ``etc/sources/<type>.toml`` before the REST API saves it.
          test_connection: answers the REST connection test for this type (none: "not supported").

        Raises:
          ValueError: the type is already registered and ``replace`` is false (a wiring bug).
        """
        _register(self._sources, "source", _Entry(type_name, factory, check_conf, test_connection), replace)

    def register_sink(
        self,
        type_name: str,
        factory: SinkFactory,
        *,
        replace: bool = False,
        check_conf: ConfCheck | None = None,
    ) -> None:
        """Make rule actions named ``type_name`` use ``factory``.

        Args:
          check_conf: validates a conf group of ``etc/sinks/<type>.toml`` before the REST API saves it.

        Raises:
          ValueError: the type is already registered and ``replace`` is false (a wiring bug).
        """
        _register(self._sinks, "sink", _Entry(type_name, factory, check_conf), replace)

    def source_factory(self, type_name: str) -> SourceFactory:
        """The factory for a stream ``TYPE``.

        Raises:
          PlanError: no such source type; the message lists the known ones.
        """
        entry = self._sources.get(type_name.lower())
        if entry is None:
            raise PlanError(
                f"unknown source type {type_name!r}; known source types: {', '.join(self.source_types())}"
            )
        return entry.factory

    def sink_factory(self, type_name: str) -> SinkFactory:
        """The factory for a rule action name.

        Raises:
          PlanError: no such sink type; the message lists the known ones.
        """
        entry = self._sinks.get(type_name.lower())
        if entry is None:
            raise PlanError(
                f"unknown sink type {type_name!r}; known sink types: {', '.join(self.sink_types())}"
            )
        return entry.factory

    def check_conf(
        self, kind: Literal["sources", "sinks"], type_name: str, props: Mapping[str, Any], where: str
    ) -> None:
        """Validate a conf group as the connector type would; types without a check accept any group.

        Raises:
          EngineError (usually PlanError): what is wrong, every message prefixed by ``where``.
        """
        table = self._sources if kind == "sources" else self._sinks
        entry = table.get(type_name.lower())
        if entry is not None and entry.check_conf is not None:
            entry.check_conf(props, where)

    async def test_connection(
        self, type_name: str, services: Services, clock: Clock, props: Mapping[str, Any]
    ) -> str:
        """Try to connect a source type with a conf group's properties; returns what connected.

        Raises:
          EngineError: the type has no connection test, the properties are invalid, or the connection failed.
        """
        entry = self._sources.get(type_name.lower())
        if entry is None or entry.test_connection is None:
            raise EngineError(f"connection test is not supported for source type {type_name}")
        return await entry.test_connection(services, clock, props)

    def source_types(self) -> list[str]:
        """Registered source type names, sorted (for errors and REST metadata)."""
        return sorted(entry.name for entry in self._sources.values())

    def sink_types(self) -> list[str]:
        """Registered sink type names, sorted (for errors and REST metadata)."""
        return sorted(entry.name for entry in self._sinks.values())

    def __repr__(self) -> str:
        return f"<Registry sources={self.source_types()} sinks={self.sink_types()}>"


def _register(table: dict[str, _Entry[_F]], kind: str, entry: _Entry[_F], replace: bool) -> None:
    if not entry.name:
        raise ValueError(f"a {kind} type name must not be empty")
    key = entry.name.lower()
    if key in table and not replace:
        raise ValueError(f"{kind} type {entry.name!r} is already registered")
    table[key] = entry


def builtin_registry() -> Registry:
    """A new registry with the built-in connectors.

    Sources: ``memory``, ``file``, ``websocket``, ``mqtt`` (eKuiper's default ``TYPE``), ``httppush``,
    ``httppull``. Sinks: ``memory``, ``websocket``, ``mqtt``, ``rest``, ``log``, ``nop``, ``file``.
    """
    registry = Registry()
    registry.register_source("memory", MemorySource)
    registry.register_source("file", FileSource)
    registry.register_sink("memory", MemorySink)
    registry.register_sink("log", LogSink)
    registry.register_sink("nop", NopSink)
    registry.register_sink("file", FileSink)
    registry.register_source(
        "websocket",
        websocket_source,
        check_conf=check_websocket_conf,
        test_connection=test_websocket_connection,
    )
    registry.register_sink("websocket", websocket_sink, check_conf=check_websocket_conf)
    registry.register_source("httppush", httppush_source, check_conf=check_httppush_conf)
    registry.register_source(
        "mqtt", mqtt_source, check_conf=check_mqtt_conf, test_connection=test_mqtt_connection
    )
    registry.register_sink("mqtt", mqtt_sink)
    registry.register_source(
        "httppull", httppull_source, check_conf=check_httppull_conf, test_connection=test_httppull_connection
    )
    registry.register_sink("rest", rest_sink)
    return registry
