"""The operator task of a ``dedup_trigger`` rule: WHERE, the holding stage of ``runtime.ops.dedup``, then SELECT.

It follows the ``Operator`` protocol of ``runtime.rule.loop`` plus one timer: each iteration waits for the next batch under
``trio.move_on_at`` the deadline the stage asked for (eKuiper's ``timex.GetTimer``), so held rows are released
when their end comes even if no later row reaches it. Metric nodes follow eKuiper's plan:
``op_2_filter`` (with WHERE), ``op_N_dedup_trigger``, ``op_N+1_project``.
"""

from __future__ import annotations

import math
from contextlib import AsyncExitStack
from typing import final

import trio

from runtime.clock import Clock
from runtime.io.services import Services
from runtime.metrics import OpMetrics, RuleMetrics
from runtime.model import Batch, Emission, ErrorItem, Event
from runtime.ops.dedup import DedupTrigger
from runtime.plan.planner import RulePlan
from runtime.rule.loop import EmissionSend, own_channels, rule_context, sleep_delay, touch
from runtime.sql.expr import EvalError
from runtime.sql.functions.rulestate import calls_delay


@final
class DedupOperator:
    """WHERE, ``dedup_trigger`` and SELECT of one rule run (see the module docstring)."""

    def __init__(
        self,
        plan: RulePlan,
        clock: Clock,
        m_source: OpMetrics,
        metrics: RuleMetrics,
        *,
        services: Services | None = None,
    ) -> None:
        assert plan.dedup is not None
        self._where = plan.dedup.where
        self._trigger = DedupTrigger(plan.dedup.spec)
        self._project = plan.operator
        self._send_error = plan.rule.options.send_error
        self._clock = clock
        self._ctx = rule_context(plan.rule.id, clock, services)
        self._m_source = m_source
        seq = 2
        self._m_filter = None
        if self._where is not None:
            self._m_filter = metrics.add(OpMetrics(f"op_{seq}_filter"))
            seq += 1
        self._m_dedup = metrics.add(OpMetrics(f"op_{seq}_dedup_trigger"))
        self._m_project = metrics.add(OpMetrics(f"op_{seq + 1}_project"))
        self._due: int | None = None  # epoch ms at which the timer releases the earliest held row
        self._per_event = calls_delay(plan.select)  # delay() blocks per event, as in ``run_batches``

    async def run(
        self,
        recv: trio.MemoryReceiveChannel[Batch],
        sends: list[EmissionSend],
        *,
        task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED,
    ) -> None:
        async with AsyncExitStack() as stack:
            await own_channels(stack, recv, sends)
            task_status.started()
            while True:
                batch: Batch | None = None
                due = self._due
                with trio.move_on_at(self._clock.to_trio(due) if due is not None else math.inf):
                    try:
                        batch = await recv.receive()
                    except trio.EndOfChannel:
                        return  # like eKuiper at rule stop: rows still held are not emitted
                started = trio.current_time()
                if batch is None:
                    self._due = None
                    released, wait = self._trigger.fire()
                    self._schedule(wait)
                    await self._send(sends, self._emit(released))
                elif self._per_event:
                    for item in batch:
                        await self._send(sends, self.process(item))
                else:
                    await self._send(sends, [e for item in batch for e in self.process(item)])
                self._touch(started)

    async def _send(self, sends: list[EmissionSend], out: list[Emission]) -> None:
        if self._ctx.delay_ms:
            await sleep_delay(self._ctx)
        if out:
            for send in sends:
                await send.send(out)

    def process(self, item: Event | ErrorItem) -> list[Emission]:
        """WHERE and the holding stage for one event; returns the emissions of the rows it released."""
        if isinstance(item, ErrorItem):
            self._m_source.error(item.message, self._clock.now_ms())
            return [item] if self._send_error else []
        self._m_source.records_in += 1
        self._m_source.records_out += 1
        ctx = self._ctx
        ctx.ts, ctx.meta = item.ts, item.meta
        event = item
        if self._where is not None:
            assert self._m_filter is not None
            self._m_filter.records_in += 1
            try:
                passed = self._where.apply(item.data, ctx)
            except EvalError as exc:
                return self._fail(self._m_filter, exc.message)
            if passed is None:
                return []
            self._m_filter.records_out += 1
            event = Event(passed, item.ts, item.meta)
        self._m_dedup.records_in += 1
        try:
            released, wait = self._trigger.add(event)
        except EvalError as exc:
            return self._fail(self._m_dedup, exc.message)
        self._schedule(wait)  # None only once nothing is held
        return self._emit(released)

    def _schedule(self, wait: int | None) -> None:
        # eKuiper re-arms one timer for (next end - now) ms of processing time on every trigger.
        self._due = self._clock.now_ms() + wait if wait is not None else None

    def _emit(self, released: list[Event]) -> list[Emission]:
        ctx, out = self._ctx, []
        self._m_dedup.records_out += len(released)
        for event in released:
            ctx.ts, ctx.meta = event.ts, event.meta
            self._m_project.records_in += 1
            try:
                row = self._project.apply(event.data, ctx)
            except EvalError as exc:
                out.extend(self._fail(self._m_project, exc.message))
                continue
            if row is not None:
                self._m_project.records_out += 1
                out.append([row])
        return out

    def _fail(self, node: OpMetrics, message: str) -> list[Emission]:
        node.error(message, self._clock.now_ms())
        return [ErrorItem(message)] if self._send_error else []

    def _touch(self, started: float) -> None:
        touch((self._m_source, self._m_filter, self._m_dedup, self._m_project), self._clock, started)
