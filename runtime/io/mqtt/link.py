"""paho-mqtt on Trio without threads: paho speaks MQTT, Trio owns the socket.

paho-mqtt's client is a protocol engine with an "external event loop" mode (``loop_read``/``loop_write``/
``loop_misc``), but its ``connect`` opens the TCP connection and does the TLS handshake itself, blocking. Here
Trio dials (``trio.open_tcp_stream`` and ``trio.SSLStream``, cancellable and bounded), and paho gets a ``Pipe``
in place of its socket: ``recv`` hands out bytes Trio read, ``send`` queues bytes for Trio to write. paho's
``_create_socket`` is the one private method overridden (``Link``): it returns the pipe of the current attempt.

All paho calls happen on the Trio thread, so its callbacks run synchronously inside ``loop_read`` and friends.
"""

from __future__ import annotations

from typing import Any, final

import paho.mqtt.client as paho
import trio


@final
class Pipe:
    """The socket paho reads and writes: bytes from Trio in, bytes for Trio out (non-blocking semantics).

    ``recv`` raises ``BlockingIOError`` when nothing is buffered (paho's "try again later") and returns ``b""``
    after ``feed_eof`` (paho's "connection lost").
    """

    __slots__ = ("_buf", "_eof", "_out", "_pos", "closed", "flushed", "wrote")

    def __init__(self) -> None:
        self._buf = b""
        self._pos = 0
        self._eof = False
        self._out = bytearray()
        self.closed = False
        self.wrote = trio.Event()  # set when paho queued bytes; the writer task replaces it after flushing
        self.flushed = trio.Event()  # set (and replaced) by the writer task after each write to the network

    @property
    def readable(self) -> bool:
        """Buffered input paho has not consumed yet (or the end of the stream)."""
        return self._pos < len(self._buf) or self._eof

    @property
    def pending_out(self) -> int:
        return len(self._out)

    def feed(self, data: bytes) -> None:
        """Hand paho bytes read from the network."""
        if self._pos < len(self._buf):
            self._buf = self._buf[self._pos :] + data
        else:
            self._buf = data
        self._pos = 0

    def feed_eof(self) -> None:
        self._eof = True

    def take_out(self) -> bytes:
        """Everything paho queued for the network since the last call."""
        data = bytes(self._out)
        self._out.clear()
        return data

    # The socket interface paho uses (paho.mqtt.client.SocketLike).

    def recv(self, size: int) -> bytes:
        pos = self._pos
        if pos >= len(self._buf):
            if self._eof or self.closed:
                return b""
            raise BlockingIOError
        data = self._buf[pos : pos + size]
        self._pos = pos + len(data)
        return data

    def send(self, data: bytes | bytearray) -> int:
        if self.closed:
            raise BrokenPipeError("connection closed")
        self._out += data
        self.wrote.set()
        return len(data)

    def close(self) -> None:
        self.closed = True
        self.wrote.set()  # wakes the writer, which then ends the session
        self.flushed.set()

    def fileno(self) -> int:
        return -1

    def setblocking(self, flag: bool) -> None:
        pass


class Link(paho.Client):
    """A paho client whose connection attempts use the ``Pipe`` set in ``next_pipe`` instead of a socket."""

    next_pipe: Pipe | None = None

    def _create_socket(self) -> Any:  # paho's own dialling (blocking) is replaced by Trio's
        pipe, self.next_pipe = self.next_pipe, None
        if pipe is None:
            raise ConnectionError("no transport prepared for this connection attempt")
        return pipe
