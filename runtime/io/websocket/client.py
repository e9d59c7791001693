"""Websocket client mode: shared, refcounted outgoing connections that reconnect forever.

One ``WsClient`` per distinct target (URL with path and query, TLS files, headers, open message, timeouts) is
shared by every source and sink that names it; ``WsClientPool.subscribe`` (``pool.py``) hands them out engine-wide. Each
client is one task in the engine's supervisor nursery running dial -> serve -> back off -> dial again.
"""

from __future__ import annotations

import logging
import random
import ssl
from collections.abc import Iterator
from typing import Any, final

import attrs
import trio

from runtime.clock import Clock
from runtime.errors import (
    BadHandshake,
    ConnectAttemptFailed,
    HandshakeRejected,
    MessageTooBig,
    PeerClosed,
    SinkUnavailable,
    leaves,
)
from runtime.formats.decode import DecodeError, Decoder
from runtime.io.dial import Transport, dial
from runtime.io.dial import describe_failure as describe_connect_failure
from runtime.io.websocket.tls import WsTarget
from runtime.io.websocket.wire import Wire, client_handshake
from runtime.metrics import ConnectionMetrics
from runtime.model import Batch, ErrorItem, Event, Outbox, Row

LOGGER = logging.getLogger("oort.websocket.client")

CLOSE_TIMEOUT = 1.0  # seconds granted to the websocket close handshake when a client is released
NORMAL_CLOSURE, MESSAGE_TOO_BIG = 1000, 1009
MIN_RETRY_DELAY = 0.001  # floor for a zero reconnectMinDelay, so a dead peer never means a busy loop
READ_BATCH = 64  # messages delivered to the rules as one batch at most (a socket read may complete more)

CONNECTING, CONNECTED, DISCONNECTED = (
    0,
    1,
    -1,
)  # ConnectionMetrics.status values (eKuiper's connection status)


# What one attempt may fail with, all retried: refused/unreachable (OSError), TLS (ssl errors, usually as the
# cause of BrokenResourceError), handshake rejected (HandshakeRejected, BadHandshake), the peer closing (PeerClosed), a
# message over the size cap (MessageTooBig) and our own timeouts (ConnectAttemptFailed).
_RETRYABLE = (
    OSError,
    ssl.SSLError,
    trio.BrokenResourceError,
    trio.ClosedResourceError,
    trio.TooSlowError,
    HandshakeRejected,
    BadHandshake,
    PeerClosed,
    MessageTooBig,
    ConnectAttemptFailed,
)


def describe_failure(exc: BaseException) -> str:
    """A one-line reason for a failed attempt, fit for ``last_disconnected_message`` (never the query)."""
    if isinstance(exc, HandshakeRejected | BadHandshake | PeerClosed | MessageTooBig | ConnectAttemptFailed):
        return str(exc)
    if isinstance(exc, trio.BrokenResourceError | trio.ClosedResourceError) and exc.__cause__ is not None:
        return describe_failure(exc.__cause__)  # trio wraps the error that says what went wrong
    return describe_connect_failure(exc)


@final
class Subscriber:
    """One source or sink using a shared connection (sources also name their stream and outbox)."""

    __slots__ = ("metrics", "outbox", "stream")

    def __init__(self, metrics: ConnectionMetrics, stream: str | None, outbox: Outbox | None) -> None:
        self.metrics = metrics
        self.stream = stream
        self.outbox = outbox


@final
class _StreamGroup:
    """The subscribers of one stream on a connection: a frame is decoded once for all of them."""

    __slots__ = ("decoder", "subscribers")

    def __init__(self, decoder: Decoder) -> None:
        self.decoder = decoder
        self.subscribers: list[Subscriber] = []


@final
class WsClient:
    """One shared client connection and its reconnect loop. Built only by ``WsClientPool``.

    Attributes:
      target: what it dials. metrics: its own connection state, mirrored into every subscriber's metrics.
    """

    def __init__(
        self, target: WsTarget, ssl_context: ssl.SSLContext | None, clock: Clock, ids: Iterator[int]
    ) -> None:
        self.target = target
        self.metrics = ConnectionMetrics()
        self._ssl = ssl_context
        self._clock = clock
        self._ids = ids
        self._rng = random.Random()
        self._subscribers: list[Subscriber] = []
        self._groups: dict[str, _StreamGroup] = {}
        self._ws: Wire | None = None  # set while connected
        self._meta: Row = {"path": target.path, "connectionId": ""}
        self._connection_id = ""
        self._connected = trio.Event()
        self._changed = trio.Event()  # set (and replaced) on every metrics update
        self._scope = trio.CancelScope()
        self._session_scope: trio.CancelScope | None = None
        self._stopped = trio.Event()
        self._ran = False
        self._delivering = False  # a frame is being awaited into outboxes (see _ping)
        self._close_code = NORMAL_CLOSURE  # the code our close frame carries when a session ends

    @property
    def url(self) -> str:
        """The URL without its query string."""
        return self.target.redacted

    @property
    def connection_id(self) -> str:
        """Id of the current (or last) established connection; "" before the first one."""
        return self._connection_id

    @property
    def subscriber_count(self) -> int:
        return len(self._subscribers)

    async def send(self, message: str | bytes) -> None:
        """Send one frame: text for ``str``, binary for ``bytes``.

        Raises:
          SinkUnavailable: not connected right now (the reconnect loop keeps trying meanwhile).
        """
        ws = self._ws
        if ws is None:
            raise SinkUnavailable(f"websocket {self.url} is not connected")
        try:
            await ws.send_message(message)
        except (trio.BrokenResourceError, trio.ClosedResourceError) as exc:
            raise SinkUnavailable(f"websocket {self.url} is not connected: {describe_failure(exc)}") from None
        finally:
            if ws.broken and self._session_scope is not None:
                # This write was cut short (its rule stopped mid-frame): the stream may end inside a frame,
                # so the shared connection is dropped and dialled again for the other users.
                self._session_scope.cancel()

    async def wait_connected(self) -> None:
        """Return once the client is connected (at once if it is)."""
        while self._ws is None:
            await self._connected.wait()

    async def wait_status(self, status: int) -> None:
        """Return once ``metrics.status`` is ``status`` (CONNECTING, CONNECTED or DISCONNECTED)."""
        while self.metrics.status != status:
            await self._changed.wait()

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        """Keep a connection to the target: dial, serve frames, back off, dial again.

        Started in the supervisor nursery; ``task_status.started()`` is called at once (a client that is still
        connecting is running). Frames are decoded once per subscribed stream and awaited into each
        subscriber's outbox, so a full rule buffer stops reading from the socket (TCP pushes back).

        Returns: This function never returns unless cancelled (``stop``).

        Error handling: every connection problem (refused, TLS, handshake rejected, closed by peer, timeouts)
        is recorded in ``metrics``, logged once per state change, and retried with exponential backoff and
        jitter between ``reconnectMinDelay`` and ``reconnectMaxDelay``. Anything else is a bug and crashes.

        Cancellation: ``stop`` ends the session with a close frame (bounded by ``CLOSE_TIMEOUT``).
        """
        self._ran = True
        try:
            with self._scope:
                task_status.started()
                failures = 0
                while True:
                    self._update(last_try_time=self._clock.now_ms())
                    reason = await self._attempt()
                    if self._scope.cancel_called:
                        break  # stopped: the session ended because we closed it, nothing to report
                    failures = 1 if self.metrics.status == CONNECTED else failures + 1
                    self._lost(reason)
                    await trio.sleep(self._backoff(failures))
        finally:
            self._ws = None
            self._stopped.set()

    async def stop(self) -> None:
        """Cancel the loop and wait until the connection is closed. Idempotent."""
        self._scope.cancel()
        if self._session_scope is not None:
            self._session_scope.cancel()
        if self._ran:  # never started (the nursery refused it): nothing to wait for
            await self._stopped.wait()

    async def _attempt(self) -> str:
        """Dial once and serve until the connection ends; returns why it ended."""
        conf = self.target.conf
        try:
            with trio.fail_after(conf.connect_timeout):
                stream = await dial(self.target.host, self.target.port, self._ssl)
        except trio.TooSlowError:
            return f"connect timed out after {conf.connect_timeout:g}s"
        except _RETRYABLE as exc:
            return describe_failure(exc)
        reason = "connection closed"
        try:
            await self._session(stream)
        except* _RETRYABLE as group:
            reason = describe_failure(leaves(group)[0])
        finally:
            await trio.aclose_forcefully(stream)
        return reason

    async def _session(self, stream: Transport) -> None:
        conf = self.target.conf
        wire: Wire | None = None
        self._close_code = NORMAL_CLOSURE
        try:
            with trio.CancelScope() as self._session_scope:
                if self._scope.cancel_called:
                    self._session_scope.cancel()
                with trio.move_on_after(conf.connect_timeout) as handshake:
                    headers = [(k.encode(), v.encode()) for k, v in conf.request_headers.items()]
                    wire = await client_handshake(
                        stream, self.target.host_header, self.target.resource, headers, conf.max_message_size
                    )
                    if wire is None:
                        raise ConnectAttemptFailed(self._early_eof_reason())
                if wire is None:
                    if handshake.cancelled_caught and not self._scope.cancel_called:
                        raise ConnectAttemptFailed(
                            f"websocket handshake timed out after {conf.connect_timeout:g}s"
                        )
                    return  # stopped during the handshake
                if conf.open_message:
                    # Before anyone may send: subscribe-style feeds expect the open message first.
                    await wire.send_message(conf.open_message)
                self._connected_now(wire)
                async with trio.open_nursery() as inner:
                    if conf.ping_interval > 0:
                        inner.start_soon(self._ping, wire, conf.ping_interval)
                    await self._receive(wire)
        finally:
            self._session_scope = None
            self._ws = None
            if wire is not None:
                # The close handshake outlives a stop() (which cancelled the session), bounded.
                with trio.CancelScope(shield=True), trio.move_on_after(CLOSE_TIMEOUT):
                    try:
                        await wire.close_handshake(self._close_code)
                    except (trio.BrokenResourceError, trio.ClosedResourceError):
                        pass

    def _early_eof_reason(self) -> str:
        reason = "connection closed by the server during the websocket handshake"
        if self._ssl is not None:
            # TLS 1.3 verifies the client certificate after the client's handshake is done, and servers often
            # drop the connection without an alert: this EOF is then the only sign of a rejected certificate.
            reason += " (TLS: the server may have rejected the client certificate)"
        return reason

    async def _ping(self, wire: Wire, interval: float) -> None:
        # Detects half-open connections (peer vanished without a FIN), which would otherwise wait forever.
        while True:
            await trio.sleep(interval)
            pong = wire.pong
            with trio.move_on_after(interval) as waited:
                await wire.ping()  # inside the bound: a socket that takes nothing is a dead peer too
                await pong.wait()
            # While a full rule buffer holds up delivery the reader does not read, so it cannot see the pong:
            # that is backpressure, not a dead peer.
            if waited.cancelled_caught and not self._delivering:
                raise ConnectAttemptFailed(f"no pong within {interval:g}s")

    async def _receive(self, wire: Wire) -> None:
        # Every message completed by one socket read is delivered as one batch (READ_BATCH at most), so the
        # rule's channel is crossed once per read, and a full rule buffer stops the reading (TCP pushes back).
        while True:
            try:
                payloads, close = await wire.receive()
            except MessageTooBig as exc:
                await self._deliver(exc.before)
                self._close_code = MESSAGE_TOO_BIG
                raise
            self._delivering = True
            try:
                for start in range(0, len(payloads), READ_BATCH):
                    await self._deliver(payloads[start : start + READ_BATCH])
            finally:
                self._delivering = False
            if close is not None:
                raise PeerClosed(close.code, close.reason or "")

    def _decode(self, group: _StreamGroup, payloads: list[str | bytes]) -> Batch:
        ts = self._clock.now_ms()
        batch: Batch = []
        for payload in payloads:
            try:
                batch.extend([Event(row, ts, self._meta) for row in group.decoder(payload)])
            except DecodeError as exc:
                batch.append(ErrorItem(f"websocket {self.url}: {exc}"))
            except Exception as exc:  # a faulty decoder must not take the shared connection (and engine) down
                batch.append(ErrorItem(f"websocket {self.url}: decoder failed: {type(exc).__name__}: {exc}"))
        return batch

    async def _deliver(self, payloads: list[str | bytes]) -> None:
        for group in tuple(self._groups.values()):
            batch = self._decode(group, payloads)
            if not batch:
                continue
            subscribers = tuple(group.subscribers)
            last = len(subscribers) - 1
            for index, sub in enumerate(subscribers):
                if sub.outbox is None or sub not in group.subscribers:
                    continue  # left while an earlier subscriber was being served
                try:
                    # Each rule gets its own list (the last one the original): operators may keep what they get.
                    await sub.outbox.send(batch if index == last else list(batch))
                except (trio.BrokenResourceError, trio.ClosedResourceError):
                    continue  # its rule is stopping; it unsubscribes on the way out

    def _backoff(self, failures: int) -> float:
        conf = self.target.conf
        low = max(conf.reconnect_min_delay, MIN_RETRY_DELAY)
        high = max(conf.reconnect_max_delay, low)
        ceiling = min(high, low * 2.0 ** min(failures - 1, 60))
        # "Equal jitter": half fixed, half random, so clients dropped together do not redial in lockstep.
        return self._rng.uniform(max(low, ceiling / 2), ceiling)

    def _connected_now(self, ws: Wire) -> None:
        self._connection_id = str(next(self._ids))
        self._meta = {"path": self.target.path, "connectionId": self._connection_id}
        self._ws = ws
        self._update(status=CONNECTED, last_connected_time=self._clock.now_ms())
        self._connected.set()
        LOGGER.info("websocket client %s connected (connection %s)", self.url, self._connection_id)

    def _lost(self, reason: str) -> None:
        previous = self.metrics.status
        if self._connected.is_set():
            self._connected = trio.Event()
        if previous == DISCONNECTED:
            self._update(last_disconnected_message=reason)  # a failed retry: not a state change, not logged
            return
        self._update(
            status=DISCONNECTED, last_disconnected_time=self._clock.now_ms(), last_disconnected_message=reason
        )
        verb = "disconnected" if previous == CONNECTED else "cannot connect"
        LOGGER.warning("websocket client %s %s: %s; retrying", self.url, verb, reason)

    def _update(self, **changes: Any) -> None:
        self.metrics = attrs.evolve(self.metrics, **changes)
        for sub in self._subscribers:
            _mirror(self.metrics, sub.metrics)
        self._changed.set()
        self._changed = trio.Event()

    def join(self, sub: Subscriber, decoder: Decoder | None) -> None:
        self._subscribers.append(sub)
        _mirror(self.metrics, sub.metrics)
        if sub.stream is not None and decoder is not None and sub.outbox is not None:
            # Subscribers of one stream share its decoder: the first one's is used for all.
            self._groups.setdefault(sub.stream, _StreamGroup(decoder)).subscribers.append(sub)

    def leave(self, sub: Subscriber) -> None:
        self._subscribers.remove(sub)
        sub.metrics.status = CONNECTING
        if sub.stream is None:
            return
        group = self._groups.get(sub.stream)
        if group is not None and sub in group.subscribers:
            group.subscribers.remove(sub)
            if not group.subscribers:
                del self._groups[sub.stream]

    def __repr__(self) -> str:
        status = {CONNECTING: "connecting", CONNECTED: "connected", DISCONNECTED: "disconnected"}
        return f"<WsClient {self.url} {status[self.metrics.status]} subscribers={len(self._subscribers)}>"


def _mirror(source: ConnectionMetrics, dest: ConnectionMetrics) -> None:
    dest.status = source.status
    dest.last_connected_time = source.last_connected_time
    dest.last_disconnected_time = source.last_disconnected_time
    dest.last_disconnected_message = source.last_disconnected_message
    dest.last_try_time = source.last_try_time
