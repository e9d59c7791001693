"""A minimal websocket (RFC 6455) client and server over raw trio sockets, for load generation.

The load generator must not be the bottleneck: frames are encoded (and masked) once, ahead of time, and sent in
large writes; received frames are parsed with slicing only. Just enough of the protocol for benchmarks: no
extensions, no fragmentation on send, text frames, no TLS.
"""

from __future__ import annotations

import base64
import hashlib
import os
import struct

import trio

GUID = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11"
OP_TEXT, OP_BINARY, OP_CLOSE, OP_PING, OP_PONG = 1, 2, 8, 9, 10


def _header(opcode: int, length: int, masked: bool) -> bytes:
    mask_bit = 0x80 if masked else 0
    if length < 126:
        return struct.pack("!BB", 0x80 | opcode, mask_bit | length)
    if length < 65536:
        return struct.pack("!BBH", 0x80 | opcode, mask_bit | 126, length)
    return struct.pack("!BBQ", 0x80 | opcode, mask_bit | 127, length)


def _mask(payload: bytes, key: bytes) -> bytes:
    n = len(payload)
    repeated = (key * (n // 4 + 1))[:n]
    return (int.from_bytes(payload, "big") ^ int.from_bytes(repeated, "big")).to_bytes(n, "big")


def client_frame(payload: bytes, opcode: int = OP_TEXT) -> bytes:
    """A masked (client-to-server) frame carrying ``payload``."""
    key = os.urandom(4)
    return _header(opcode, len(payload), True) + key + _mask(payload, key)


def server_frame(payload: bytes, opcode: int = OP_TEXT) -> bytes:
    """An unmasked (server-to-client) frame carrying ``payload``."""
    return _header(opcode, len(payload), False) + payload


async def _read_http_head(stream: trio.SocketStream) -> tuple[bytes, bytes]:
    buf = b""
    while b"\r\n\r\n" not in buf:
        chunk = await stream.receive_some(4096)
        if not chunk:
            raise ConnectionError("connection closed during the websocket handshake")
        buf += chunk
    head, _, rest = buf.partition(b"\r\n\r\n")
    return head, rest


async def connect(host: str, port: int, path: str) -> tuple[trio.SocketStream, bytes]:
    """Open a websocket; returns the stream and any bytes that followed the handshake response."""
    stream = await trio.open_tcp_stream(host, port)
    key = base64.b64encode(os.urandom(16))
    request = (
        f"GET {path} HTTP/1.1\r\nHost: {host}:{port}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
        f"Sec-WebSocket-Key: {key.decode()}\r\nSec-WebSocket-Version: 13\r\n\r\n"
    ).encode()
    await stream.send_all(request)
    head, rest = await _read_http_head(stream)
    status = head.split(b"\r\n", 1)[0]
    if b" 101 " not in status + b" ":
        await stream.aclose()
        raise ConnectionError(f"websocket handshake to {path} refused: {status.decode(errors='replace')}")
    return stream, rest


async def accept(stream: trio.SocketStream) -> tuple[str, bytes]:
    """Answer a client's handshake; returns the requested path and any bytes after the request."""
    head, rest = await _read_http_head(stream)
    lines = head.split(b"\r\n")
    path = lines[0].split(b" ")[1].decode()
    key = b""
    for line in lines[1:]:
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"sec-websocket-key":
            key = value.strip()
    accept_key = base64.b64encode(hashlib.sha1(key + GUID).digest()).decode()
    await stream.send_all(
        (
            "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
            f"Sec-WebSocket-Accept: {accept_key}\r\n\r\n"
        ).encode()
    )
    return path, rest


class FrameReader:
    """Parses frames from a stream (unmasked server frames, or masked client frames)."""

    def __init__(self, stream: trio.SocketStream, initial: bytes = b"") -> None:
        self._stream = stream
        self._buf = bytearray(initial)
        self._pos = 0

    async def _fill(self) -> bool:
        chunk = await self._stream.receive_some(1 << 16)
        if not chunk:
            return False
        if self._pos:
            del self._buf[: self._pos]
            self._pos = 0
        self._buf += chunk
        return True

    async def frames(self) -> list[tuple[int, bytes]]:
        """The next complete frames (at least one), or [] when the peer closed the connection."""
        out: list[tuple[int, bytes]] = []
        while not out:
            buf, pos = self._buf, self._pos
            while True:
                if len(buf) - pos < 2:
                    break
                b0, b1 = buf[pos], buf[pos + 1]
                length = b1 & 0x7F
                head = 2
                if length == 126:
                    if len(buf) - pos < 4:
                        break
                    length = struct.unpack_from("!H", buf, pos + 2)[0]
                    head = 4
                elif length == 127:
                    if len(buf) - pos < 10:
                        break
                    length = struct.unpack_from("!Q", buf, pos + 2)[0]
                    head = 10
                masked = b1 & 0x80
                if masked:
                    head += 4
                if len(buf) - pos < head + length:
                    break
                payload = bytes(buf[pos + head : pos + head + length])
                if masked:
                    payload = _mask(payload, bytes(buf[pos + head - 4 : pos + head]))
                out.append((b0 & 0x0F, payload))
                pos += head + length
            self._pos = pos
            if not out and not await self._fill():
                return []
        return out
