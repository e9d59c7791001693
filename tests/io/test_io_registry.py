"""The connector registry: built-in types, case-insensitive lookup, clear errors, registration rules."""

from __future__ import annotations

import logging

import pytest

from runtime.clock import Clock
from runtime.errors import PlanError
from runtime.io.contract import IoContext, Sink, SinkSpec
from runtime.io.log import LogSink
from runtime.io.memory.connector import MemorySink, MemorySource
from runtime.io.nop import NopSink
from runtime.io.registry import Registry, builtin_registry
from runtime.io.services import Services


def test_builtin_types() -> None:
    registry = builtin_registry()
    assert registry.source_types() == ["file", "httppull", "httppush", "memory", "mqtt", "websocket"]
    assert registry.sink_types() == ["file", "log", "memory", "mqtt", "nop", "rest", "websocket"]
    assert registry.source_factory("memory") is MemorySource
    assert registry.source_factory("MEMORY") is MemorySource
    assert registry.sink_factory("memory") is MemorySink
    assert registry.sink_factory("log") is LogSink


def test_each_builtin_registry_is_independent() -> None:
    one, two = builtin_registry(), builtin_registry()
    one.register_sink("extra", NopSink)
    assert "extra" not in two.sink_types()


def test_unknown_types_list_the_known_ones() -> None:
    registry = builtin_registry()
    with pytest.raises(
        PlanError, match=r"unknown source type 'kafka'; known source types: file, httppull, httppush, memory"
    ) as info:
        registry.source_factory("kafka")
    assert info.value.code == 2101
    with pytest.raises(
        PlanError, match=r"unknown sink type 'kafka'; known sink types: file, log, memory, mqtt, nop, rest"
    ):
        registry.sink_factory("kafka")


async def test_register_a_connector_and_build_it() -> None:
    registry = Registry()
    built: list[SinkSpec] = []

    def factory(spec: SinkSpec) -> Sink:
        built.append(spec)
        return NopSink(spec)

    registry.register_sink("redisPub", factory)
    assert registry.sink_types() == ["redisPub"]
    ctx = IoContext(rule_id="r", clock=Clock(), services=Services(), logger=logging.getLogger("t"))
    spec = SinkSpec(type="redisPub", index=0, props={}, ctx=ctx)
    sink = registry.sink_factory("redispub")(spec)
    assert isinstance(sink, NopSink) and built == [spec]


def test_duplicate_registration_needs_replace() -> None:
    registry = builtin_registry()
    with pytest.raises(ValueError, match="already registered"):
        registry.register_sink("Log", NopSink)
    registry.register_sink("log", NopSink, replace=True)
    assert registry.sink_factory("log") is NopSink
    with pytest.raises(ValueError, match="must not be empty"):
        registry.register_source("", MemorySource)


async def test_websocket_registers_its_conf_check_and_connection_test() -> None:
    registry = builtin_registry()
    with pytest.raises(PlanError, match=r"^g: .*pingIntervall.*pingInterval"):
        registry.check_conf("sources", "websocket", {"pingIntervall": 3}, "g")
    with pytest.raises(PlanError, match=r"^g: .*addr"):
        registry.check_conf("sinks", "WebSocket", {"addr": 5}, "g")
    registry.check_conf("sources", "websocket", {"addr": "127.0.0.1:9"}, "g")  # valid: no error
    registry.check_conf("sources", "memory", {"anything": 1}, "g")  # no check registered: accepted
    from runtime.errors import EngineError

    with pytest.raises(EngineError, match="server mode has nothing to dial"):
        await registry.test_connection("websocket", Services(), Clock(), {})
    with pytest.raises(EngineError, match="not supported for source type file"):
        await registry.test_connection("file", Services(), Clock(), {})
