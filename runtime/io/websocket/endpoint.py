"""One URL path of the data server: who is registered on it, who may connect, and each connection's loops.

An ``Endpoint`` exists while at least one rule's source or sink is registered on its path (``DataServer``
adds and removes them). A client's connection is served by ``Endpoint.serve``: the handshake is checked
(``refusal``: connection cap, Origin, bearer token), then one task reads frames and delivers them, decoded once
per stream, to every rule reading the path (``_read``/``_deliver``), and one writes what the path's sinks
broadcast (``_write``). This module is where a client's frame becomes rows: ``_deliver`` calls the stream's
decoder and wraps each row in an ``Event`` with the connection's metadata.
"""

from __future__ import annotations

import hmac
import logging
from collections.abc import Callable
from typing import final
from urllib.parse import parse_qs

import attrs
import trio

from runtime.clock import Clock
from runtime.errors import DecodeError
from runtime.formats.decode import Decoder
from runtime.io.websocket import _hypercorn
from runtime.io.websocket._hypercorn import Frame, Message, Receive, Scope, Send
from runtime.io.websocket.conf import WsConf
from runtime.metrics import ConnectionMetrics
from runtime.model import Batch, ErrorItem, Event, Outbox, Row

GOING_AWAY, POLICY_VIOLATION, MESSAGE_TOO_BIG = 1001, 1008, 1009  # close codes (1008: refused or too slow)
CLOSE_TIMEOUT = 1.0  # bound on sending one close frame during cleanup
OUTBOUND_QUEUE = 256  # sink messages a client may lag behind before it is closed with 1008
READ_BATCH = 64  # frames already queued on a connection that are delivered to the rules as one batch
WRITE_BATCH = 256  # sink frames already queued for a client that go out in one socket write
GATHER_PASSES = 3  # scheduler passes without a new frame after which the reader delivers what it has
GATHER_FAN_OUT = 16  # rules on a path from which one delivery costs enough wake-ups to be worth gathering for

LOGGER = logging.getLogger("oort.websocket.server")


@final
@attrs.define(eq=False)
class Registrant:
    """One rule's source or sink on a path: its clock (event timestamps) and its connection metrics."""

    clock: Clock
    metrics: ConnectionMetrics


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

    __slots__ = ("close_code", "id", "meta", "out_recv", "out_send", "scope")

    def __init__(self, conn_id: str, meta: Row, queue: int) -> None:
        self.id = conn_id
        self.meta = meta
        self.scope = trio.CancelScope()
        self.close_code = GOING_AWAY
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

    async def serve(self, meta: Row, receive: Receive, send: Send) -> None:
        """Serve one accepted handshake (``websocket.connect`` already received) until either side closes.

        ``meta`` is the connection's metadata (``connectionId``, ``remoteAddr``, ``path``, ``query``).
        """
        conn = Connection(str(meta["connectionId"]), meta, self.outbound_queue)
        clock = self.registrants[0].clock  # an endpoint exists only while someone is registered on it
        # Counted before the first await, so concurrent handshakes cannot overshoot maxConnections, and a path
        # removed meanwhile closes this connection (its cancelled scope makes the handler close at once).
        self.connections.add(conn)
        self._set_status("connected", clock.now_ms())
        client_gone, reason = False, ""  # set by _read, or stays False when we close
        try:
            await send({"type": "websocket.accept"})
            with conn.scope:
                async with trio.open_nursery() as nursery:
                    nursery.start_soon(self._write, conn, send)
                    client_gone, reason = await self._read(conn, receive)
                    nursery.cancel_scope.cancel()
            if not client_gone:
                reason = f"closed by server ({conn.close_code})"
        finally:
            self.connections.discard(conn)
            conn.out_send.close()
            conn.out_recv.close()
            self._set_status("disconnected", clock.now_ms(), reason)
            if not client_gone:
                with trio.CancelScope(shield=True), trio.move_on_after(CLOSE_TIMEOUT):
                    try:
                        await send({"type": "websocket.close", "code": conn.close_code})
                    except Exception:  # noqa: BLE001 - the transport may already be gone; nothing to tell
                        pass

    async def _write(self, conn: Connection, send: Send) -> None:
        """Send the sink's frames to the client: the frames queued now and within a few passes
        (``_gather_frames``) go out with one socket write where hypercorn's stream allows it
        (``_hypercorn.frame_writer``), else one ASGI ``send`` per frame."""
        write_many = _hypercorn.frame_writer(send)
        out = conn.out_recv
        try:
            async for first in out:
                frames = [first]
                if write_many is not None:
                    await _gather_frames(out, frames)
                    try:
                        if await write_many(frames):
                            continue
                    except (AttributeError, TypeError, ValueError):
                        # hypercorn's internals are not what the fast path expects: one send per frame from now.
                        LOGGER.warning("websocket %s: batched writes unavailable", conn.id, exc_info=True)
                        write_many = None
                for is_text, frame in frames:
                    await send({"type": "websocket.send", "text" if is_text else "bytes": frame})
        except (trio.ClosedResourceError, trio.BrokenResourceError, trio.EndOfChannel):
            pass  # closed by the handler's cleanup
        except Exception:  # noqa: BLE001 - the peer went away mid-send: the reader sees the disconnect
            LOGGER.debug("websocket %s: send failed", conn.id, exc_info=True)

    async def _read(self, conn: Connection, receive: Receive) -> tuple[bool, str]:
        """Read frames until the client leaves (True, reason) or the connection is closed by us (False, …).

        Frames that are already queued when one arrives are taken with it (up to ``READ_BATCH``) and delivered
        as one batch: the rule's channel is crossed once per batch, not once per frame. hypercorn hands over one
        frame per scheduler pass (its queue ``send`` yields), so every delivery would wake every rule on the path
        once per pass. Where that is many rules (``GATHER_FAN_OUT``), the reader also waits while frames keep
        coming, up to ``GATHER_PASSES`` passes without a new one, before delivering: a busy engine then delivers
        fewer, larger batches, and an idle one delivers a lone frame after a few empty passes (microseconds).
        Paths with few rules keep "what is already queued" batches, so a rule's bounded buffer (counted in
        batches) stays as small in rows as before.
        """
        limit = self.conf.max_message_size
        drain = _hypercorn.nowait(receive)
        payloads: list[bytes | str] = []
        while True:
            message: Message | None = await receive()
            while message is not None:
                if message["type"] == "websocket.disconnect":
                    if payloads:
                        await self._deliver(conn, payloads)
                    return True, f"client disconnected ({message.get('code', 1005)})"
                payload: bytes | str | None = message.get("bytes")
                if payload is None:
                    payload = message.get("text") or ""
                if limit and _too_big(payload, limit):
                    if payloads:
                        await self._deliver(conn, payloads)
                    conn.close_code = MESSAGE_TOO_BIG
                    return False, "message too big"
                payloads.append(payload)
                if drain is None or len(payloads) >= READ_BATCH:
                    break
                if self.fan_out < GATHER_FAN_OUT:
                    try:
                        message = drain()
                    except trio.WouldBlock:
                        break
                else:
                    message = await _gather(drain)
            await self._deliver(conn, payloads)
            payloads = []

    async def _deliver(self, conn: Connection, payloads: list[bytes | str]) -> None:
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


async def _gather(drain: Callable[[], Message]) -> Message | None:
    """The next frame hypercorn queues within ``GATHER_PASSES`` scheduler passes, or None when none comes."""
    for _ in range(GATHER_PASSES):
        try:
            return drain()
        except trio.WouldBlock:
            await trio.lowlevel.checkpoint()
    try:
        return drain()
    except trio.WouldBlock:
        return None


def _too_big(payload: bytes | str, limit: int) -> bool:
    # A str's UTF-8 size is at most 4 bytes per character: encode only when that bound exceeds the cap.
    if isinstance(payload, bytes) or len(payload) > limit:
        return len(payload) > limit
    return len(payload) * 4 > limit and len(payload.encode()) > limit
