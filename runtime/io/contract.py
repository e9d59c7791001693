"""What a connector is: the ``Source``/``Sink`` protocols, the ``Event`` a source emits and the context it gets.

Every connector type plugs in through ``runtime.io.registry`` with a factory that takes a spec and returns
an object satisfying one of these protocols; the rule runtime never knows the concrete type.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any, Protocol, final

import attrs
import trio

from runtime.clock import Clock
from runtime.sql.ast import StreamDef

Row = dict[str, Any]
"""One row: column name -> value. Never mutated after decode (several rules may share it)."""


@final
class JoinedRow(dict[str, Any]):
    """A row of a rule that reads several sources (JOIN): the merged columns plus each source's own row.

    As a dict it holds every column of its parts, the left-most source winning on a conflict (what ``*`` and
    an unqualified name see, as eKuiper's ``JoinTuple``); ``tables`` maps each part's FROM/JOIN name (alias
    if given) to that source's row, for ``stream.col`` and ``stream.*``. Built by ``runtime.ops.join``.
    """

    __slots__ = ("tables",)

    def __init__(self, merged: Row, tables: dict[str, Row]) -> None:
        super().__init__(merged)
        self.tables = tables


@final
class Event:
    """One decoded source message: its row, ingest/event time in epoch ms and optional source metadata."""

    __slots__ = ("data", "meta", "ts")

    def __init__(self, data: Row, ts: int, meta: Row | None = None) -> None:
        self.data = data
        self.ts = ts
        self.meta = meta

    def __repr__(self) -> str:
        return f"Event(data={self.data!r}, ts={self.ts}, meta={self.meta!r})"


@final
class ErrorItem:
    """A runtime error travelling with the data (rule option ``sendError``): sinks see ``{"error": message}``."""

    __slots__ = ("message",)

    def __init__(self, message: str) -> None:
        self.message = message

    def as_row(self) -> Row:
        return {"error": self.message}

    def __repr__(self) -> str:
        return f"ErrorItem({self.message!r})"


Batch = list[Event | ErrorItem]
"""What crosses the source -> operator channel: events (and decode errors) in arrival order."""


@final
@attrs.define
class ConnectionMetrics:
    """Connection state a source or sink reports (SURFACE.md §F ``connection_*`` metrics)."""

    status: int = 0  # 1 connected, 0 connecting, -1 disconnected
    last_connected_time: int = 0
    last_disconnected_time: int = 0
    last_disconnected_message: str = ""
    last_try_time: int = 0


@final
@attrs.define
class IoContext:
    """Everything a connector instance may use: who it belongs to, the clock, engine-scoped services.

    ``services`` is the engine's ``Services`` (memory bus, later the websocket hub); it is typed ``Any`` here so
    that ``io`` does not import the engine.
    """

    rule_id: str
    clock: Clock
    services: Any
    logger: logging.Logger
    connection: ConnectionMetrics = attrs.Factory(ConnectionMetrics)


@final
@attrs.frozen
class SourceSpec:
    """A source to build: the stream it serves and its merged properties.

    ``props`` is the conf group named by ``CONF_KEY`` (``[default]`` of ``etc/sources/<type>.toml``) with the
    stream's ``EXTRA`` JSON applied on top.
    """

    stream: str
    type: str
    datasource: str
    format: str
    props: Row
    options: dict[str, str]
    ctx: IoContext
    definition: StreamDef | None = None  # the full stream definition (schema, STRICT_VALIDATION, TIMESTAMP…)
    fields_read: frozenset[str] | None = None  # the declared fields the rule reads (None: all); see row_check


@final
@attrs.frozen
class SinkSpec:
    """A sink to build: the action's type, index in the rule's ``actions`` and its properties."""

    type: str
    index: int
    props: Row
    ctx: IoContext


class Outbox(Protocol):
    """Where a source puts its batches: the rule's bounded input channel, behind its ``bufferFullPolicy``.

    ``send`` blocks while the buffer is full under the default policy ``block`` (so a socket source stops
    reading and TCP pushes back); under ``dropOldest``/``dropNewest`` it never blocks and counts what it drops.
    """

    async def send(self, batch: Batch) -> None: ...


class Source(Protocol):
    """A running source. ``run`` pushes batches until cancelled or its data ends.

    ``run`` must call ``task_status.started()`` once it is ready to deliver (subscribed, connected or
    registered), return normally when the data is exhausted (the runtime then closes the channel) and
    release everything it holds when cancelled.
    """

    async def run(
        self,
        send: Outbox,
        *,
        task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED,
    ) -> None: ...


class Sink(Protocol):
    """A sink connector: ``open`` once, ``write`` each message, ``aclose`` once (also after errors).

    ``write`` gets one message after the common sink properties were applied: a row (``sendSingle``) or a
    list of rows. Raising from ``open`` or ``write`` fails the rule (and triggers its restart strategy).
    """

    async def open(self) -> None: ...

    async def write(self, data: Row | list[Row]) -> None: ...

    async def aclose(self) -> None: ...


class NowaitSink(Sink, Protocol):
    """A sink whose ``write`` never waits (``nop``, ``log``): it also offers the same write as a plain call.

    The rule runtime then writes from the operator task itself (``write_nowait``) instead of handing each
    batch to a sink task over a channel, which saves a task switch per batch and rule. ``write`` must behave
    exactly as ``write_nowait``.
    """

    def write_nowait(self, data: Row | list[Row]) -> None: ...


SourceFactory = Callable[[SourceSpec], Source]
SinkFactory = Callable[[SinkSpec], Sink]
