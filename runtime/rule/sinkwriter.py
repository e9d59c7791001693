"""The body of a rule's sink task: write every message, and decide what a failed write means (eKuiper v2's
``SinkNode`` with its ``CacheOp``, internal/topo/node/sink_node.go and cache_op.go).

A write failure never stops the rule:

* ``SinkUnavailable`` (the target cannot take the message now; eKuiper's IO error): with the cache off, the
  message is counted (the sink's ``exceptions_total``/``last_exception``) and dropped; with the cache on
  (``enableCache``), it is kept in the sink's ``SinkCache`` and resent.
* any other ``SinkError`` (``EncodeError`` included): counted and dropped; resending would fail the same way.
* any other exception is a bug and fails the rule (its restart strategy applies).

Failures are logged at most once per ``LOG_EVERY`` seconds per sink, with the number left unlogged; the log
line holds the error's text (connectors keep secrets out of it), never the message.

Resending, with the cache on:

* ``resendAlterQueue`` false (default): once a message is cached, later ones queue behind it, so the target
  gets every message once and in order. The oldest is retried every ``resendInterval`` (at least 100 ms);
  when the target takes it, the rest follow ``resendInterval`` apart (back to back when 0).
* ``resendAlterQueue`` true (eKuiper 1.x's two queues): new messages are written at once; only failed ones go
  to the cache, the resend queue, retried as above. ``resendPriority`` says who goes first when both new data
  and a due resend are waiting: -1 new data, 1 the cache, 0 turn by turn. ``resendIndicatorField`` is set to
  true in every resent row, and resent messages go through the ``resendDestination`` sink when there is one.

The sink task never stops taking input while it resends, so the rule's source is not held up by a down
target: what cannot be sent goes to the cache (bounded by ``memoryCacheThreshold`` and ``maxDiskCache``).
"""

from __future__ import annotations

import logging
import math
from typing import final

import trio

from runtime.clock import Clock
from runtime.errors import EncodeError, SinkError, SinkUnavailable
from runtime.io.contract import Sink
from runtime.io.sinkprops import Message, SinkProps
from runtime.metrics import OpMetrics
from runtime.model import Emission, ErrorItem
from runtime.rule.loop import take_queued
from runtime.rule.sinkcache import SinkCache

RESEND_BUDGET = 64  # cached messages resent in a row before the sink task looks at its input again
LOG_EVERY = 10.0  # seconds: at most one log line per sink for repeated write failures


@final
class WriteFailures:
    """Counts a sink's failed writes on its metrics and logs them, at most once per ``LOG_EVERY`` seconds."""

    __slots__ = ("_clock", "_label", "_logger", "_metrics", "_next_log", "_unlogged")

    def __init__(self, metrics: OpMetrics, clock: Clock, logger: logging.Logger) -> None:
        self._metrics = metrics
        self._clock = clock
        self._logger = logger
        self._label = metrics.name
        self._next_log = -math.inf
        self._unlogged = 0

    def failed(self, exc: SinkError, outcome: str) -> None:
        """Count one failed write; ``outcome`` says what became of the message (``dropped``, ``cached``)."""
        self._metrics.error(str(exc), self._clock.now_ms())
        self._note(f"{self._label}: write failed, message {outcome}: {exc}")

    def dropped(self, count: int, why: str) -> None:
        """Count ``count`` messages the cache had to drop (each one an exception, as a failed write is)."""
        metrics = self._metrics
        metrics.exceptions += count
        metrics.dropped += count
        metrics.last_exception = why
        metrics.last_exception_time = self._clock.now_ms()

    def _note(self, text: str) -> None:
        now = trio.current_time()
        if now < self._next_log:
            self._unlogged += 1
            return
        more = f" ({self._unlogged} more failures since the last report)" if self._unlogged else ""
        self._logger.warning("%s%s", text, more)
        self._next_log = now + LOG_EVERY
        self._unlogged = 0


@final
class SinkWriter:
    """Writes a sink's emissions, with eKuiper's error semantics and cache (see the module docstring).

    Args:
      sink: the open sink.
      props: the action's common properties (message shaping, cache settings).
      metrics: the sink's metrics.
      clock: the rule's clock (metric timestamps).
      logger: the rule's logger.
      cache: the action's cache when ``enableCache`` is on, else None.
      resend_sink: the open sink resent messages go to (``resendDestination``), else None (``sink``).
    """

    __slots__ = (
        "_alter",
        "_cache",
        "_chain",
        "_clock",
        "_failures",
        "_indicator",
        "_input_done",
        "_metrics",
        "_next_try",
        "_plain",
        "_priority",
        "_props",
        "_resend_sink",
        "_retry",
        "_sink",
    )

    def __init__(
        self,
        sink: Sink,
        props: SinkProps,
        metrics: OpMetrics,
        clock: Clock,
        logger: logging.Logger,
        cache: SinkCache | None = None,
        resend_sink: Sink | None = None,
    ) -> None:
        self._sink = sink
        self._resend_sink = resend_sink if resend_sink is not None else sink
        self._props = props
        self._plain = props.is_plain
        self._metrics = metrics
        self._clock = clock
        self._failures = WriteFailures(metrics, clock, logger)
        self._cache = cache
        conf = props.cache
        self._alter = conf.alter_queue
        self._priority = conf.priority
        self._indicator = conf.indicator_field if conf.alter_queue else ""
        self._retry = conf.retry_interval
        self._chain = conf.chain_interval
        self._next_try = -math.inf
        self._input_done = False
        if cache is not None:
            cache.on_drop = self._failures.dropped

    async def run(self, recv: trio.MemoryReceiveChannel[list[Emission]]) -> None:
        """Write what arrives on ``recv`` until it is closed and nothing is left to resend.

        Returns: once the operator closed ``recv`` and every cached message was resent (or dropped).

        Raises:
          Exception: what ``Sink.write`` raised other than a ``SinkError`` (a bug: the rule fails).

        Cancellation: stops at once; cached messages stay in the cache (``SinkCache.close`` keeps them).
        """
        try:
            await self._run(recv)
        except Exception as exc:  # a bug: shown on the sink's metrics too, then the rule fails
            self._metrics.error(str(exc) or type(exc).__name__, self._clock.now_ms())
            raise

    async def _run(self, recv: trio.MemoryReceiveChannel[list[Emission]]) -> None:
        cache = self._cache
        self._next_try = trio.current_time()  # what a previous run left is resent at once
        async with recv:
            while True:
                if cache is None or not cache.length:
                    if self._input_done:
                        return
                    try:
                        first = await recv.receive()
                    except trio.EndOfChannel:
                        return
                    await self._take(recv, first)
                elif trio.current_time() < self._next_try:
                    await self._wait_input(recv)
                elif not (self._alter and self._priority < 0 and await self._take_waiting(recv)):
                    await self._resend(1 if self._alter and self._priority == 0 else RESEND_BUDGET)
                    await self._take_waiting(recv)

    async def _wait_input(self, recv: trio.MemoryReceiveChannel[list[Emission]]) -> None:
        """Take input until the next resend is due."""
        if self._input_done:
            await trio.sleep_until(self._next_try)
            return
        first: list[Emission] | None = None
        with trio.move_on_at(self._next_try):
            try:
                first = await recv.receive()
            except trio.EndOfChannel:
                self._input_done = True
        if first is not None:  # written outside the timeout: a write is never cut short by the resend timer
            await self._take(recv, first)

    async def _take_waiting(self, recv: trio.MemoryReceiveChannel[list[Emission]]) -> bool:
        """Take what is already waiting on ``recv``, if anything (True then), without waiting."""
        if self._input_done:
            return False
        try:
            first = recv.receive_nowait()
        except trio.WouldBlock:
            return False
        except trio.EndOfChannel:
            self._input_done = True
            return False
        await self._take(recv, first)
        return True

    async def _take(self, recv: trio.MemoryReceiveChannel[list[Emission]], first: list[Emission]) -> None:
        started = trio.current_time()
        emissions, _ = take_queued(recv, first)
        metrics, props, cache = self._metrics, self._props, self._cache
        for emission in emissions:
            rows = [emission.as_row()] if isinstance(emission, ErrorItem) else emission
            metrics.records_in += 1
            messages = [rows] if self._plain else props.messages(rows)
            if not messages:
                metrics.records_out += 1  # omitIfEmpty: nothing to send is done too
            last = len(messages) - 1
            for n, message in enumerate(messages):
                if cache is not None and cache.length and not self._alter:
                    cache.add((message, n == last))  # in order: behind what waits already
                else:
                    await self._write_new(message, n == last)
        metrics.messages_processed += len(emissions)
        metrics.process_latency_us = int((trio.current_time() - started) * 1e6)
        metrics.last_invocation = self._clock.now_ms()

    async def _write_new(self, message: Message, last: bool) -> None:
        try:
            await self._sink.write(message)
        except SinkUnavailable as exc:
            cache = self._cache
            if cache is None:
                self._failures.failed(exc, "dropped")
                return
            self._failures.failed(exc, "cached for resending")
            if not cache.length:
                self._next_try = trio.current_time() + self._retry
            cache.add((message, last))
            return
        except EncodeError as exc:  # this message has no form in the format: dropped, the emission is done
            self._failures.failed(exc, "dropped")
        except SinkError as exc:
            self._failures.failed(exc, "dropped")
            return
        if last:
            self._metrics.records_out += 1

    async def _resend(self, budget: int) -> None:
        """Resend up to ``budget`` cached messages, oldest first; a refusal sets the next try."""
        cache = self._cache
        assert cache is not None
        await trio.lowlevel.checkpoint()  # a yield even when every cached message turns out to be dropped
        for _ in range(budget):
            entry = cache.head()
            if entry is None:
                return
            message, last = entry
            if self._indicator:
                message = _marked(message, self._indicator)
            try:
                await self._resend_sink.write(message)
            except SinkUnavailable:
                self._next_try = trio.current_time() + self._retry
                return
            except SinkError as exc:  # not the target's availability: it would fail forever, so drop it
                self._failures.failed(exc, "dropped from the cache")
                cache.pop()
                continue
            cache.pop()
            if last:
                self._metrics.records_out += 1
            if self._chain > 0:
                self._next_try = trio.current_time() + self._chain
                return
        self._next_try = trio.current_time()

    def close(self) -> None:
        """The sink task ends: keep (or drop, per ``cleanCacheAtStop``) what is still cached."""
        if self._cache is not None:
            self._cache.close()

    def __repr__(self) -> str:
        return f"<SinkWriter {self._metrics.name} cache={self._cache!r}>"


def _marked(message: Message, field: str) -> Message:
    """``message`` with ``field`` set to true in its row(s) (copies: emissions may be shared between sinks)."""
    if isinstance(message, str):  # a dataTemplate output is sent as it is: no row to mark
        return message
    if isinstance(message, dict):
        return {**message, field: True}
    return [{**row, field: True} for row in message]
