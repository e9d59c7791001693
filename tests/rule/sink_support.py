"""What the sink error and sink cache tests share: an in-process engine on given folders, a websocket client
sink action aimed at a real local peer (tests/io/websocket/client_peer.py) and waiting for rule metrics."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import orjson
import trio

from runtime.config import load_config
from runtime.engine import Engine
from runtime.io.registry import builtin_registry

STREAM = 'CREATE STREAM s (id BIGINT) WITH (TYPE="memory", DATASOURCE="in")'
POLL = 0.005  # seconds between looks at a rule's metrics, which have no change event; bounded by fail_after


def ws_action(port: int, **extra: Any) -> dict[str, Any]:
    """A websocket client-mode action: one JSON text frame per row, quick reconnects, a short first wait."""
    return {
        "websocket": {
            "addr": f"127.0.0.1:{port}",
            "path": "/x",
            "sendSingle": True,
            "reconnectMinDelay": "10ms",
            "reconnectMaxDelay": "50ms",
            "connectTimeout": "300ms",
            **extra,
        }
    }


def rule(rule_id: str, port: int, **extra: Any) -> dict[str, Any]:
    return {"id": rule_id, "sql": "SELECT id FROM s", "actions": [ws_action(port, **extra)]}


@asynccontextmanager
async def running_engine(folder: Path) -> AsyncIterator[Engine]:
    """An engine on ``folder``/etc and ``folder``/data, stopped (every rule's sinks closed) on the way out;
    a second one on the same folder finds the catalog and the sink caches the first left."""
    etc = folder / "etc"
    etc.mkdir(parents=True, exist_ok=True)
    engine = Engine(
        load_config(etc), etc_dir=etc, data_dir=folder / "data", registry=builtin_registry(), seed=1
    )
    async with trio.open_nursery() as nursery:
        await nursery.start(engine.run)
        yield engine
        nursery.cancel_scope.cancel()


async def until(predicate: Callable[[], bool]) -> None:
    """Return once ``predicate()`` holds (callers bound the wait with ``trio.fail_after``)."""
    while not predicate():  # noqa: ASYNC110 - rule metrics have no change event to wait on
        await trio.sleep(POLL)


def sink_metric(engine: Engine, rule_id: str, name: str) -> Any:
    """One metric of the rule's websocket sink, e.g. ``exceptions_total`` or ``buffer_length``."""
    return engine.rule_status(rule_id)[f"sink_websocket_0_0_{name}"]


def ids(received: list[str | bytes]) -> list[int]:
    """The ids of the JSON rows a peer received, in order."""
    return [orjson.loads(frame)["id"] for frame in received]
