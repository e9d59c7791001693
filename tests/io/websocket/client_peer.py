"""A scriptable websocket server for the client-mode tests: records handshakes and messages, pushes frames,
rejects on demand, and stops/restarts on the same port. Runs in the test's own trio run (127.0.0.1 only)."""

from __future__ import annotations

import functools
import socket
import ssl
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import final

import trio
from trio_websocket import ConnectionClosed, WebSocketConnection, WebSocketRequest, wrap_server_stream

from runtime.formats.decode import Decoder, make_decoder
from runtime.io.services import Services
from runtime.sql.ast import StreamDef, StreamOptions
from tests.tls_certs import Certs


def json_decoder() -> Decoder:
    return make_decoder(StreamDef("s", "stream", (), StreamOptions(format="json")))


def free_port() -> int:
    """A port nothing listens on (bound and released at once)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
    return port


@asynccontextmanager
async def engine_services() -> AsyncIterator[tuple[Services, trio.Nursery]]:
    """Connector services attached to a nursery, as the engine does with its supervisor nursery."""
    async with trio.open_nursery() as nursery:
        services = Services()
        services.attach(nursery)
        yield services, nursery
        services.attach(None)
        nursery.cancel_scope.cancel()


def server_ssl_context(certs: Certs, *, require_client_cert: bool = False) -> ssl.SSLContext:
    """The peer's TLS context: the test CA's server certificate, optionally demanding a client certificate."""
    ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ctx.load_cert_chain(certs.server_cert, certs.server_key)
    if require_client_cert:
        ctx.load_verify_locations(cafile=certs.ca)
        ctx.verify_mode = ssl.CERT_REQUIRED
    return ctx


@final
class TcpPeer:
    """What the test servers share: listening on 127.0.0.1 (again on the same port after a stop), an event
    bumped on every change for ``wait_for``, and stopping that returns once the port is free. Subclasses
    handle each connection in ``_on_tcp`` and call ``_bump`` when something a test may wait for changed."""

    def __init__(self, port: int = 0) -> None:
        self.port = port
        self._changed = trio.Event()
        self._scope: trio.CancelScope | None = None
        self._stopped = trio.Event()

    async def start(self, nursery: trio.Nursery) -> None:
        """Listen (again) on ``port`` (0 the first time: then ``port`` is set to the bound one)."""
        self._stopped = trio.Event()
        await nursery.start(self._serve)

    async def wait_for(self, predicate: Callable[[], bool]) -> None:
        """Return once ``predicate()`` holds; re-checked after every change the subclass reports."""
        while not predicate():
            await self._changed.wait()

    async def _stop_listening(self) -> None:
        assert self._scope is not None
        self._scope.cancel()
        await self._stopped.wait()

    def _bump(self) -> None:
        self._changed.set()
        self._changed = trio.Event()

    async def _serve(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        try:
            with trio.CancelScope() as self._scope:
                async with trio.open_nursery() as nursery:
                    serve = functools.partial(trio.serve_tcp, self._on_tcp, self.port, host="127.0.0.1")
                    listeners: list[trio.SocketListener] = await nursery.start(serve)
                    self.port = listeners[0].socket.getsockname()[1]
                    task_status.started()
        finally:
            self._stopped.set()
            self._bump()

    async def _on_tcp(self, tcp: trio.SocketStream) -> None:
        raise NotImplementedError


class Peer(TcpPeer):
    """The server side of the tests.

    Attributes:
      handshakes: (path with query, headers) of every accepted handshake, in order.
      received: every message a client sent, in order.
      reject_status: when non-zero, handshakes are refused with this HTTP status.
      tls_failures: TLS handshakes that failed on the server side.
    """

    def __init__(self, ssl_context: ssl.SSLContext | None = None, port: int = 0) -> None:
        super().__init__(port)
        self.handshakes: list[tuple[str, dict[str, str]]] = []
        self.received: list[str | bytes] = []
        self.reject_status = 0
        self.tls_failures = 0
        self._ssl = ssl_context
        self._connections: list[WebSocketConnection] = []

    @property
    def connected(self) -> int:
        return len(self._connections)

    async def stop(self) -> None:
        """Close every connection with 1001, stop listening, and return once the port is free."""
        for ws in list(self._connections):
            with trio.move_on_after(1):
                await ws.aclose(1001, "going away")
        await self._stop_listening()

    async def send_all(self, message: str | bytes) -> None:
        for ws in list(self._connections):
            await ws.send_message(message)

    async def _on_tcp(self, tcp: trio.SocketStream) -> None:
        # TLS is done here, not by trio-websocket's server: it would leave a failed TLS connection open until its
        # connect timeout, whereas real servers (hypercorn) drop it at once, which is what the client must see.
        stream: trio.abc.Stream = tcp
        if self._ssl is not None:
            stream = trio.SSLStream(tcp, self._ssl, server_side=True, https_compatible=True)
            try:
                await stream.do_handshake()
            except trio.BrokenResourceError:
                self.tls_failures += 1
                await trio.aclose_forcefully(tcp)
                return
        try:
            async with trio.open_nursery() as nursery:
                request = None
                with trio.move_on_after(5):
                    request = await wrap_server_stream(nursery, stream)
                if request is None:
                    nursery.cancel_scope.cancel()
                    return
                await self._handle(request)
                # The reader task finishes the close handshake and ends at EOF; cancelling it now could turn a
                # clean close into a reset (code 1006 on the client). Bounded all the same.
                nursery.cancel_scope.deadline = trio.current_time() + 2
        finally:
            await trio.aclose_forcefully(stream)

    async def _handle(self, request: WebSocketRequest) -> None:
        if self.reject_status:
            await request.reject(self.reject_status)
            return
        ws = await request.accept()
        headers = {k.decode().lower(): v.decode() for k, v in request.headers}
        self.handshakes.append((request.path, headers))
        self._connections.append(ws)
        self._bump()
        try:
            while True:
                self.received.append(await ws.get_message())
                self._bump()
        except ConnectionClosed:
            pass
        finally:
            self._connections.remove(ws)
            self._bump()
