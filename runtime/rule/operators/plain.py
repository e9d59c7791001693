"""The operator of a rule without window, join or ``dedup_trigger``: WHERE and SELECT fused into one loop of
plain calls over each received batch, with event-time ordering and ``unnest()`` expansion where the rule asks.
"""

from __future__ import annotations

from typing import final

import trio

from runtime.clock import Clock
from runtime.io.services import Services
from runtime.metrics import OpMetrics
from runtime.model import Batch, Emission, ErrorItem, Row
from runtime.ops.window import Watermark
from runtime.plan.planner import RulePlan
from runtime.rule.loop import EmissionSend, expand_unnest, release_in_time, rule_context, run_batches
from runtime.sql.expr import EvalError
from runtime.sql.functions.rulestate import calls_delay


@final
class PlainOperator:
    """WHERE + SELECT of a non-window rule as one loop of plain calls over each received batch."""

    def __init__(
        self,
        plan: RulePlan,
        clock: Clock,
        m_source: OpMetrics,
        m_filter: OpMetrics | None,
        m_project: OpMetrics,
        m_watermark: OpMetrics | None = None,
        m_srf: OpMetrics | None = None,
        *,
        services: Services | None = None,
    ) -> None:
        self._apply = plan.operator.apply
        self._srf_key = plan.operator.srf_key
        self._send_error = plan.rule.options.send_error
        self._clock = clock
        self._ctx = rule_context(plan.rule.id, clock, services)
        # delay() blocks the rule per event (eKuiper sleeps inside the call): such rules go one event at a time.
        self._per_event = calls_delay(plan.select)
        self._m_source = m_source
        self._m_filter = m_filter
        self._m_project = m_project
        self._m_watermark = m_watermark
        self._m_srf = m_srf
        # Event time: rows go through in timestamp order once the watermark passes them (§C.5).
        self._watermark = Watermark(plan.rule.options.late_tolerance) if m_watermark is not None else None
        self._ts_field = plan.stream.options.timestamp

    async def run(
        self,
        recv: trio.MemoryReceiveChannel[Batch],
        sends: list[EmissionSend],
        *,
        task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED,
    ) -> None:
        nodes = (self._m_source, self._m_watermark, self._m_filter, self._m_project, self._m_srf)
        await run_batches(
            recv,
            sends,
            self.process,
            ctx=self._ctx,
            per_event=self._per_event,
            clock=self._clock,
            nodes=nodes,
            task_status=task_status,
        )

    def process(self, batch: Batch) -> list[Emission]:
        """Filter and project one batch; errors become error emissions (``sendError``) or are only counted."""
        ctx, apply, send_error, srf_key = self._ctx, self._apply, self._send_error, self._srf_key
        m_source, m_filter, m_project = self._m_source, self._m_filter, self._m_project
        out: list[Emission] = []
        append = out.append
        emitted = 0  # rows WHERE passed and SELECT projected
        errors = 0  # error items (decode errors) in the batch
        select_failed = 0  # events that passed WHERE and failed in SELECT
        if self._watermark is not None:
            batch = self._ordered(batch)
        for event in batch:
            if isinstance(event, ErrorItem):
                errors += 1
                m_source.error(event.message, self._clock.now_ms())
                if send_error:
                    append(event)
                continue
            ctx.meta = event.meta
            ctx.ts = event.ts
            try:
                row = apply(event.data, ctx)
            except EvalError as exc:
                message = str(exc)
                in_select = message.startswith("run Select")
                node = m_project if in_select or m_filter is None else m_filter
                node.error(message, self._clock.now_ms())
                if in_select:
                    select_failed += 1
                if send_error:
                    append(ErrorItem(message))
                continue
            if row is None:
                continue
            emitted += 1
            if srf_key is None:
                append([row])
            else:
                out.extend(self._unnest(row, srf_key))
        n_events = len(batch) - errors
        passed = emitted + select_failed
        if self._watermark is None:
            m_source.records_in += n_events
            m_source.records_out += n_events
        if m_filter is not None:
            m_filter.records_in += n_events
            m_filter.records_out += passed
        m_project.records_in += passed
        m_project.records_out += emitted
        return out

    def _ordered(self, batch: Batch) -> Batch:
        """The events the watermark releases, stamped with their TIMESTAMP field; late ones are dropped."""
        watermark, m_watermark = self._watermark, self._m_watermark
        assert watermark is not None and m_watermark is not None
        return release_in_time(
            batch, watermark, self._ts_field, m_watermark, self._clock, counted=self._m_source
        )

    def _unnest(self, row: Row, key: str) -> list[Emission]:
        """``unnest()``: one emission per array element, or the error (§C.4)."""
        assert self._m_srf is not None
        try:
            rows = expand_unnest([row], key, self._m_srf, self._clock)
        except EvalError as exc:
            return [ErrorItem(exc.message)] if self._send_error else []
        return [[r] for r in rows]
