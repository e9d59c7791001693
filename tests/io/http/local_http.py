"""A small real HTTP/1.1 server for the HTTP connector tests: Trio sockets + h11, optional TLS, on 127.0.0.1.

It records every request (method, target, headers, body and which TCP connection carried it) and answers with
whatever ``reply`` says, which a test may change at any time (a new body, an error status, a hang). It can stop
and start again on the same port, to play a server that goes down and comes back.
"""

from __future__ import annotations

import http
import itertools
import ssl
from collections.abc import Awaitable, Callable
from typing import final

import attrs
import h11
import trio


@final
@attrs.frozen
class Recorded:
    """One request as the server read it. ``connection`` numbers the TCP connections from 1."""

    method: str
    target: str
    headers: dict[str, str]  # names lower-cased
    body: bytes
    connection: int


@final
@attrs.frozen
class Reply:
    status: int = 200
    body: bytes = b"{}"
    content_type: str = "application/json"


Replier = Callable[[Recorded], Awaitable[Reply]]


async def ok_json(_: Recorded) -> Reply:
    return Reply()


@final
class LocalHttp:
    """The server. ``start`` binds (port 0 the first time, then the same port) and serves in ``nursery``."""

    def __init__(self, reply: Replier = ok_json, ssl_context: ssl.SSLContext | None = None) -> None:
        self.reply = reply
        self.ssl_context = ssl_context
        self.port = 0
        self.requests: list[Recorded] = []
        self.connections = 0
        self.tls_failures: list[str] = []
        self._ids = itertools.count(1)
        self._changed = trio.Event()
        self._scope: trio.CancelScope | None = None
        self._stopped = trio.Event()

    @property
    def url(self) -> str:
        scheme = "https" if self.ssl_context is not None else "http"
        return f"{scheme}://127.0.0.1:{self.port}"

    def set_body(self, body: bytes, status: int = 200) -> None:
        """Answer every request from now on with ``body`` and ``status``."""

        async def reply(_: Recorded) -> Reply:
            return Reply(status=status, body=body)

        self.reply = reply

    async def start(self, nursery: trio.Nursery) -> None:
        await nursery.start(self._serve)

    async def stop(self) -> None:
        """Close the listener and every open connection; returns once the port is free."""
        if self._scope is not None:
            self._scope.cancel()
            await self._stopped.wait()

    async def wait_for(self, predicate: Callable[[], bool]) -> None:
        while not predicate():
            await self._changed.wait()

    def _notify(self) -> None:
        self._changed.set()
        self._changed = trio.Event()

    async def _serve(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        self._stopped = trio.Event()
        try:
            with trio.CancelScope() as self._scope:
                listeners = await trio.open_tcp_listeners(self.port, host="127.0.0.1")
                self.port = listeners[0].socket.getsockname()[1]
                async with trio.open_nursery() as nursery:
                    nursery.start_soon(trio.serve_listeners, self._handle, listeners)
                    task_status.started()
        finally:
            self._scope = None
            self._stopped.set()

    async def _handle(self, tcp: trio.SocketStream) -> None:
        stream: trio.abc.Stream = tcp
        if self.ssl_context is not None:
            tls = trio.SSLStream(tcp, self.ssl_context, server_side=True)
            try:
                await tls.do_handshake()
            except trio.BrokenResourceError as exc:
                self.tls_failures.append(str(exc.__cause__))
                self._notify()
                await trio.aclose_forcefully(tcp)
                return
            stream = tls
        self.connections += 1
        connection = next(self._ids)
        self._notify()
        try:
            await self._serve_connection(stream, connection)
        except (trio.BrokenResourceError, trio.ClosedResourceError, h11.RemoteProtocolError):
            pass
        finally:
            await trio.aclose_forcefully(stream)

    async def _serve_connection(self, stream: trio.abc.Stream, connection: int) -> None:
        conn = h11.Connection(h11.SERVER)
        request: h11.Request | None = None
        body = bytearray()
        while True:
            event = conn.next_event()
            if event is h11.NEED_DATA:
                conn.receive_data(await stream.receive_some(65536))
                continue
            if isinstance(event, h11.ConnectionClosed) or event is h11.PAUSED:
                return
            if isinstance(event, h11.Request):
                request, body = event, bytearray()
            elif isinstance(event, h11.Data):
                body += event.data
            elif isinstance(event, h11.EndOfMessage) and request is not None:
                recorded = Recorded(
                    method=request.method.decode(),
                    target=request.target.decode(),
                    headers={k.decode().lower(): v.decode() for k, v in request.headers},
                    body=bytes(body),
                    connection=connection,
                )
                self.requests.append(recorded)
                self._notify()
                reply = await self.reply(recorded)
                headers = [("content-type", reply.content_type), ("content-length", str(len(reply.body)))]
                await stream.send_all(
                    conn.send(
                        h11.Response(
                            status_code=reply.status,
                            headers=headers,
                            reason=http.HTTPStatus(reply.status).phrase,
                        )
                    )
                )
                await stream.send_all(conn.send(h11.Data(data=reply.body)))
                await stream.send_all(conn.send(h11.EndOfMessage()))
                if conn.our_state is h11.MUST_CLOSE:
                    return
                conn.start_next_cycle()
                request = None


def server_context(cert: str, key: str, client_ca: str | None = None) -> ssl.SSLContext:
    """A server-side SSL context; with ``client_ca`` the client must present a certificate it signed."""
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(cert, key)
    if client_ca is not None:
        ctx.load_verify_locations(cafile=client_ca)
        ctx.verify_mode = ssl.CERT_REQUIRED
    return ctx
