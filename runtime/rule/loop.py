"""The operator loop: the ``Operator`` protocol every rule operator task follows, what a rule run gets from the
engine (``RuleEnv``), and what the operators share: their expression context, channel ownership, the ``delay()``
sleep, batch coalescing, per-batch metrics and the plain batch loop of operators without timers.

The four operators (plain, window, stream–table join, ``dedup_trigger``) differ in what they do to a batch and
in whether they wait for a deadline too; how they take their channels, build their context and report per-batch
metrics is the same and lives here once.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from contextlib import AsyncExitStack
from pathlib import Path
from typing import Protocol, TypeVar, final

import attrs
import trio

from runtime.clock import Clock
from runtime.io.build import build_source
from runtime.io.contract import IoContext, Source
from runtime.io.registry import Registry
from runtime.io.services import Services
from runtime.metrics import OpMetrics
from runtime.model import Batch, Emission, ErrorItem, Event, Row
from runtime.ops.project import unnest_rows
from runtime.ops.window import Watermark
from runtime.plan.planner import RulePlan, SourceInput
from runtime.sql.semantic import fields_read
from runtime.sql.values import EvalContext, EvalError

_T = TypeVar("_T")


class EmissionSend(Protocol):
    """Where an operator sends its emissions for one sink: the sink task's channel (``trio.MemorySendChannel``),
    or a sink written inline by the operator task (``runtime.rule.pipeline._InlineSink``). ``aclose`` ends that sink."""

    def send_nowait(self, value: list[Emission]) -> None: ...

    async def send(self, value: list[Emission]) -> None: ...

    async def aclose(self) -> None: ...


@final
@attrs.frozen
class RuleEnv:
    """What a rule run needs from the engine, passed down explicitly (no module state)."""

    clock: Clock
    services: Services
    registry: Registry
    etc_dir: Path


class Operator(Protocol):
    """A rule's operator task: takes batches from the source channel, sends emissions to every sink.

    ``run`` owns both ends it is given (``own_channels``): it closes the sink channels when its input ends, which
    is how the sinks learn the rule is done. The four kinds live in ``runtime.rule.operators``: ``plain`` (WHERE
    and SELECT), ``window``, ``join`` (stream-table without window) and ``dedup`` (``dedup_trigger``).
    """

    async def run(
        self,
        recv: trio.MemoryReceiveChannel[Batch],
        sends: list[EmissionSend],
        *,
        task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED,
    ) -> None: ...


def rule_context(rule_id: str, clock: Clock, services: Services | None) -> EvalContext:
    """The context a rule run's expressions read: the engine's keyed state and props when there is an engine."""
    if services is not None:
        return services.eval_context(rule_id, clock)
    return EvalContext(rule_id=rule_id, clock=clock)


def with_event_time(event: Event, field: str, node: OpMetrics, clock: Clock) -> Event | None:
    """``event`` stamped with the value of its ``field`` (the stream's TIMESTAMP) as its time; None, counted as
    an error of ``node``, when that is not an int."""
    ts = event.data.get(field)
    if type(ts) is not int:
        node.error(f"cannot read event time from field {field}", clock.now_ms())
        return None
    return Event(event.data, ts, event.meta)


def release_in_time(
    batch: Batch,
    watermark: Watermark,
    field: str,
    node: OpMetrics,
    clock: Clock,
    counted: OpMetrics | None = None,
) -> Batch:
    """Event time (§C.5): push ``batch``'s events through ``watermark`` and return those it releases, in
    timestamp order and stamped with their ``field``; late events are dropped. Error items pass straight on.

    ``node`` (the watermark node) counts events in and released; ``counted`` (the source node, when the operator
    counts for it) counts every event that reached the watermark.
    """
    released: Batch = []
    for item in batch:
        if isinstance(item, ErrorItem):
            released.append(item)
            continue
        if counted is not None:
            counted.records_in += 1
            counted.records_out += 1
        node.records_in += 1
        event = with_event_time(item, field, node, clock)
        if event is None:
            continue
        events = watermark.push(event)
        node.records_out += len(events)
        released.extend(events)
    return released


def expand_unnest(rows: list[Row], key: str, node: OpMetrics, clock: Clock) -> list[Row]:
    """``unnest()`` (the projectset node, §C.4): every row's array under ``key`` expanded into its rows.

    Counts one record of ``node`` per call. Raises EvalError (already counted on ``node``) when a row holds
    no array; the caller turns it into an error emission or drops it.
    """
    node.records_in += 1
    try:
        out = [expanded for row in rows for expanded in unnest_rows(row, key)]
    except EvalError as exc:
        node.error(exc.message, clock.now_ms())
        raise
    node.records_out += 1
    return out


async def own_channels(
    stack: AsyncExitStack,
    recv: trio.MemoryReceiveChannel[Batch],
    sends: Sequence[EmissionSend],
) -> None:
    """Make ``stack`` close the operator's input and every sink channel when the operator ends.

    Closing the sends is what ends the sink tasks once the operator is done, so every operator owns them.
    """
    await stack.enter_async_context(recv)
    for send in sends:
        stack.push_async_callback(send.aclose)


async def sleep_delay(ctx: EvalContext) -> None:
    """Sleep for the ``delay()`` calls evaluated since the last emission, then reset them.

    eKuiper's ``delay(ms, v)`` sleeps inside the call and so blocks the whole rule; Oort's calls are plain, so
    the operator task blocks instead, before it sends the emission. ``trio.sleep`` reads trio's clock: virtual
    time under ``MockClock`` (replay, tests).
    """
    ms, ctx.delay_ms = ctx.delay_ms, 0
    await trio.sleep(ms / 1000)


COALESCE = 64  # batches already queued for an operator or sink that it takes at once
# ... but never beyond this many events or emissions in the joined batch: channels count batches, so a joined
# batch of thousands of rows would multiply what a full ``block`` pipeline holds (bufferLength x batch size).
# Joining stops once a batch is this large, which is the largest batch a source hands over (the data server's
# READ_BATCH), so the rows held in flight stay what they were without coalescing.
COALESCE_ITEMS = 64


def touch(nodes: Sequence[OpMetrics | None], clock: Clock, started: float, batches: int = 1) -> None:
    """Per-batch metrics of the operator's nodes: last invocation, latency of this batch, ``batches`` more
    messages (the received batches it took at once)."""
    now = clock.now_ms()
    latency = int((trio.current_time() - started) * 1e6)
    for m in nodes:
        if m is not None:
            m.last_invocation = now
            m.process_latency_us = latency
            m.messages_processed += batches


def take_queued(recv: trio.MemoryReceiveChannel[list[_T]], first: list[_T]) -> tuple[list[_T], int]:
    """``first`` joined by the batches already queued behind it (up to ``COALESCE``), and how many were taken.

    A busy loop pays its per-batch costs (wake-up, sends, metrics) once for everything that queued while it
    worked; an idle one finds nothing queued and goes on with ``first`` alone, so no latency is added. No
    checkpoint: the caller's next ``receive`` is one. ``first`` is not modified (its sender may share it).
    """
    if len(first) >= COALESCE_ITEMS:
        return first, 1
    try:
        more = recv.receive_nowait()
    except (trio.WouldBlock, trio.EndOfChannel):  # the end is seen by the caller's next receive
        return first, 1
    joined = [*first, *more]
    taken = 2
    while taken < COALESCE and len(joined) < COALESCE_ITEMS:
        try:
            joined.extend(recv.receive_nowait())
        except (trio.WouldBlock, trio.EndOfChannel):
            break
        taken += 1
    return joined, taken


async def send_all(sends: Sequence[EmissionSend], out: list[Emission]) -> None:
    """Send ``out`` to every sink channel; waits (``block``) only on a full one. A send with room does not yield:
    the operator's next ``receive`` is its checkpoint, so a rule costs one scheduler pass per batch, not two."""
    for send in sends:
        try:
            send.send_nowait(out)
        except trio.WouldBlock:
            await send.send(out)


async def run_batches(
    recv: trio.MemoryReceiveChannel[Batch],
    sends: Sequence[EmissionSend],
    process: Callable[[Batch], list[Emission]],
    *,
    ctx: EvalContext,
    per_event: bool,
    clock: Clock,
    nodes: Sequence[OpMetrics | None],
    task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED,
) -> None:
    """The loop of an operator without timers: ``process`` each batch, send its emissions to every sink.

    Args:
      process: one batch in, its emissions out (plain calls, no awaits).
      ctx: the context ``process`` evaluates in; its pending ``delay()`` is slept before sending.
      per_event: the rule calls ``delay()``, which blocks per event as in eKuiper: batches are cut into events.
      nodes: the metric nodes whose per-batch figures this loop keeps.

    Returns when the input channel ends (the sources are done); the sink channels are closed then.
    """
    async with AsyncExitStack() as stack:
        await own_channels(stack, recv, sends)
        task_status.started()
        receive = recv.receive  # not ``async for``: one coroutine frame less to resume per batch
        while True:
            try:
                first = await receive()
            except trio.EndOfChannel:
                break
            started = trio.current_time()
            batch, taken = take_queued(recv, first)
            for part in [[item] for item in batch] if per_event else (batch,):
                out = process(part)
                if ctx.delay_ms:
                    await sleep_delay(ctx)
                if out:
                    await send_all(sends, out)
            touch(nodes, clock, started, taken)


def plan_source(plan: RulePlan, env: RuleEnv, ctx: IoContext) -> Source:
    """The source connector of a single-source rule, for one run."""
    ref = plan.select.sources[0]
    return build_source(
        env.registry,
        plan.stream,
        plan.source_type,
        env.etc_dir,
        ctx,
        fields_read=fields_read(plan.select, ref),
    )


def input_source(plan: RulePlan, source: SourceInput, env: RuleEnv, ctx: IoContext) -> Source:
    """The source connector of one FROM/JOIN source of a join rule, for one run."""
    return build_source(
        env.registry,
        source.definition,
        source.source_type,
        env.etc_dir,
        ctx,
        fields_read=fields_read(plan.select, source.ref),
    )
