"""Shared pieces of the reliability tests: the daemon as a subprocess that never outlives a test, its /proc
numbers, REST shortcuts, and a websocket peer on 127.0.0.1 whose death the test controls.

The peer is written on wsproto directly (not trio-websocket) because the tests need what a library hides: to
drop a connection without a close frame (as a killed process does), to reset it (RST), and to read slowly.
"""

from __future__ import annotations

import socket
import struct
from pathlib import Path
from typing import Any, Literal, final

import httpx
import orjson
import trio
from wsproto import ConnectionType, WSConnection
from wsproto.connection import ConnectionState
from wsproto.events import (
    AcceptConnection,
    CloseConnection,
    Message,
    Ping,
    Request,
    TextMessage,
)

from tests.io.websocket.client_peer import TcpPeer

READ_SIZE = 65536

# --------------------------------------------------------------------------------------------- the daemon


def files_dir(data: Path) -> Path:
    """Where file sinks write: the data dir's ``files`` folder (the file sandbox's default root), absolute."""
    return (data / "files").resolve()


def proc_status(pid: int) -> dict[str, str]:
    """``/proc/<pid>/status`` as a dict (``VmRSS``, ``VmHWM``, ``Threads``...)."""
    out: dict[str, str] = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        key, _, value = line.partition(":")
        out[key] = value.strip()
    return out


def rss_mb(pid: int, key: str = "VmRSS") -> float:
    """Resident memory of ``pid`` in MB (``key`` ``VmHWM`` gives the peak so far)."""
    return int(proc_status(pid)[key].split()[0]) / 1024


def thread_count(pid: int) -> int:
    return int(proc_status(pid)["Threads"])


def fd_count(pid: int) -> int:
    return len(list(Path(f"/proc/{pid}/fd").iterdir()))


# ------------------------------------------------------------------------------------------------- REST


async def post_ok(http: httpx.AsyncClient, url: str, body: Any = None) -> str:
    """POST (JSON body when given) that must succeed; returns the answer's text."""
    resp = await http.post(url, json=body) if body is not None else await http.post(url)
    assert resp.status_code in (200, 201), f"POST {url}: {resp.status_code} {resp.text}"
    return resp.text


async def create(http: httpx.AsyncClient, stream_sql: str, *rules: dict[str, Any]) -> None:
    await post_ok(http, "/streams", {"sql": stream_sql})
    for rule in rules:
        await post_ok(http, "/rules", rule)


async def rule_status(http: httpx.AsyncClient, rule_id: str) -> dict[str, Any]:
    resp = await http.get(f"/rules/{rule_id}/status")
    assert resp.status_code == 200, resp.text
    status: dict[str, Any] = resp.json()
    return status


def json_lines(path: Path) -> list[Any]:
    """Every complete line of a JSON-lines file, parsed (a missing file has none)."""
    if not path.exists():
        return []
    return [orjson.loads(line) for line in path.read_bytes().split(b"\n")[:-1]]


# ---------------------------------------------------------------------------------- a websocket peer

KillMode = Literal["close", "abort", "reset"]


@final
class _PeerConn:
    __slots__ = ("lock", "reset", "stream", "ws")

    def __init__(self, stream: trio.SocketStream, ws: WSConnection) -> None:
        self.stream = stream
        self.ws = ws
        self.lock = trio.Lock()  # one writer at a time on a trio stream
        self.reset = False

    async def send_events(self, *events: Any) -> None:
        """Send wsproto events; raises ``trio.ClosedResourceError`` for a message on a closing connection
        (so a test never counts as sent what was not)."""
        async with self.lock:
            if self.ws.state is not ConnectionState.OPEN and not isinstance(events[0], CloseConnection):
                raise trio.ClosedResourceError(f"websocket is {self.ws.state.name}")
            await self.stream.send_all(b"".join(self.ws.send(event) for event in events))


@final
class WsPeer(TcpPeer):
    """A websocket server on 127.0.0.1 for the daemon's client mode (its sources and sinks dial it).

    Attributes:
      port: the port (0 until the first start picks one; kept across restarts).
      received: every message a client sent, in order (text as str, binary as bytes).
      accepted: handshakes completed so far; paths: the request target of each.
      read_pause: seconds slept before each socket read (0: read at full speed), to make a slow consumer.
    """

    def __init__(self, *, read_pause: float = 0.0, read_size: int = READ_SIZE) -> None:
        super().__init__()
        self.received: list[str | bytes] = []
        self.accepted = 0
        self.paths: list[str] = []
        self.read_pause = read_pause
        self.read_size = read_size
        self._conns: list[_PeerConn] = []

    @property
    def connected(self) -> int:
        return len(self._conns)

    async def send_text(self, message: str) -> None:
        """Send one text message on every open connection."""
        for conn in list(self._conns):
            await conn.send_events(TextMessage(data=message))

    async def kill(self, how: KillMode) -> None:
        """Stop listening and end every connection, as the server process dying would.

        ``close``: a close frame (1001) first, as a server shutting down cleanly. ``abort``: the sockets are
        closed with no close frame (what the kernel does when the process is killed: a FIN). ``reset``: the
        sockets are reset (RST), as when a killed process had unread data or a middlebox dropped the flow.
        Returns once the port is free.
        """
        conns = list(self._conns)
        if how == "close":
            for conn in conns:
                await conn.send_events(CloseConnection(code=1001, reason="going away"))
            with trio.move_on_after(2):  # the daemon answers the close frame; then the handler ends
                await self.wait_for(lambda: not any(c in self._conns for c in conns))
        elif how == "reset":
            for conn in conns:
                conn.reset = True
        await self._stop_listening()

    async def _on_tcp(self, stream: trio.SocketStream) -> None:
        ws = WSConnection(ConnectionType.SERVER)
        conn: _PeerConn | None = None
        try:
            request = await _read_request(stream, ws)
            if request is None:
                return
            await stream.send_all(ws.send(AcceptConnection()))
            conn = _PeerConn(stream, ws)
            self._conns.append(conn)
            self.accepted += 1
            self.paths.append(request.target)
            self._bump()
            await self._read(conn)
        except (trio.BrokenResourceError, trio.ClosedResourceError):
            pass
        finally:
            if conn is not None:
                self._conns.remove(conn)
                if conn.reset:
                    stream.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            await trio.aclose_forcefully(stream)
            self._bump()

    async def _read(self, conn: _PeerConn) -> None:
        ws, parts = conn.ws, []
        while True:
            if self.read_pause:
                await trio.sleep(self.read_pause)  # pacing: the slow consumer
            data = await conn.stream.receive_some(self.read_size)
            ws.receive_data(bytes(data) or None)
            replies: list[Any] = []
            ended = not data
            for event in ws.events():
                if isinstance(event, Message):
                    parts.append(event.data)
                    if event.message_finished:
                        joined = "".join(parts) if isinstance(event, TextMessage) else b"".join(parts)
                        self.received.append(joined)
                        parts = []
                elif isinstance(event, Ping):
                    replies.append(event.response())
                elif isinstance(event, CloseConnection):
                    ended = True
                    if ws.state is ConnectionState.REMOTE_CLOSING:
                        replies.append(event.response())
            if ws.state is not ConnectionState.OPEN:  # closing: only the answer to the close frame goes out
                replies = [r for r in replies if isinstance(r, CloseConnection)]
            if replies:
                await conn.send_events(*replies)
            self._bump()
            if ended:
                return


async def _read_request(stream: trio.SocketStream, ws: WSConnection) -> Request | None:
    with trio.move_on_after(5):
        while True:
            data = await stream.receive_some(READ_SIZE)
            if not data:
                return None
            ws.receive_data(bytes(data))
            for event in ws.events():
                if isinstance(event, Request):
                    return event
    return None
