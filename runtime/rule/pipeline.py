"""One run of one rule: a nursery with the sink tasks, the operator task and the source task.

Data path (two channel hops per event, both carrying batches):
source --Batch--> operator (WHERE + SELECT fused into plain calls) --list[Emission]--> one task per sink.
A sink whose write never waits (``NowaitSink``: nop, log) has no channel: the operator task writes it
(``_InlineSink``), and the sink's task only opens it and closes it when the operator is done.
The source closing its channel is the normal end of data; it drains downstream and ``run_rule`` returns.
A sink write that fails with a ``SinkError`` is counted and the message dropped or cached for resending
(``runtime.rule.sinkwriter``); any other exception cancels the whole rule, and the engine's supervisor applies
the restart strategy.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Callable
from typing import Any, cast, final

import trio

from runtime.clock import Clock
from runtime.errors import EncodeError, PlanError, SinkError
from runtime.io.build import build_sink
from runtime.io.contract import IoContext, NowaitSink, Sink, Source
from runtime.io.sinkprops import SinkProps
from runtime.metrics import OpMetrics, RuleMetrics
from runtime.model import Batch, Emission, ErrorItem, Outbox
from runtime.plan.planner import RulePlan
from runtime.rule.loop import (
    EmissionSend,
    Operator,
    RuleEnv,
    input_source,
    plan_source,
)
from runtime.rule.operators.dedup import DedupOperator
from runtime.rule.operators.join import JoinOperator, make_tables, run_join_sources
from runtime.rule.operators.plain import PlainOperator
from runtime.rule.operators.window import WindowOperator
from runtime.rule.sinkcache import SinkCache, open_cache
from runtime.rule.sinkwriter import SinkWriter, WriteFailures

LOGGER = logging.getLogger("oort.rule")

"""What a sink receives at once: the rows of one emission, or an error (``sendError``)."""

SINK_CLOSE_TIMEOUT = 2.0  # seconds a sink may take to flush and close when the rule stops
SLOW_CLOSE = 0.5  # seconds after which a closing sink is named in the log (what a stop waits for)


async def _close_sink(sink: Sink, label: str) -> None:
    """Flush and close ``sink``, shielded from the rule's cancellation and bounded by ``SINK_CLOSE_TIMEOUT``;
    a close that takes longer than ``SLOW_CLOSE`` says what the stop is waiting for."""
    with trio.CancelScope(shield=True), trio.move_on_after(SINK_CLOSE_TIMEOUT) as bound:
        async with trio.open_nursery() as nursery:

            async def notice() -> None:
                await trio.sleep(SLOW_CLOSE)
                LOGGER.info("waiting up to %g s for %s to flush and close", SINK_CLOSE_TIMEOUT, label)

            nursery.start_soon(notice)
            await sink.aclose()
            nursery.cancel_scope.cancel()
    if bound.cancelled_caught:
        LOGGER.warning("%s did not close within %g s; left behind", label, SINK_CLOSE_TIMEOUT)


def _channel_len(recv: trio.MemoryReceiveChannel[Any]) -> Callable[[], int]:
    return lambda: recv.statistics().current_buffer_used


async def run_rule(
    plan: RulePlan,
    env: RuleEnv,
    metrics: RuleMetrics,
    *,
    task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED,
) -> None:
    """Run a rule until its source ends, it fails, or it is cancelled.

    Sinks start first, then the operator, then the source (eKuiper's order, downstream first), each with
    ``nursery.start`` so ``task_status.started()`` is called only when the whole pipeline is ready.

    Returns: when the source's data is exhausted and every sink has written everything.

    Raises:
      Whatever a source, the operator or a sink raised (inside an ExceptionGroup from the rule nursery).

    Cancellation: cancelling stops all three stages; sinks are closed (shielded, bounded by
    ``SINK_CLOSE_TIMEOUT``) before this returns, so files are flushed and connections released.
    """
    rule = plan.rule
    logger = logging.getLogger(f"oort.rule.{rule.id}")
    buffer = rule.options.buffer_length

    src_send, src_recv = trio.open_memory_channel[Batch](buffer)
    source: Source | None = None
    tables = make_tables(plan) if plan.join is not None else None
    if tables is not None:
        metrics.scan_tables = tables.parts  # REST GET /rules/{id}/scantables reads them live
    if tables is None:
        src_ctx = IoContext(rule_id=rule.id, clock=env.clock, services=env.services, logger=logger)
        source = plan_source(plan, env, src_ctx)
        m_source = metrics.add(
            OpMetrics(f"source_{plan.stream.name}", _channel_len(src_recv), src_ctx.connection)
        )
    else:
        m_source = OpMetrics("source")  # a join rule's sources count for themselves (run_join_sources)
    operator: Operator
    if plan.window is not None:
        operator = WindowOperator(plan, env.clock, m_source, metrics, tables, services=env.services)
    elif tables is not None:
        operator = JoinOperator(plan, env, metrics, tables)
    elif plan.dedup is not None:
        operator = DedupOperator(plan, env.clock, m_source, metrics, services=env.services)
    else:
        seq = 2
        m_watermark = m_filter = m_srf = None
        if rule.options.is_event_time and plan.stream.options.timestamp:
            m_watermark = metrics.add(OpMetrics(f"op_{seq}_watermark"))
            seq += 1
        if plan.has_where:
            m_filter = metrics.add(OpMetrics(f"op_{seq}_filter"))
            seq += 1
        m_project = metrics.add(OpMetrics(f"op_{seq}_project"))
        if plan.operator.srf_key is not None:
            m_srf = metrics.add(OpMetrics(f"op_{seq + 1}_projectset"))
        operator = PlainOperator(
            plan, env.clock, m_source, m_filter, m_project, m_watermark, m_srf, services=env.services
        )

    sink_tasks: list[Callable[..., Any]] = []
    sends: list[EmissionSend] = []
    for index, (sink_type, props) in enumerate(rule.actions):
        sink_props = SinkProps.from_action(props)
        ctx = IoContext(rule_id=rule.id, clock=env.clock, services=env.services, logger=logger)
        sink = build_sink(env.registry, sink_type, index, sink_props.connector_props, ctx)
        name = f"sink_{sink_type}_{index}"
        cache_props = sink_props.cache
        if not cache_props.enabled and callable(getattr(sink, "write_nowait", None)):
            # Its write never waits: the operator task writes it, no sink task or channel (nothing buffers).
            inline = _InlineSink(
                cast(NowaitSink, sink),
                sink_props,
                metrics.add(OpMetrics(name, lambda: 0, ctx.connection)),
                env.clock,
                logger,
            )
            sink_tasks.append(functools.partial(_hold_sink, sink, inline.closed))
            sends.append(inline)
            continue
        cache: SinkCache | None = None
        resend_sink: Sink | None = None
        if cache_props.enabled:
            cache = open_cache(cache_props, env.services.data_dir, rule.id, index, logger)
            resend_sink = _resend_sink(env, sink_type, index, sink_props, ctx)
        send, recv = trio.open_memory_channel[list[Emission]](buffer)
        m_sink = metrics.add(OpMetrics(name, _sink_len(recv, cache), ctx.connection))
        writer = SinkWriter(sink, sink_props, m_sink, env.clock, logger, cache, resend_sink)
        sink_tasks.append(functools.partial(_run_sink, sink, resend_sink, writer, recv, name))
        sends.append(send)

    policy = rule.options.buffer_full_policy

    def make_outbox(send: trio.MemorySendChannel[Batch], m: OpMetrics) -> tuple[Outbox, Callable[[], None]]:
        if policy == "block":
            return send, lambda: None
        dropping = DroppingOutbox(send, src_recv.clone(), policy, m)
        return dropping, dropping.close

    async with trio.open_nursery() as nursery:
        for sink_task in sink_tasks:
            await nursery.start(sink_task)
        await nursery.start(operator.run, src_recv, sends)
        if source is not None:
            outbox, _ = make_outbox(src_send, m_source)
            await nursery.start(_run_source, source, src_send, outbox)
        else:
            assert tables is not None
            joined = functools.partial(
                run_join_sources, plan, env, metrics, tables, src_send, make_outbox, logger
            )
            await nursery.start(joined)
        task_status.started()


@final
class DroppingOutbox:
    """``bufferFullPolicy`` ``dropOldest``/``dropNewest``: the source never waits; drops are counted.

    ``dropOldest`` takes the oldest waiting batch out of the channel (through a receive clone) to make room;
    ``dropNewest`` discards the batch that does not fit. Between the two ``*_nowait`` calls there is no
    checkpoint, so several producers in one trio run cannot interleave there.
    """

    def __init__(
        self,
        send: trio.MemorySendChannel[Batch],
        recv: trio.MemoryReceiveChannel[Batch],
        policy: str,
        metrics: OpMetrics,
    ) -> None:
        self._send = send
        self._recv = recv
        self._drop_oldest = policy == "dropOldest"
        self._metrics = metrics

    async def send(self, batch: Batch) -> None:
        await trio.lowlevel.checkpoint()
        try:
            self._send.send_nowait(batch)
            return
        except trio.WouldBlock:
            pass
        if not self._drop_oldest:
            self._metrics.dropped += len(batch)
            return
        try:
            self._metrics.dropped += len(self._recv.receive_nowait())
        except trio.WouldBlock:  # the operator emptied it meanwhile
            pass
        self._send.send_nowait(batch)

    def close(self) -> None:
        self._recv.close()


async def _run_source(
    source: Source,
    send: trio.MemorySendChannel[Batch],
    outbox: Outbox,
    *,
    task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED,
) -> None:
    try:
        async with send:
            await source.run(outbox, task_status=task_status)
    finally:
        if isinstance(outbox, DroppingOutbox):
            outbox.close()


async def _run_sink(
    sink: Sink,
    resend_sink: Sink | None,
    writer: SinkWriter,
    recv: trio.MemoryReceiveChannel[list[Emission]],
    label: str,
    *,
    task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED,
) -> None:
    """Open the sink (and its ``resendDestination`` twin), then let ``writer`` write until the input ends.

    Raises: what ``Sink.open`` raised (the rule does not start), or a bug in a write (see ``SinkWriter.run``).

    Cancellation: the cache keeps what is unsent and the sinks are closed (``_close_sink``) before this returns.
    """
    resend_open = False
    try:
        await sink.open()
        if resend_sink is not None:
            await resend_sink.open()
            resend_open = True
        task_status.started()
        await writer.run(recv)
    finally:
        writer.close()  # plain calls: a page or two of disk writes, never cut short by the cancellation
        if resend_open:
            assert resend_sink is not None
            await _close_sink(resend_sink, f"{label} (resend)")
        await _close_sink(sink, label)


def _sink_len(recv: trio.MemoryReceiveChannel[Any], cache: SinkCache | None) -> Callable[[], int]:
    """A sink's ``buffer_length``: what waits in its channel, plus its cache (as eKuiper counts it)."""
    if cache is None:
        return _channel_len(recv)
    return lambda: recv.statistics().current_buffer_used + cache.length


def _resend_sink(env: RuleEnv, sink_type: str, index: int, props: SinkProps, ctx: IoContext) -> Sink | None:
    """The second instance of an action's connector that resent messages go to (``resendDestination``, with the
    alter queue on), as eKuiper v2 builds it: the same properties with ``topic`` set to the destination."""
    cache = props.cache
    if not (cache.alter_queue and cache.destination):
        return None
    resend_props = {**props.connector_props, "topic": cache.destination}
    try:
        return build_sink(env.registry, sink_type, index, resend_props, ctx)
    except PlanError as exc:
        raise PlanError(
            f"sink property 'resendDestination' is used as the {sink_type} sink's 'topic': {exc}"
        ) from exc


@final
class _InlineSink:
    """A ``NowaitSink`` written by the operator task itself: what ``SinkWriter`` does per emission (without a
    cache), as plain calls, with the same metrics (records in/out, errors, latency). A ``SinkError`` is counted
    and its message dropped; any other exception propagates into the operator task and so fails the rule."""

    __slots__ = ("_clock", "_failures", "_metrics", "_plain", "_props", "_write", "closed")

    def __init__(
        self, sink: NowaitSink, props: SinkProps, metrics: OpMetrics, clock: Clock, logger: logging.Logger
    ) -> None:
        self._write = sink.write_nowait
        self._props = props
        self._plain = props.is_plain
        self._metrics = metrics
        self._clock = clock
        self._failures = WriteFailures(metrics, clock, logger)
        self.closed = trio.Event()  # set when the operator is done: ``_hold_sink`` closes the sink then

    def send_nowait(self, value: list[Emission]) -> None:
        started = trio.current_time()
        write, props, metrics, plain = self._write, self._props, self._metrics, self._plain
        for emission in value:
            rows = [emission.as_row()] if isinstance(emission, ErrorItem) else emission
            metrics.records_in += 1
            written = True
            for message in (rows,) if plain else props.messages(rows):
                try:
                    write(message)
                except SinkError as exc:  # this message only: count it, drop it, go on
                    self._failures.failed(exc, "dropped")
                    written = written and isinstance(exc, EncodeError)
                except Exception as exc:  # a bug: shown on the sink's metrics too, then the rule fails
                    metrics.error(str(exc) or type(exc).__name__, self._clock.now_ms())
                    raise
            if written:
                metrics.records_out += 1
        metrics.messages_processed += len(value)
        metrics.process_latency_us = int((trio.current_time() - started) * 1e6)
        metrics.last_invocation = self._clock.now_ms()

    async def send(self, value: list[Emission]) -> None:
        self.send_nowait(value)
        await trio.lowlevel.checkpoint()

    async def aclose(self) -> None:
        self.closed.set()
        await trio.lowlevel.checkpoint()


async def _hold_sink(
    sink: Sink,
    closed: trio.Event,
    *,
    task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED,
) -> None:
    """Open an inline sink, keep it open until its operator is done, then close it (as ``_run_sink`` does)."""
    try:
        await sink.open()
        task_status.started()
        await closed.wait()
    finally:
        await _close_sink(sink, f"sink {type(sink).__name__}")


def check_connectors(plan: RulePlan, env: RuleEnv, ctx: IoContext) -> None:
    """Build (and drop) the rule's sources and sinks so their properties are validated when the rule is created.

    Connector constructors only check properties; nothing is opened or connected here.
    """
    if plan.join is None:
        plan_source(plan, env, ctx)
    for source in plan.inputs:
        input_source(plan, source, env, ctx)
    for index, (sink_type, props) in enumerate(plan.rule.actions):
        sink_props = SinkProps.from_action(props)
        build_sink(env.registry, sink_type, index, sink_props.connector_props, ctx)
        _resend_sink(env, sink_type, index, sink_props, ctx)
