"""Shared pieces of the MQTT tests: an engine whose etc/ points the mqtt conf group at a test broker, and
helpers that read a rule's results from a memory topic."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import trio

from runtime.config import load_config
from runtime.engine import Engine
from runtime.io.memory.bus import Published
from runtime.io.registry import builtin_registry
from runtime.model import Row
from tests.io.mqtt.broker import Broker


def write_mqtt_conf(etc: Path, groups: str) -> None:
    (etc / "sources").mkdir(parents=True, exist_ok=True)
    (etc / "sources" / "mqtt.toml").write_text(groups)


@asynccontextmanager
async def mqtt_engine(tmp_path: Path, broker: Broker, groups: str = "") -> AsyncIterator[Engine]:
    """An engine whose ``[default]`` mqtt conf group is the broker's plain listener (fast reconnects), plus
    ``groups`` (more TOML tables)."""
    etc = tmp_path / "etc"
    etc.mkdir(exist_ok=True)
    write_mqtt_conf(
        etc,
        f'[default]\nserver = "{broker.url()}"\nqos = 1\nreconnectMinDelay = "50ms"\n'
        f'reconnectMaxDelay = "500ms"\n{groups}',
    )
    engine = Engine(
        load_config(etc), etc_dir=etc, data_dir=tmp_path / "data", registry=builtin_registry(), seed=1
    )
    async with trio.open_nursery() as nursery:
        await nursery.start(engine.run)
        try:
            yield engine
        finally:
            nursery.cancel_scope.cancel()


async def wait_connected(engine: Engine) -> None:
    """Until every MQTT connection of the engine is up with its subscriptions acknowledged (an event, no poll)."""
    for client in list(engine.services.mqtt._clients.values()):
        await client.wait_status(1)


async def take_rows(recv: trio.MemoryReceiveChannel[Published], count: int) -> list[Row]:
    """The next ``count`` rows published to a memory subscription."""
    rows: list[Row] = []
    while len(rows) < count:
        _, batch = await recv.receive()
        rows.extend(batch)
    return rows


def status_value(engine: Engine, rule_id: str, suffix: str) -> Any:
    """The first metric of the rule whose key ends with ``suffix`` (e.g. ``_connection_last_disconnected_message``)."""
    status = engine.rule_status(rule_id)
    return next(v for k, v in status.items() if k.endswith(suffix))
