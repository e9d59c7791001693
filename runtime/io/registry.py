"""Connector type name -> source/sink factory: the one place a connector plugs in.

``builtin_registry()`` builds the registry of the connectors shipped with Oort; an engine owns one
instance, and tests or new connectors (websocket) add theirs with ``register_source``/``register_sink``.
"""

from __future__ import annotations

from typing import TypeVar, final

from runtime.errors import PlanError
from runtime.io.contract import SinkFactory, SourceFactory
from runtime.io.file import FileSink
from runtime.io.file_source import FileSource
from runtime.io.log import LogSink
from runtime.io.memory.connector import MemorySink, MemorySource
from runtime.io.nop import NopSink
from runtime.io.websocket.connector import websocket_sink, websocket_source

_F = TypeVar("_F")


@final
class Registry:
    """Factories for source types (stream ``TYPE``) and sink types (rule action names).

    Names are case-insensitive (``TYPE="Memory"`` works as in eKuiper); they are listed in errors as
    registered.
    """

    __slots__ = ("_sinks", "_sources")

    def __init__(self) -> None:
        self._sources: dict[str, tuple[str, SourceFactory]] = {}
        self._sinks: dict[str, tuple[str, SinkFactory]] = {}

    def register_source(self, type_name: str, factory: SourceFactory, *, replace: bool = False) -> None:
        """Make ``TYPE="<type_name>"`` streams use ``factory``.

        Raises:
          ValueError: the type is already registered and ``replace`` is false (a wiring bug).
        """
        _register(self._sources, "source", type_name, factory, replace)

    def register_sink(self, type_name: str, factory: SinkFactory, *, replace: bool = False) -> None:
        """Make rule actions named ``type_name`` use ``factory``.

        Raises:
          ValueError: the type is already registered and ``replace`` is false (a wiring bug).
        """
        _register(self._sinks, "sink", type_name, factory, replace)

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
        return entry[1]

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
        return entry[1]

    def source_types(self) -> list[str]:
        """Registered source type names, sorted (for errors and REST metadata)."""
        return sorted(name for name, _ in self._sources.values())

    def sink_types(self) -> list[str]:
        """Registered sink type names, sorted (for errors and REST metadata)."""
        return sorted(name for name, _ in self._sinks.values())

    def __repr__(self) -> str:
        return f"<Registry sources={self.source_types()} sinks={self.sink_types()}>"


def _register(
    table: dict[str, tuple[str, _F]], kind: str, type_name: str, factory: _F, replace: bool
) -> None:
    if not type_name:
        raise ValueError(f"a {kind} type name must not be empty")
    key = type_name.lower()
    if key in table and not replace:
        raise ValueError(f"{kind} type {type_name!r} is already registered")
    table[key] = (type_name, factory)


def builtin_registry() -> Registry:
    """A new registry with the built-in connectors.

    Sources: ``memory``, ``file``, ``websocket``. Sinks: ``memory``, ``websocket``, ``log``, ``nop``, ``file``.
    """
    registry = Registry()
    registry.register_source("memory", MemorySource)
    registry.register_source("file", FileSource)
    registry.register_sink("memory", MemorySink)
    registry.register_sink("log", LogSink)
    registry.register_sink("nop", NopSink)
    registry.register_sink("file", FileSink)
    registry.register_source("websocket", websocket_source)
    registry.register_sink("websocket", websocket_sink)
    return registry
