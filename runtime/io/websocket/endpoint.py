"""One URL path of the data server: who is registered on it, who may connect, and each connection's loops.

An ``Endpoint`` exists while at least one rule's source or sink is registered on its path (``DataServer``
adds and removes them). A client's upgrade request is checked by ``refusal`` (connection cap, Origin, bearer
token); an accepted connection is served by ``Endpoint.serve``: its task reads the socket and delivers every
message completed by a read, decoded once per stream, to every rule reading the path (``_read``/``_deliver``),
and a second task writes what the path's sinks broadcast (``_write``). This module is where a client's frame
becomes rows: ``_deliver`` calls the stream's decoder and wraps each row in an ``Event`` with the connection's
metadata.
"""

from __future__ import annotations

import hmac
import logging
from collections.abc import MutableMapping, Sequence
from typing import Any, final
from urllib.parse import parse_qs

import attrs
import trio

from runtime.clock import Clock
from runtime.errors import DecodeError, MessageTooBig, PeerTooSlow
from runtime.formats.decode import Decoder
from runtime.io.websocket.conf import WsConf
from runtime.io.websocket.wire import Frame, Wire
from runtime.metrics import ConnectionMetrics
from runtime.model import Batch, ErrorItem, Event, Outbox, Row

GOING_AWAY, POLICY_VIOLATION, MESSAGE_TOO_BIG = 1001, 1008, 1009  # close codes (1008: refused or too slow)
PING_TIMEOUT = 1011  # a client that answered no ping within the ping interval is closed as dead
CLOSE_TIMEOUT = 1.0  # bound on sending one close frame during cleanup
OUTBOUND_QUEUE = 256  # sink messages a client may lag behind before it is closed with 1008
READ_BATCH = 64  # messages delivered to the rules as one batch at most (a read may complete more)
WRITE_BATCH = 256  # sink frames already queued for a client that go out in one socket write
GATHER_PASSES = 3  # scheduler passes the writer waits for more sink frames before it writes

Scope = MutableMapping[str, Any]  # the upgrade request: ``headers`` (bytes pairs), ``query_string`` (bytes)

LOGGER = logging.getLogger("oort.websocket.server")


@final
@attrs.define(eq=False)
class Registrant:
    """One rule's source or sink on a path: its clock (event timestamps) and its connection metrics."""

    clock: Clock
    metrics: ConnectionMetrics
    owner: str = ""  # "rule r1 (stream a)", for messages naming who holds a path


@final
@attrs.define(eq=False)
class Subscriber:
    """One rule reading a stream on a path."""

    outbox: Outbox
    registrant: Registrant
    pending: set[trio.CancelScope] = attrs.Factory(set)  # sends blocked on this rule, cancelled on leave
    active: bool = True  # False once unsubscribed (an O(1) check, where many rules share a stream)


@final
@attrs.define(eq=False)
class StreamGroup:
    """The rules reading one stream on a path: they share one decode per frame."""

    decoder: Decoder
    subscribers: list[Subscriber] = attrs.Factory(list)


@final
class Connection:
    """One accepted client: its metadata (``meta`` of its events), close request and outgoing queue."""

    __slots__ = ("close_code", "id", "meta", "out_recv", "out_send", "scope", "stalls")

    def __init__(self, conn_id: str, meta: Row, queue: int) -> None:
        self.id = conn_id
        self.meta = meta
        self.scope = trio.CancelScope()
        self.close_code = GOING_AWAY
        # Times the reader waited on a full rule buffer (it reads no pong then: the client is not dead).
        self.stalls = 0
        self.out_send, self.out_recv = trio.open_memory_channel[Frame](queue)

    def close(self, code: int) -> None:
        """Ask the connection's own handler to close with ``code`` (it alone may call ASGI send)."""
        self.close_code = code
        self.scope.cancel()


@final
@attrs.define(eq=False)
class Endpoint:
    """One URL path: its limits (from the first registrant's conf group), streams, sinks and live clients."""

    path: str
    conf: WsConf
    outbound_queue: int = OUTBOUND_QUEUE
    streams: dict[str, StreamGroup] = attrs.Factory(dict)
    sinks: int = 0
    registrants: list[Registrant] = attrs.Factory(list)  # every source and sink, for connection metrics
    connections: set[Connection] = attrs.Factory(set)

    @property
    def fan_out(self) -> int:
        """Rules reading this path (every stream group's subscribers)."""
        return sum(len(group.subscribers) for group in self.streams.values())

    @property
    def users(self) -> int:
        return self.sinks + self.fan_out

    def refusal(self, scope: Scope) -> str | None:
        """Why a handshake is refused (answered with HTTP 403), or None to accept it."""
        conf = self.conf
        if conf.max_connections and len(self.connections) >= conf.max_connections:
            return f"connection cap {conf.max_connections} reached"
        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope.get("headers", [])}
        if conf.allowed_origins and headers.get("origin", "") not in conf.allowed_origins:
            return "origin not allowed"
        if conf.token:
            offered = headers.get("authorization", "")
            offered = offered[7:] if offered.lower().startswith("bearer ") else ""
            if not offered:
                query = parse_qs(scope.get("query_string", b"").decode("latin-1"))
                offered = (query.get("token") or [""])[0]
            if not hmac.compare_digest(offered.encode(), conf.token.encode()):
                return "missing or wrong token"
        return None

    def broadcast(self, is_text: bool, frame: bytes | str) -> int:
        """Queue one frame for every connected client; returns how many slow clients were closed (1008).

        Never blocks: a client whose queue is full is closed instead of holding the sink up.
        """
        slow = 0
        for conn in list(self.connections):
            try:
                conn.out_send.send_nowait((is_text, frame))
            except trio.WouldBlock:
                slow += 1
                conn.close(POLICY_VIOLATION)
            except (trio.BrokenResourceError, trio.ClosedResourceError):
                pass  # its handler is finishing
        return slow

    def close_all(self, code: int) -> None:
        """Ask every connected client's handler to close with ``code``."""
        for conn in list(self.connections):
            conn.close(code)

    def _set_status(self, event: str, now_ms: int, message: str = "") -> None:
        # Status 1 while at least one client is connected, 0 ("waiting") otherwise: a server path is never
        # "disconnected" in the failure sense, so -1 is not used.
        for m in (r.metrics for r in self.registrants):
            m.status = 1 if self.connections else 0
            if event == "connected":
                m.last_connected_time = now_ms
            else:
                m.last_disconnected_time = now_ms
                m.last_disconnected_message = message

    async def serve(self, meta: Row, wire: Wire) -> None:
        """Accept an upgrade this endpoint did not refuse and serve it until either side closes.

        ``meta`` is the connection's metadata (``connectionId``, ``remoteAddr``, ``path``, ``query``).
        """
        conn = Connection(str(meta["connectionId"]), meta, self.outbound_queue)
        clock = self.registrants[0].clock  # an endpoint exists only while someone is registered on it
        # Counted before the first await, so concurrent handshakes cannot overshoot maxConnections, and a path
        # removed meanwhile closes this connection (its cancelled scope makes the handler close at once).
        self.connections.add(conn)
        self._set_status("connected", clock.now_ms())
        LOGGER.debug("websocket %s: client %s connected (%s)", self.path, meta["remoteAddr"], conn.id)
        client_gone, reason = False, ""  # set by _read, or stays False when we close
        try:
            await wire.accept()
            async with trio.open_nursery() as nursery:
                writer, pinger = trio.CancelScope(), trio.CancelScope()
                nursery.start_soon(self._write, conn, wire, writer)
                if self.conf.ping_interval > 0:
                    nursery.start_soon(_ping, wire, self.conf.ping_interval, pinger, conn)
                with conn.scope:
                    client_gone, reason = await self._read(conn, wire)
                # Reading is over. The writer ends after the write in flight (a frame is never cut short while
                # the socket takes it, so a close frame can follow), or is cut off after CLOSE_TIMEOUT.
                conn.out_send.close()
                writer.deadline = trio.current_time() + CLOSE_TIMEOUT
                pinger.cancel()
            if not client_gone:
                reason = (
                    "no answer to ping (1011)"
                    if conn.close_code == PING_TIMEOUT
                    else f"closed by server ({conn.close_code})"
                )
        except (trio.BrokenResourceError, trio.ClosedResourceError):
            client_gone, reason = True, "client disconnected (1006)"
        finally:
            self.connections.discard(conn)
            conn.out_send.close()
            conn.out_recv.close()
            self._set_status("disconnected", clock.now_ms(), reason)
            LOGGER.debug("websocket %s: client %s left: %s", self.path, meta["remoteAddr"], reason)
            if not client_gone:
                # The close handshake: our close frame, then the client's answer (bounded), so the connection
                # is not reset under data the client has not read yet (it would lose the close frame too).
                with trio.CancelScope(shield=True), trio.move_on_after(CLOSE_TIMEOUT):
                    try:
                        await wire.close_handshake(conn.close_code)
                    except (trio.BrokenResourceError, trio.ClosedResourceError):
                        pass  # the transport is already gone; nothing to tell

    async def _write(self, conn: Connection, wire: Wire, scope: trio.CancelScope) -> None:
        """Send the sink's frames to the client: the frames queued now and within a few passes
        (``_gather_frames``) go out with one socket write; once the connection is closing, nothing more."""
        out = conn.out_recv
        with scope:
            try:
                async for first in out:
                    frames = [first]
                    await _gather_frames(out, frames)
                    if conn.scope.cancel_called:
                        return  # closing (slow client, path removed): the close frame follows
                    await wire.send_frames(frames)
            except (trio.ClosedResourceError, trio.BrokenResourceError, trio.EndOfChannel):
                pass  # closed by the handler's cleanup, or the peer went away: the reader sees the disconnect

    async def _read(self, conn: Connection, wire: Wire) -> tuple[bool, str]:
        """Read until the client leaves (True, reason) or the connection is closed by us (False, …).

        Every message completed by one socket read is delivered as one batch (``READ_BATCH`` at most), so the
        rule's channel is crossed once per read, not once per frame, and a full rule buffer stops the reading.
        """
        while True:
            try:
                payloads, close = await wire.receive()
            except MessageTooBig as exc:
                if exc.before:
                    await self._deliver(conn, exc.before)
                await self._report(conn, str(exc))
                conn.close_code = MESSAGE_TOO_BIG
                return False, "message too big"
            except PeerTooSlow as exc:
                await self._report(conn, f"connection closed: {exc}")
                conn.close_code = exc.code
                return False, str(exc)
            except (trio.BrokenResourceError, trio.ClosedResourceError):
                return True, "client disconnected (1006)"
            for start in range(0, len(payloads), READ_BATCH):
                await self._deliver(conn, payloads[start : start + READ_BATCH])
            wire.delivered()
            if wire.violation is not None:  # counted like a frame that does not decode; the wire closed
                await self._report(conn, f"{wire.violation}: connection closed")
                return True, wire.violation
            if close is not None:
                return True, f"client disconnected ({close.code})"

    async def _deliver(self, conn: Connection, payloads: Sequence[bytes | str]) -> None:
        """Decode ``payloads`` once per stream and hand the batch to every rule reading that stream.

        A frame that cannot be decoded becomes one ``ErrorItem`` in its place; the frames around it flow.
        """
        for group in list(self.streams.values()):
            subscribers = tuple(group.subscribers)
            if not subscribers:
                continue
            batch: Batch = []
            ts = subscribers[0].registrant.clock.now_ms()
            meta = conn.meta
            decoder = group.decoder
            for payload in payloads:
                try:
                    rows = decoder(payload)
                except (DecodeError, UnicodeDecodeError) as exc:
                    batch.append(ErrorItem(f"websocket {self.path}: {exc}"))
                else:
                    batch.extend([Event(row, ts, meta) for row in rows])
            await self._hand_over(conn, subscribers, batch)

    async def _report(self, conn: Connection, why: str) -> None:
        """Tell every rule on the path, as an error item, what the client sent that closed its connection."""
        for group in list(self.streams.values()):
            subscribers = tuple(group.subscribers)
            if subscribers:
                await self._hand_over(conn, subscribers, [ErrorItem(f"websocket {self.path}: {why}")])

    async def _hand_over(self, conn: Connection, subscribers: tuple[Subscriber, ...], batch: Batch) -> None:
        last = len(subscribers) - 1
        for index, sub in enumerate(subscribers):
            if not sub.active:
                continue  # unsubscribed while an earlier rule's send blocked
            # Each rule gets its own list (the last one the original): operators may keep what they get.
            items = batch if index == last else list(batch)
            outbox = sub.outbox
            if isinstance(outbox, trio.MemorySendChannel):
                try:
                    outbox.send_nowait(items)  # the common case: room in the rule's buffer
                    continue
                except trio.WouldBlock:
                    pass
                except (trio.BrokenResourceError, trio.ClosedResourceError):
                    continue  # the rule is stopping
            # The per-send scope lets an unsubscribing rule free a reader blocked on its full buffer.
            with trio.CancelScope() as cs:
                sub.pending.add(cs)
                conn.stalls += 1
                try:
                    await outbox.send(items)
                except (trio.BrokenResourceError, trio.ClosedResourceError):
                    pass  # the rule is stopping
                finally:
                    sub.pending.discard(cs)


async def _gather_frames(out: trio.MemoryReceiveChannel[Frame], frames: list[Frame]) -> None:
    """Add to ``frames`` the sink frames queued now and within ``GATHER_PASSES`` passes (up to ``WRITE_BATCH``).

    A socket write costs tens of microseconds; a rule emitting a burst of rows queues them over several passes,
    so waiting those few passes lets one write carry the burst. An idle client waits a few passes (microseconds).
    """
    quiet = 0
    while len(frames) < WRITE_BATCH:
        try:
            frames.append(out.receive_nowait())
            quiet = 0
        except trio.WouldBlock:
            if quiet >= GATHER_PASSES:
                return
            quiet += 1
            await trio.lowlevel.checkpoint()


async def _ping(wire: Wire, interval: float, scope: trio.CancelScope, conn: Connection) -> None:
    """Ping the client every ``interval`` seconds (keeps idle connections through proxies and NATs); a client
    that sends no pong before the next ping is due is dead (its connection slot is freed, close 1011), unless
    our reader stalled on a full rule buffer meanwhile (then the pong is simply not read yet)."""
    with scope:
        while True:
            await trio.sleep(interval)
            pong, stalls = wire.pong, conn.stalls
            try:
                await wire.ping()
            except (trio.BrokenResourceError, trio.ClosedResourceError):
                return  # the reader sees the disconnect
            with trio.move_on_after(interval):
                await pong.wait()
            if not pong.is_set() and conn.stalls == stalls:
                conn.close(PING_TIMEOUT)
                return
