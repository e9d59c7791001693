"""The running parts of a join rule: its several sources, its tables, and the stream–table operator without window.

Every FROM/JOIN source runs in the rule nursery. A stream's events are tagged with the stream's query name
(``source_row``) and go to the operator through the rule's one input channel (each stream holds a clone), so a
window sees which rows came from where. A table's source never feeds that channel: each batch it delivers
updates the rule's ``TableSet`` right away, whatever the connector type (file, memory, websocket, ...), and
the operator reads the tables' current rows when it joins. The tables' sources are cancelled once every
stream has ended, so a rule over finite streams ends like a single-stream rule.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Callable
from typing import final

import trio

from runtime.io.contract import IoContext, Source
from runtime.metrics import OpMetrics, RuleMetrics
from runtime.model import Batch, Emission, ErrorItem, Event, JoinedRow, Outbox, Row
from runtime.ops.join import TableSet, emitter, make_table, source_row
from runtime.ops.window import Watermark
from runtime.plan.planner import RulePlan
from runtime.rule.loop import (
    EmissionSend,
    RuleEnv,
    expand_unnest,
    input_source,
    release_in_time,
    rule_context,
    run_batches,
)
from runtime.sql.expr import EvalError
from runtime.sql.functions.rulestate import calls_delay

OutboxFactory = Callable[[trio.MemorySendChannel[Batch], OpMetrics], tuple[Outbox, Callable[[], None]]]
"""A stream's channel clone and metrics -> its outbox (the rule's ``bufferFullPolicy``) and a close hook."""


def make_tables(plan: RulePlan) -> TableSet:
    """Fresh, empty state for every table of a join rule (one per run)."""
    return TableSet(
        {
            source.name: make_table(
                source.definition.options.kind,
                source.definition.options.key,
                source.definition.options.retain_size,
                source.source_type,
            )
            for source in plan.inputs
            if source.is_table
        }
    )


@final
class _StreamOutbox:
    """Tags each event of one stream with its query name and counts the stream's records."""

    __slots__ = ("_clock", "_inner", "_metrics", "_ref")

    def __init__(self, inner: Outbox, ref: str, metrics: OpMetrics, env: RuleEnv) -> None:
        self._inner = inner
        self._ref = ref
        self._metrics = metrics
        self._clock = env.clock

    async def send(self, batch: Batch) -> None:
        ref, m = self._ref, self._metrics
        tagged: Batch = []
        for item in batch:
            if isinstance(item, ErrorItem):
                m.error(item.message, self._clock.now_ms())
                tagged.append(item)
                continue
            m.records_in += 1
            m.records_out += 1
            tagged.append(Event(source_row(ref, item.data), item.ts, item.meta))
        m.messages_processed += 1
        m.last_invocation = self._clock.now_ms()
        await self._inner.send(tagged)


@final
class _TableOutbox:
    """Applies each batch of a table's source to the table state at once (no channel hop)."""

    __slots__ = ("_clock", "_metrics", "_ref", "_tables")

    def __init__(self, tables: TableSet, ref: str, metrics: OpMetrics, env: RuleEnv) -> None:
        self._tables = tables
        self._ref = ref
        self._metrics = metrics
        self._clock = env.clock

    async def send(self, batch: Batch) -> None:
        await trio.lowlevel.checkpoint()
        m, ref = self._metrics, self._ref
        rows = []
        for item in batch:
            if isinstance(item, ErrorItem):
                m.error(item.message, self._clock.now_ms())
                continue
            rows.append(source_row(ref, item.data))
        if batch and not rows:
            # Only errors (a file read that did not decode): keep the table's content, not an empty snapshot.
            return
        # One batch is one update (eKuiper counts a file table's whole read as one record).
        m.records_in += 1
        m.records_out += 1
        m.messages_processed += 1
        m.last_invocation = self._clock.now_ms()
        self._tables.update(ref, rows)


async def run_join_sources(
    plan: RulePlan,
    env: RuleEnv,
    metrics: RuleMetrics,
    tables: TableSet,
    send: trio.MemorySendChannel[Batch],
    make_outbox: OutboxFactory,
    logger: logging.Logger,
    *,
    task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED,
) -> None:
    """Run every source of a join rule until all its streams end (or cancellation).

    Tables start first (a file table is loaded before stream events are joined with it), then the streams;
    ``task_status.started()`` is called once all of them are ready. ``send`` is closed once each stream holds its
    own clone; the operator's input ends when the last stream ends.

    Raises:
      PlanError: a source cannot be built from its definition and conf group.
      Whatever a source raised.

    Cancellation: every source task is cancelled with the rule.
    """
    built: list[tuple[bool, str, Source, OpMetrics]] = []
    for source in plan.inputs:
        ctx = IoContext(rule_id=plan.rule.id, clock=env.clock, services=env.services, logger=logger)
        connector = input_source(plan, source, env, ctx)
        m = metrics.add(OpMetrics(f"source_{source.definition.name}", None, ctx.connection))
        built.append((source.is_table, source.name, connector, m))
    tables_scope = trio.CancelScope()
    streams_left = sum(1 for is_table, *_ in built if not is_table)

    async def run_stream(
        connector: Source,
        outbox: Outbox,
        clone: trio.MemorySendChannel[Batch],
        close: Callable[[], None],
        *,
        task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED,
    ) -> None:
        nonlocal streams_left
        try:
            async with clone:
                await connector.run(outbox, task_status=task_status)
        finally:
            close()
            streams_left -= 1
            if streams_left == 0:
                tables_scope.cancel()  # tables only serve streams: with none left the rule is done

    async def run_tables(*, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        with tables_scope:
            async with trio.open_nursery() as nursery:
                for is_table, ref, connector, m in built:
                    if is_table:
                        outbox = _TableOutbox(tables, ref, m, env)
                        await nursery.start(functools.partial(connector.run, outbox))
                task_status.started()

    async with trio.open_nursery() as nursery:
        await nursery.start(run_tables)
        async with send:
            for is_table, ref, connector, m in built:
                if is_table:
                    continue
                clone = send.clone()
                inner, close = make_outbox(clone, m)
                outbox = _StreamOutbox(inner, ref, m, env)
                await nursery.start(run_stream, connector, outbox, clone, close)
        task_status.started()


@final
class JoinOperator:
    """A stream–table join without a window: each stream event is joined with the tables' current rows, then
    WHERE and SELECT run on every joined row; the rows of one event form one emission (none when nothing
    matched an inner join)."""

    def __init__(self, plan: RulePlan, env: RuleEnv, metrics: RuleMetrics, tables: TableSet) -> None:
        assert plan.join is not None
        self._join = plan.join
        self._tables = tables
        self._apply = plan.operator.apply
        self._srf_key = plan.operator.srf_key
        self._send_error = plan.rule.options.send_error
        self._clock = env.clock
        self._ctx = rule_context(plan.rule.id, env.clock, env.services)
        # delay() blocks the rule per event (eKuiper sleeps inside the call): such rules go one event at a time.
        self._per_event = calls_delay(plan.select)
        seq = 2
        # Event time: stream events reach the join in timestamp order once the watermark passes them (§C.5).
        streams = [source for source in plan.inputs if not source.is_table]
        options = plan.rule.options
        self._ts_field = streams[0].definition.options.timestamp if options.is_event_time else ""
        self._watermark = Watermark(options.late_tolerance) if self._ts_field else None
        self._m_watermark = metrics.add(OpMetrics(f"op_{seq}_watermark")) if self._watermark else None
        seq += 1 if self._watermark else 0
        self._m_join = metrics.add(OpMetrics(f"op_{seq}_join"))
        self._m_filter = None
        if plan.has_where:
            seq += 1
            self._m_filter = metrics.add(OpMetrics(f"op_{seq}_filter"))
        self._m_project = metrics.add(OpMetrics(f"op_{seq + 1}_project"))
        self._m_srf = (
            metrics.add(OpMetrics(f"op_{seq + 2}_projectset")) if self._srf_key is not None else None
        )

    async def run(
        self,
        recv: trio.MemoryReceiveChannel[Batch],
        sends: list[EmissionSend],
        *,
        task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED,
    ) -> None:
        await run_batches(
            recv,
            sends,
            self.process,
            ctx=self._ctx,
            per_event=self._per_event,
            clock=self._clock,
            nodes=(self._m_watermark, self._m_join, self._m_filter, self._m_project, self._m_srf),
            task_status=task_status,
        )

    def process(self, batch: Batch) -> list[Emission]:
        """Join, filter and project one batch of stream events; errors become error emissions (``sendError``)."""
        ctx, m_join, m_project, srf_key = self._ctx, self._m_join, self._m_project, self._srf_key
        out: list[Emission] = []
        tables = self._tables.parts()
        if self._watermark is not None:
            assert self._m_watermark is not None
            batch = release_in_time(batch, self._watermark, self._ts_field, self._m_watermark, self._clock)
        for event in batch:
            if isinstance(event, ErrorItem):
                if self._send_error:
                    out.append(event)
                continue
            row = event.data
            ref = emitter(row)
            if ref is None or not isinstance(row, JoinedRow):
                continue
            ctx.meta, ctx.ts = event.meta, event.ts
            parts = {**tables, ref: [row]}
            m_join.records_in += 1
            try:
                rows = self._join.join(parts, ctx, self._tables.lookups)
            except EvalError as exc:
                self._fail(m_join, exc, out)
                continue
            if not rows:
                continue
            m_join.records_out += 1
            emission: list[Row] = []
            try:
                for joined in rows:
                    if self._m_filter is not None:
                        self._m_filter.records_in += 1
                    projected = self._apply(joined, ctx)
                    if projected is not None:
                        if self._m_filter is not None:
                            self._m_filter.records_out += 1
                        emission.append(projected)
            except EvalError as exc:
                node = self._m_filter if "Where" in exc.message and self._m_filter else m_project
                self._fail(node, exc, out)
                continue
            if not emission:
                continue
            m_project.records_in += 1
            m_project.records_out += 1
            if srf_key is not None:
                # The joined rows are one collection: eKuiper's projectset expands them into one emission.
                assert self._m_srf is not None
                try:
                    emission = expand_unnest(emission, srf_key, self._m_srf, self._clock)
                except EvalError as exc:
                    if self._send_error:
                        out.append(ErrorItem(exc.message))
                    continue
            out.append(emission)
        return out

    def _fail(self, node: OpMetrics, exc: EvalError, out: list[Emission]) -> None:
        node.error(exc.message, self._clock.now_ms())
        if self._send_error:
            out.append(ErrorItem(exc.message))
