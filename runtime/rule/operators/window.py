"""The operator task of a window rule: one trio loop around the pure window state machine (``ops/window.py``).

It follows the ``Operator`` protocol of ``runtime.rule.loop``, beside the plain operator. Each iteration waits
for the next batch under ``trio.move_on_at(window.next_due)``; on timeout the due panes fire, otherwise every
event goes through window FILTER, the WHERE pushed below the window (tumbling, hopping, session), then into
the window. Before an event is added, panes due at or before its time fire, so the outcome does not depend
on which of two simultaneous wake-ups trio runs first. Panes become emissions through ``WindowQuery``.

Event time (``isEventTime`` and the stream's TIMESTAMP): events are stamped with that field, ordered by a
``Watermark`` and fed to the window as it releases them; windows fire when the watermark passes their end,
so no timer is armed.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Hashable
from contextlib import AsyncExitStack
from typing import final

import trio

from runtime.clock import Clock
from runtime.io.services import Services
from runtime.metrics import OpMetrics, RuleMetrics
from runtime.model import Batch, Emission, ErrorItem, Event, Row
from runtime.ops.join import TableSet, emitter
from runtime.ops.window import Pane, StateConditions, Watermark, Window, make_window
from runtime.plan.planner import RulePlan
from runtime.rule.loop import (
    EmissionSend,
    own_channels,
    rule_context,
    send_all,
    sleep_delay,
    take_queued,
    touch,
    with_event_time,
)
from runtime.sql.expr import EvalContext, EvalError, Fn
from runtime.sql.functions import function_names, lookup
from runtime.sql.functions.hits import calls_any


def window_node_names(plan: RulePlan) -> list[str]:
    """Metric node names of a window rule's operators in plan order (eKuiper docs api/restapi/rules.md, rule
    status), e.g. ``op_2_window``."""
    window, select = plan.window, plan.select
    assert window is not None
    names: list[str] = []
    # eKuiper numbers a join's nodes after one per extra stream (two per extra stream in event time):
    # TestWindowErrorRule3 op_3_window/op_4_join, TestEventWindowRule6 op_6_window.
    extra = max(0, sum(1 for source in plan.inputs if not source.is_table) - 1)
    seq = 2 + extra
    if plan.rule.options.is_event_time:
        # eKuiper's event-time plans number the watermark 3 and give window FILTER the window's number
        # (TestEventWindowDelayRule0: op_3_watermark, op_4_windowFilter, op_4_window).
        seq = 3 + 2 * extra
        names.append(f"op_{seq}_watermark")
        if window.filter is not None:
            names.append(f"op_{seq + 1}_windowFilter")
        seq += 1
    else:
        if window.where is not None:
            names.append(f"op_{seq}_filter")  # WHERE pushed below a tumbling/hopping/session/state window
            seq += 1
        if window.filter is not None:
            names.append(f"op_{seq}_windowFilter")
            seq += 1
    steps = ["window"]
    if plan.join is not None:
        tables = sum(1 for source in plan.inputs if source.is_table)
        if tables:
            # Tables meet the windows in a join_aligner numbered after three nodes per table's own path
            # (TestWindowRule11: op_2_window, op_6_join_aligner, op_7_join).
            names += [f"op_{seq}_window"]
            seq += 1 + 3 * tables
            steps = ["join_aligner"]
        steps.append("join")  # a join runs over each window's rows, before WHERE (§C.4)
    if select.where is not None and window.where is None:
        steps.append("filter")  # WHERE after a count/sliding window
    if len(select.group_by) > 1 and not _incremental(plan):
        steps.append("aggregate")  # dimensions beside the window call
    if select.having is not None:
        steps.append("having")
    if select.order_by:
        steps.append("order")
    steps.append("project")
    return names + [f"op_{i}_{step}" for i, step in enumerate(steps, start=seq)]


# Aggregates eKuiper computes with running accumulators (eKuiper docs sqls/windows.md "Incremental
# aggregation").
_INCREMENTAL = frozenset({"count", "sum", "avg", "max", "min", "collect", "merge_agg", "last_value"})


def _incremental(plan: RulePlan) -> bool:
    """eKuiper's ``planOptimizeStrategy.enableIncrementalWindow`` plan: when every aggregate of the query can run
    incrementally, the grouping happens inside the window node, so no separate ``aggregate`` node exists (results
    are the same; only the metric node numbering differs, TestAliasOrderBy14)."""
    strategy = plan.rule.options.extra.get("planOptimizeStrategy")
    if not isinstance(strategy, dict) or strategy.get("enableIncrementalWindow") is not True or plan.join:
        return False
    select = plan.select
    others = frozenset(name for name in function_names() if _is_aggregate(name)) - _INCREMENTAL
    return not calls_any([f.expr for f in select.fields] + [select.having], others)


def _is_aggregate(name: str) -> bool:
    fdef = lookup(name)
    return fdef is not None and fdef.kind == "aggregate"


@final
class WindowOperator:
    """FILTER, pushed-down WHERE, window and post-window query of one window rule."""

    def __init__(
        self,
        plan: RulePlan,
        clock: Clock,
        m_source: OpMetrics,
        metrics: RuleMetrics,
        tables: TableSet | None = None,
        services: Services | None = None,
    ) -> None:
        assert plan.window is not None
        self._plan = plan.window
        self._join = plan.join
        self._tables = tables
        self._send_error = plan.rule.options.send_error
        self._clock = clock
        self._ctx = rule_context(plan.rule.id, clock, services)
        self._m_source = m_source
        self._nodes = [metrics.add(OpMetrics(name)) for name in window_node_names(plan)]
        self._m_where = self._nodes[0] if self._plan.where is not None else None
        self._m_watermark = self._nodes[0] if self._nodes[0].name.endswith("_watermark") else None
        at = next(i for i, node in enumerate(self._nodes) if node.name.endswith("_window"))
        self._m_aligner = next((n for n in self._nodes if n.name.endswith("_join_aligner")), None)
        self._table_rows = 0  # table rows already counted into the aligner's records_in
        self._m_window = self._nodes[at]
        self._m_filter = self._nodes[at - 1] if self._plan.filter is not None else None
        self._after_window = [(node, node.name.split("_", 2)[2]) for node in self._nodes[at + 1 :]]
        options = plan.rule.options
        self._ts_field = plan.stream.options.timestamp if options.is_event_time else ""
        # A join's streams may name their TIMESTAMP fields differently; rows are tagged with their stream.
        self._ts_fields = {
            source.name: source.definition.options.timestamp for source in plan.inputs if not source.is_table
        }
        self._late_ms = options.late_tolerance

    async def run(
        self,
        recv: trio.MemoryReceiveChannel[Batch],
        sends: list[EmissionSend],
        *,
        task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED,
    ) -> None:
        plan = self._plan
        trigger = self._condition(plan.trigger) if plan.trigger is not None else None
        # Event time: the window is created at the first released event, whose ts is the first window_start.
        watermark = Watermark(self._late_ms, self._ts_fields) if self._ts_field else None
        state = self._state_conditions()
        window = (
            None if watermark is not None else make_window(plan.spec, self._clock.now_ms(), trigger, state)
        )
        async with AsyncExitStack() as stack:
            await own_channels(stack, recv, sends)
            task_status.started()
            while True:
                due = window.next_due if window is not None and watermark is None else None
                batch: Batch | None = None
                with trio.move_on_at(self._clock.to_trio(due) if due is not None else math.inf):
                    try:
                        batch = await recv.receive()
                    except trio.EndOfChannel:
                        return  # the run ends with its data: later timers are not waited for
                started = trio.current_time()
                taken = 1
                if batch is not None:
                    batch, taken = take_queued(recv, batch)
                out: list[Emission] = []
                if batch is None:
                    assert due is not None and window is not None
                    # max(): the float round trip through trio time may read 1 ms early.
                    out.extend(self._emit(window.fire(max(due, self._clock.now_ms()))))
                for item in batch or ():
                    if isinstance(item, ErrorItem):
                        self._m_source.error(item.message, self._clock.now_ms())
                        if self._send_error:
                            out.append(item)
                        continue
                    self._m_source.records_in += 1
                    self._m_source.records_out += 1
                    if watermark is None:
                        assert window is not None
                        out.extend(self._emit(window.fire(item.ts)))
                        out.extend(self._admit(item, window.add))
                        continue
                    event = self._with_event_time(item)
                    if event is None:
                        continue
                    released_events = watermark.push(event, emitter(event.data) or "")
                    if self._m_watermark is not None:
                        self._m_watermark.records_in += 1
                        self._m_watermark.records_out += len(released_events)
                    # Events released together with one timestamp are all in the windows they trigger (a
                    # join's two rows of one instant meet): their panes are emitted once the group is in.
                    group = _Group()
                    for released in released_events:
                        if window is None:
                            window = make_window(plan.spec, released.ts, trigger, state)
                        if released.ts != group.ts:
                            out.extend(self._emit(group.panes()))
                            group = _Group(released.ts)
                        out.extend(self._emit(window.fire(released.ts)))
                        add = group.adder(window) if plan.spec.kind == "sliding" else window.add
                        out.extend(self._admit(released, add))
                    out.extend(self._emit(group.panes()))
                    if window is not None and watermark.value is not None:
                        out.extend(self._emit(window.fire(watermark.value)))
                if self._ctx.delay_ms:
                    await sleep_delay(self._ctx)
                if out:
                    await send_all(sends, out)
                self._touch(started, taken)

    def _with_event_time(self, event: Event) -> Event | None:
        """The event stamped with its source's TIMESTAMP field; None (counted as an error) when not an int."""
        field = self._ts_fields.get(emitter(event.data) or "", self._ts_field)
        return with_event_time(event, field, self._m_window, self._clock)

    def _admit(self, event: Event, add: Callable[[Event], list[Pane]]) -> list[Emission]:
        """Source counters, FILTER and pushed-down WHERE for one event; returns what adding it emitted."""
        plan, ctx = self._plan, self._ctx
        ctx.ts, ctx.meta, ctx.group = event.ts, event.meta, None
        ctx.window_start = ctx.window_end = ctx.window_trigger = None
        if plan.filter is not None:
            assert self._m_filter is not None
            self._m_filter.records_in += 1
            if not self._condition(plan.filter)(event):
                return []
            self._m_filter.records_out += 1
        if plan.where is not None:
            node = self._m_where
            if node is not None:
                node.records_in += 1
            try:
                passed = plan.where(event.data, ctx) is True
            except EvalError as exc:
                message = f"run Where error: {exc.message}"
                if node is not None:
                    node.error(message, self._clock.now_ms())
                return [ErrorItem(message)] if self._send_error else []
            if not passed:
                return []
            if node is not None:
                node.records_out += 1
        self._m_window.records_in += 1
        return self._emit(add(event))

    def _emit(self, panes: list[Pane]) -> list[Emission]:
        out: list[Emission] = []
        query = self._plan.query
        for pane in panes:
            self._m_window.records_out += 1
            # window_trigger(): in event time the watermark passing the end fires the pane; in processing time
            # the rule clock now (later than the end for a delayed sliding window or a busy operator).
            self._ctx.window_trigger = pane.end if self._ts_field else max(pane.end, self._clock.now_ms())
            result = self._joined(pane) if self._join is not None else query.evaluate(pane, self._ctx)
            # Each node after the window counts the emission in, and out unless it stopped there (§F).
            for node, step in self._after_window:
                node.records_in += 1
                if step == query.stopped_at:
                    if isinstance(result, ErrorItem):
                        node.error(result.message, self._clock.now_ms())
                    break
                node.records_out += 1
            if isinstance(result, ErrorItem) and not self._send_error:
                continue
            if result is not None:
                out.append(result)
        return out

    def _joined(self, pane: Pane) -> list[Row] | ErrorItem | None:
        """JOIN over the pane's rows (and the tables' current rows), then the query; nothing when no row joined."""
        assert self._join is not None
        ctx, query = self._ctx, self._plan.query
        ctx.window_start, ctx.window_end = pane.start, pane.end
        if self._m_aligner is not None and self._tables is not None:
            # The aligner also takes in the tables' rows (eKuiper counts them with the windows).
            self._m_aligner.records_in += self._tables.rows_seen - self._table_rows
            self._table_rows = self._tables.rows_seen
        try:
            events = self._join.join_events(pane.events, ctx, self._tables)
        except EvalError as exc:
            query.stopped_at = "join"
            return ErrorItem(exc.message)
        if not events:
            query.stopped_at = "join"
            return None  # C.6: a join that removes every row forwards nothing
        return query.evaluate(Pane(pane.start, pane.end, events), ctx)

    def _condition(self, fn: Fn) -> _Condition:
        return _Condition(fn, self._ctx)

    def _state_conditions(self) -> StateConditions | None:
        plan = self._plan
        if plan.spec.kind != "state":
            return None
        conditions = [self._condition(fn) for fn in plan.state]
        partition = _PartitionKey(plan.partition, self._ctx) if plan.partition else None
        return StateConditions(conditions[0], conditions[1] if len(conditions) > 1 else None, partition)

    def _touch(self, started: float, batches: int = 1) -> None:
        touch((self._m_source, *self._nodes), self._clock, started, batches)


@final
class _PartitionKey:
    """``OVER (PARTITION BY a, b)`` of a state window: the values of one event, as text (eKuiper keys its
    partitions by ``%v`` of each value; an expression that fails is left out of the key, as there)."""

    __slots__ = ("_ctx", "_fns")

    def __init__(self, fns: tuple[Fn, ...], ctx: EvalContext) -> None:
        self._fns = fns
        self._ctx = ctx

    def __call__(self, event: Event) -> Hashable:
        ctx = self._ctx
        ctx.ts, ctx.meta = event.ts, event.meta
        parts: list[str] = []
        for fn in self._fns:
            try:
                parts.append(repr(fn(event.data, ctx)))
            except EvalError:
                continue
        return tuple(parts)


@final
class _Group:
    """Event-time events released together with one timestamp: the sliding-window panes they trigger are held
    back until the whole group is in the window, then each gets the group's later events too (their time is its
    end). Two streams' rows of one instant thus meet in a join (TestEventWindowRule3/6)."""

    __slots__ = ("_added", "_pending", "ts")

    def __init__(self, ts: int | None = None) -> None:
        self.ts = ts
        self._added: list[Event] = []
        self._pending: list[tuple[Pane, int]] = []

    def adder(self, window: Window) -> Callable[[Event], list[Pane]]:
        def add(event: Event) -> list[Pane]:
            self._added.append(event)
            self._pending.extend((pane, len(self._added)) for pane in window.add(event))
            return []

        return add

    def panes(self) -> list[Pane]:
        return [
            Pane(pane.start, pane.end, pane.events + [e for e in self._added[seen:] if e.ts <= pane.end])
            for pane, seen in self._pending
        ]


@final
class _Condition:
    """A boolean expression over one event (window FILTER, OVER WHEN); an evaluation error counts as false."""

    __slots__ = ("_ctx", "_fn")

    def __init__(self, fn: Fn, ctx: EvalContext) -> None:
        self._fn = fn
        self._ctx = ctx

    def __call__(self, event: Event) -> bool:
        ctx = self._ctx
        ctx.ts, ctx.meta = event.ts, event.meta
        try:
            return self._fn(event.data, ctx) is True
        except EvalError:
            return False
