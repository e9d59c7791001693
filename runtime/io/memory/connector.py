"""eKuiper's ``memory`` connector: the memory source and the memory sink, on the engine's ``MemoryBus``.

The bus is engine-scoped (``Services.memory``): rules chain through it (one rule's memory sink feeds another
rule's memory stream) and REST ``POST /memory/{topic}`` publishes into it.
"""

from __future__ import annotations

from typing import final

import trio

from runtime.errors import PlanError
from runtime.formats.decode import checked_event, row_check
from runtime.io.contract import SinkSpec, SourceSpec
from runtime.io.memory.bus import DEFAULT_SUBSCRIPTION_BUFFER, validate_filter
from runtime.io.sinktemplate import rendered_rows
from runtime.model import Batch, ErrorItem, Outbox, Row


@final
class MemorySource:
    """Stream source ``TYPE="memory"``: subscribes to ``DATASOURCE`` (a topic filter) and forwards each publish.

    Rows arrive already decoded (no FORMAT step); each becomes an ``Event`` stamped with the arrival time and
    ``meta={"topic": <actual topic>}`` (what ``meta(topic)`` reads). With STRICT_VALIDATION the fields the rule
    reads are converted to their declared types first; a mismatch is an error item, as for a decoded frame.
    """

    def __init__(self, spec: SourceSpec) -> None:
        validate_filter(spec.datasource)
        self._filter = spec.datasource
        self._ctx = spec.ctx
        self._bus = spec.ctx.services.memory
        buffer = spec.props.get("bufferLength", DEFAULT_SUBSCRIPTION_BUFFER)
        if isinstance(buffer, bool) or not isinstance(buffer, int) or buffer < 0:
            raise PlanError(f"memory source of stream {spec.stream}: bufferLength must be a non-negative int")
        self._buffer = buffer
        self._check = row_check(spec.definition, spec.fields_read)

    async def run(
        self,
        send: Outbox,
        *,
        task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED,
    ) -> None:
        """Forward publications until cancelled (the bus never ends). The caller owns and closes ``send``.

        Cancellation: the subscription is removed on the way out.
        """
        clock = self._ctx.clock
        connection = self._ctx.connection
        check = self._check
        async with self._bus.subscribe(self._filter, self._buffer) as recv:
            connection.status = 1
            connection.last_connected_time = clock.now_ms()
            task_status.started()
            try:
                async for topic, rows in recv:
                    if not rows:
                        continue
                    ts = clock.now_ms()
                    meta: Row = {"topic": topic}  # shared by the batch's events: nobody mutates meta
                    batch: Batch = [
                        checked_event(check, row, ts, meta)
                        if isinstance(row, dict)
                        else ErrorItem(
                            f"memory topic {topic}: expected a JSON object, got {type(row).__name__}"
                        )
                        for row in rows
                    ]
                    await send.send(batch)
            finally:
                connection.status = 0


@final
class MemorySink:
    """Action ``"memory"``: publishes every message to ``topic`` on the engine's bus.

    A list message is one publication (the subscribing source gets it as one batch); a row is a
    publication of one row. A ``dataTemplate`` output is read back as JSON, as eKuiper's memory sink decodes
    it: an object is one row, an array of objects one publication of them; anything else is an
    ``EncodeError`` (the message is dropped).
    """

    def __init__(self, spec: SinkSpec) -> None:
        topic = spec.props.get("topic")
        if not isinstance(topic, str) or not topic:
            raise PlanError(
                f"memory sink (action {spec.index}): property 'topic' is required and must be a string"
            )
        if "+" in topic or "#" in topic:
            raise PlanError(f"memory sink (action {spec.index}): topic {topic!r} must not contain wildcards")
        self._topic = topic
        self._ctx = spec.ctx
        self._bus = spec.ctx.services.memory
        # rowkindField / keyField make eKuiper's memory sink feed updatable lookup tables (insert/update/delete
        # by key). Lookup tables are not implemented yet, so the keys are accepted and have no effect.

    async def open(self) -> None:
        self._ctx.connection.status = 1
        self._ctx.connection.last_connected_time = self._ctx.clock.now_ms()

    async def write(self, data: Row | list[Row] | str) -> None:
        """Publish one message.

        Raises:
          EncodeError: a ``dataTemplate`` that failed or whose output is not a JSON object or array of objects.
        """
        if isinstance(data, str):
            await self._bus.publish(self._topic, rendered_rows(data))
            return
        await self._bus.publish(self._topic, data if isinstance(data, list) else [data])

    async def aclose(self) -> None:
        self._ctx.connection.status = 0
