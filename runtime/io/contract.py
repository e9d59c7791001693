"""What a connector is: the ``Source``/``Sink`` protocols, the specs they are built from and the context they get.

Every connector type plugs in through ``runtime.io.registry`` with a factory that takes a spec and returns
an object satisfying one of these protocols; the rule runtime never knows the concrete type.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Mapping
from typing import Any, Protocol, final

import attrs
import trio

from runtime.clock import Clock
from runtime.io.services import Services
from runtime.metrics import ConnectionMetrics
from runtime.model import Outbox, Row
from runtime.sql.ast import StreamDef


@final
@attrs.define
class IoContext:
    """Everything a connector instance may use: who it belongs to, the clock, engine-scoped services.

    ``services`` is the engine's ``Services``: the memory bus, the global data server, the websocket client
    pool, keyed state and props.
    """

    rule_id: str
    clock: Clock
    services: Services
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
    list of rows, or a ``str``: a ``dataTemplate``'s output, to send as it is without the format's encoder
    (take its text with ``runtime.io.sinktemplate.message_text``, which refuses a failed one).
    Raising from ``open`` fails the rule's start. From ``write``: ``SinkUnavailable`` when the target cannot take
    the message now (unreachable, not connected, timed out, 5xx): it is cached and resent when the action enables
    the sink cache, else counted and dropped; any other ``SinkError`` (a permanent refusal, ``EncodeError``) is
    counted and the message dropped; the rule keeps running either way. Other exceptions are bugs and fail the
    rule (and trigger its restart strategy).
    """

    async def open(self) -> None: ...

    async def write(self, data: Row | list[Row] | str) -> None: ...

    async def aclose(self) -> None: ...


class NowaitSink(Sink, Protocol):
    """A sink whose ``write`` never waits (``nop``, ``log``): it also offers the same write as a plain call.

    The rule runtime then writes from the operator task itself (``write_nowait``) instead of handing each
    batch to a sink task over a channel, which saves a task switch per batch and rule. ``write`` must behave
    exactly as ``write_nowait``.
    """

    def write_nowait(self, data: Row | list[Row] | str) -> None: ...


SourceFactory = Callable[[SourceSpec], Source]
SinkFactory = Callable[[SinkSpec], Sink]

ConfCheck = Callable[[Mapping[str, Any], str], None]
"""A connector type's conf group check: ``check(props, where)`` raises ``PlanError`` (or another ``EngineError``)
listing what is wrong, each message prefixed by ``where``; returns None for a valid group. The REST API runs it
before saving a conf group, so a group is never saved in a shape the connector would refuse."""

ConnectionTest = Callable[[Services, Clock, Mapping[str, Any]], Awaitable[str]]
"""A source type's connection test: ``await test(services, clock, props)`` tries to connect with a conf group's
properties (plus ``datasource``) and returns a one-line success message, or raises ``EngineError`` with the
reason it could not connect."""
