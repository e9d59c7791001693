"""Websocket on wsproto directly, for the data server and the client connections: one socket read becomes one
batch of messages.

hypercorn (server) and trio-websocket (client) hand over one message per scheduler pass through a queue, so
every frame cost a task switch before it reached a rule. Here the connection's own task reads the socket and
feeds wsproto, and every message completed by that read is handed over at once; outgoing frames leave with one
socket write. The HTTP upgrade is parsed by wsproto (h11 underneath); the data server hands other requests to
the HTTP push code before they get here (one that still arrives gets a 404).
"""

from __future__ import annotations

import math
import struct
from typing import Any, cast, final

import h11
import trio
from wsproto import ConnectionType, WSConnection
from wsproto.connection import ConnectionState
from wsproto.events import (
    AcceptConnection,
    BytesMessage,
    CloseConnection,
    Event,
    Message,
    Ping,
    Pong,
    RejectConnection,
    Request,
    TextMessage,
)
from wsproto.utilities import LocalProtocolError, RemoteProtocolError

from runtime import heap
from runtime.errors import BadHandshake, HandshakeRejected, MessageTooBig, PeerTooSlow
from runtime.heap import ByteBudget

Frame = tuple[bool, bytes | str]  # (is_text, payload) of one outgoing websocket message (text: UTF-8 bytes)
TEXT, BINARY = 0x1, 0x2  # frame opcodes

READ_SIZE = 65536  # bytes asked of the socket per read
HANDSHAKE_TIMEOUT = 10.0  # seconds a client has to send a complete upgrade request (slow-loris bound)
HARD_MAX_MESSAGE = 16 * 1024 * 1024  # the cap when a path sets none (maxMessageSize = 0)
BUDGET_WAIT = 10.0  # seconds a connection may wait for the inbound byte budget before it is closed (1013)
PARTIAL_IDLE = 30.0  # seconds a half-received message may sit without a byte more before it is dropped (1008)
# Seconds from a message's first byte to its last (1008 after): a client trickling a byte every PARTIAL_IDLE
# would otherwise hold its share of the inbound budget for ever. 16 MiB in this time is ~140 KB/s.
MESSAGE_DEADLINE = 120.0


async def handshake(stream: trio.abc.Stream, initial: bytes = b"") -> tuple[WSConnection, Request] | None:
    """Read the HTTP upgrade request, starting with ``initial`` (what the data server already read of it); None
    when the client left, was too slow or sent no websocket request (answered with 404 or 400 then)."""
    ws = WSConnection(ConnectionType.SERVER)
    with trio.move_on_after(HANDSHAKE_TIMEOUT):
        seen = b""
        data = initial
        while True:
            if not data:
                data = bytes(await stream.receive_some(READ_SIZE))
                if not data:
                    return None
            seen = (seen + data)[:READ_SIZE]  # the request head, to tell a plain request from a bad upgrade
            try:
                ws.receive_data(data)
                # Lazily: anything after the request stays buffered in wsproto for the first receive().
                for event in ws.events():
                    if isinstance(event, Request):
                        return ws, event
            except (RemoteProtocolError, UnicodeError) as exc:
                if b"\nupgrade:" not in seen.lower():
                    await _plain_reply(stream, 404)  # not a websocket request at all
                else:
                    await _reject_bad_upgrade(stream, ws, exc)
                return None
            data = b""
    return None


async def _reject_bad_upgrade(stream: trio.abc.Stream, ws: WSConnection, exc: Exception) -> None:
    # wsproto suggests the answer (400, or 426 with the versions it speaks); anything else gets a plain 400.
    hint = getattr(exc, "event_hint", None)
    if isinstance(hint, RejectConnection):
        try:
            headers = [*hint.headers, (b"content-length", b"0"), (b"connection", b"close")]
            reply = ws.send(RejectConnection(status_code=hint.status_code, headers=headers))
        except Exception:  # noqa: BLE001 - the connection's state does not allow it: fall back below
            pass
        else:
            try:
                await stream.send_all(reply)
            except (trio.BrokenResourceError, trio.ClosedResourceError):
                pass
            return
    await _plain_reply(stream, 400)


async def reject(stream: trio.abc.Stream, ws: WSConnection, status: int) -> None:
    """Answer the upgrade with an HTTP error (403: refused) and no body."""
    headers = [(b"content-length", b"0"), (b"connection", b"close")]
    await stream.send_all(ws.send(RejectConnection(status_code=status, headers=headers)))


async def _plain_reply(stream: trio.abc.Stream, status: int) -> None:
    body = b"websocket endpoints only"
    reason = b"Not Found" if status == 404 else b"Bad Request"
    head = b"HTTP/1.1 %d %s\r\ncontent-length: %d\r\nconnection: close\r\n\r\n" % (status, reason, len(body))
    try:
        await stream.send_all(head + body)
    except (trio.BrokenResourceError, trio.ClosedResourceError):
        pass


async def client_handshake(
    stream: trio.abc.Stream, host: str, target: str, headers: list[tuple[bytes, bytes]], max_message: int
) -> Wire | None:
    """Send the upgrade request and read the answer: the open ``Wire``, or None when the server closed the
    connection first.

    Raises:
      HandshakeRejected: the server answered with an HTTP status instead of 101.
      trio.BrokenResourceError: the transport failed (a TLS alert is its ``__cause__``).
    """
    ws = WSConnection(ConnectionType.CLIENT)
    try:
        request = ws.send(Request(host=host, target=target, extra_headers=headers))
    except (LocalProtocolError, h11.ProtocolError, UnicodeError) as exc:
        raise BadHandshake(f"cannot send the websocket upgrade request: {exc}") from None
    await stream.send_all(request)
    while True:
        data = bytes(await stream.receive_some(READ_SIZE))
        if not data:
            return None
        try:
            ws.receive_data(data)
            # Lazily: frames that came with the 101 stay buffered in wsproto for the first receive().
            for event in ws.events():
                if isinstance(event, AcceptConnection):
                    return Wire(stream, ws, max_message, client=True)
                if isinstance(event, RejectConnection):
                    raise HandshakeRejected(event.status_code)
        except (RemoteProtocolError, h11.ProtocolError, UnicodeError) as exc:
            raise BadHandshake(f"bad websocket handshake answer: {exc}") from None


@final
class Wire:
    """One open websocket (server or client side): batched reads, batched writes, pings, closing.

    The reading task calls ``receive``; any task may call ``send_frames``, ``send_message``, ``ping`` and
    ``close`` (writes are serialised by a lock, as a trio stream allows one sender at a time).

    Args:
      budget: the server's inbound byte budget (see ``runtime/heap.py``); None for a client connection.

    Attributes:
      pong: set when a pong arrives (a new event after each), for a pinging side that checks its peer.
      violation: why we closed the connection for what the peer sent (bad UTF-8, a protocol error), or None.
    """

    def __init__(
        self,
        stream: trio.abc.Stream,
        ws: WSConnection,
        max_message: int,
        *,
        client: bool = False,
        budget: ByteBudget | None = None,
    ) -> None:
        self._stream = stream
        self._ws = ws
        self._client = client  # a client masks its frames (wsproto does it); a server frames by hand
        self.pong = trio.Event()
        self._lock = trio.Lock()
        self._max = max_message or HARD_MAX_MESSAGE
        self._parts: list[bytes | str] = []  # the fragments of the message being received
        self._size = 0
        self._message_started = 0.0  # trio time of the first byte of the message being received
        self._largest = 0  # the largest message received: its memory is given back when the connection ends
        self._budget = budget
        self._held = 0  # bytes reserved from the budget: the message being received, undelivered ones, a read
        self._done_bytes = 0  # size of the complete messages the last ``receive`` returned
        self.violation: str | None = None
        self._broken = False  # a write was cut short: the stream may hold half a frame
        # The upgrade completed (a client's Wire exists only once the 101 came; a server's after ``accept``).
        self.accepted = client

    @property
    def broken(self) -> bool:
        """A write was cut short: the connection cannot carry another frame and must be dropped."""
        return self._broken

    async def accept(self) -> None:
        """Complete the upgrade (HTTP 101)."""
        await self._send(self._ws.send(AcceptConnection()))
        self.accepted = True

    async def receive(self) -> tuple[list[bytes | str], CloseConnection | None]:
        """The messages completed by the next socket read(s), and the peer's close (None while it is there;
        code 1006 when the connection ended without a close frame).

        Answers pings and the peer's close frame itself.

        With a budget, the bytes returned stay reserved until ``delivered`` is called.

        Raises:
          MessageTooBig: a message passed the cap (the caller closes with 1009).
          PeerTooSlow: no budget came within ``BUDGET_WAIT`` (1013), or a half-received message stalled for
            ``PARTIAL_IDLE`` or took longer than ``MESSAGE_DEADLINE`` in all (1008).
          trio.BrokenResourceError: the connection broke (TLS or TCP).
        """
        ws = self._ws
        data: bytes | None = b"-"  # nothing read yet: first look at what the handshake's read left buffered
        self._done_bytes = 0
        while True:
            done: list[bytes | str] = []
            left: CloseConnection | None = None
            replies: list[Event] = []
            for event in ws.events():
                if isinstance(event, Message):
                    self._add(event, done)
                elif isinstance(event, Ping):
                    replies.append(event.response())
                elif isinstance(event, Pong):
                    self.pong.set()
                    self.pong = trio.Event()
                elif isinstance(event, CloseConnection):
                    left = event
                    if ws.state is ConnectionState.REMOTE_CLOSING:
                        replies.append(event.response())  # the peer closed: answer its close
                    elif ws.state is ConnectionState.OPEN:
                        # wsproto could not parse what came (1002) or it was not UTF-8 (1007): we close.
                        replies.append(CloseConnection(code=event.code, reason=event.reason))
                        self.violation = f"{event.reason or 'protocol error'} ({event.code})"
            if replies:
                await self._send_events(replies)
            if not data and left is None:
                left = CloseConnection(code=1006)
            if done or left is not None:
                self._hold(self._size + self._done_bytes)
                return done, left
            data = await self._read_more()
            ws.receive_data(data or None)

    async def _read_more(self) -> bytes:
        budget = self._budget
        if budget is None:
            return bytes(await self._stream.receive_some(READ_SIZE))
        holding = self._size + self._done_bytes
        more = holding + READ_SIZE - self._held
        if holding and more > 0:
            # Assembling a message: room for one more read first (this is where backpressure applies).
            with trio.move_on_after(BUDGET_WAIT) as waited:
                await budget.acquire(more, holding=self._held)
                self._held += more
            if waited.cancelled_caught:
                raise PeerTooSlow(1013, "the server is busy: no room to read more (1013)")
        deadline = self._message_started + MESSAGE_DEADLINE
        with trio.move_on_after(
            min(PARTIAL_IDLE, deadline - trio.current_time()) if self._size else math.inf
        ):
            data = bytes(await self._stream.receive_some(READ_SIZE))
            if not holding:
                # An idle connection reserves nothing while it waits (a thousand of them would otherwise
                # fill the budget doing nothing); what it read is charged now, without waiting.
                self._hold(len(data))
            return data
        if trio.current_time() >= deadline:
            raise PeerTooSlow(1008, f"a message took more than {MESSAGE_DEADLINE:g} s to arrive (1008)")
        raise PeerTooSlow(1008, f"a message stalled half-received for {PARTIAL_IDLE:g} s (1008)")

    def _hold(self, amount: int) -> None:
        """Hold exactly ``amount`` bytes of the budget, giving back or taking (without waiting) the difference."""
        if self._budget is not None and amount != self._held:
            self._budget.release(self._held - amount)  # a negative release takes
            self._held = amount

    def delivered(self) -> None:
        """The messages the last ``receive`` returned were handed over: give their bytes back to the budget."""
        if self._held > self._size:
            self._hold(self._size)
        self._done_bytes = 0

    def release(self) -> None:
        """The connection is over: give back all it holds (the half-received message is dropped), and the
        memory it used to the system when that was much."""
        held, self._held = self._held, 0
        self._parts = []
        if self._budget is not None and held:
            self._budget.release(held)
        heap.trim(max(held, self._largest))

    def _add(self, event: Message[Any], done: list[bytes | str]) -> None:
        chunk: bytes | str = event.data
        if isinstance(chunk, bytearray):
            chunk = bytes(chunk)
        # The cap is in bytes: a str counts its UTF-8 size (encoded only when it is not plain ASCII).
        size = len(chunk) if isinstance(chunk, bytes) or chunk.isascii() else len(chunk.encode())
        if not self._size:
            self._message_started = trio.current_time()
        self._size += size
        if self._size > self._max:
            raise MessageTooBig(done, self._max)
        if event.message_finished:
            self._done_bytes += self._size
            self._largest = max(self._largest, self._size)
        if event.message_finished and not self._parts:
            done.append(chunk)  # the common case: a message in one frame
        else:
            self._parts.append(chunk)
            if event.message_finished:
                # A message's fragments are all str (text) or all bytes (binary).
                joined: bytes | str = (
                    "".join(cast(list[str], self._parts))
                    if isinstance(event, TextMessage)
                    else b"".join(cast(list[bytes], self._parts))
                )
                done.append(joined)
                self._parts = []
        if event.message_finished:
            self._size = 0

    async def send_frames(self, frames: list[Frame]) -> None:
        """Send messages with one socket write; nothing once the connection is closing.

        Each message is one unmasked, unfragmented frame (RFC 6455 5.2; no extension is ever negotiated):
        text frames from already encoded UTF-8 bytes go out as they are, never decoded and encoded again.
        """
        if self._ws.state is not ConnectionState.OPEN:
            return
        if self._client:
            await self._send_events([_message(frame) for _, frame in frames])  # wsproto masks them
            return
        parts: list[bytes] = []
        for is_text, frame in frames:
            payload = frame.encode() if isinstance(frame, str) else frame
            parts.append(_header(TEXT if is_text else BINARY, len(payload)))
            parts.append(payload)
        await self._send(b"".join(parts))

    async def send_message(self, message: bytes | str) -> None:
        """Send one message: text for ``str``, binary for ``bytes``.

        Raises:
          trio.BrokenResourceError: the connection is closing or broken.
        """
        if self._ws.state is not ConnectionState.OPEN:
            raise trio.BrokenResourceError("the websocket is closing")
        if self._client:
            await self._send_events([_message(message)])
        else:
            await self.send_frames([(isinstance(message, str), message)])

    async def close_handshake(self, code: int) -> None:
        """Send a close frame and read until the peer's answers it or the connection ends (the caller bounds
        the wait); what else arrives meanwhile is dropped. Nothing to do on a broken connection."""
        if self._broken or not self.accepted:
            return
        await self.close(code)
        while self._ws.state is not ConnectionState.CLOSED:
            data = bytes(await self._stream.receive_some(READ_SIZE))
            self._ws.receive_data(data or None)
            for _ in self._ws.events():
                pass
            if not data:
                return

    async def ping(self) -> None:
        await self._send_events([Ping()])

    async def close(self, code: int) -> None:
        """Send a close frame with ``code`` (when the connection is still open and no write was cut short)."""
        if self._ws.state is ConnectionState.OPEN and self.accepted and not self._broken:
            await self._send_events([CloseConnection(code=code)])

    async def _send_events(self, events: list[Event]) -> None:
        try:
            data = b"".join(self._ws.send(event) for event in events)
        except LocalProtocolError:
            return
        await self._send(data)

    async def _send(self, data: bytes) -> None:
        async with self._lock:
            if self._broken:
                raise trio.BrokenResourceError("an earlier write was cut short")
            try:
                await self._stream.send_all(data)
            except BaseException:
                self._broken = True  # cancelled or failed part way: what went out may end mid-frame
                raise


def _message(data: bytes | str) -> Event:
    return TextMessage(data=data) if isinstance(data, str) else BytesMessage(data=data)


def _header(opcode: int, size: int) -> bytes:
    """The header of a final, unmasked server frame carrying ``size`` payload bytes."""
    first = 0x80 | opcode
    if size < 126:
        return bytes((first, size))
    if size < 1 << 16:
        return struct.pack("!BBH", first, 126, size)
    return struct.pack("!BBQ", first, 127, size)
