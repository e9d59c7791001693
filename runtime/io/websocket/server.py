"""The global data server: one websocket and HTTP server per engine whose lifetime tracks the rules that use it.

``DataServer`` is ``Services.data_server``. Every server-mode websocket source (``subscribe``) and sink
(``publisher``) and every httppush source (``push``) holds one reference for as long as its rule runs: the first
reference starts the server in the engine's supervisor nursery (listening on ``[source]
httpServerIp:httpServerPort`` of ``oort.toml``, with TLS when configured), the last one stops it, so the port is
bound exactly while some rule needs it. Start and stop are serialised by a lock and never interleave.

The server reads each connection's first request head and dispatches on it. A websocket upgrade is spoken on
wsproto directly (``wire.py``: one socket read becomes one batch) and routed by URL path to an ``Endpoint``
(``endpoint.py``: auth, reading, delivering, writing); a path nobody is registered on is refused with HTTP 403.
Any other request is HTTP/1.1 for the httppush paths (``runtime/io/httppush/``: 404 for a path no push source
serves).
"""

from __future__ import annotations

import logging
import ssl
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any, final
from urllib.parse import unquote

import attrs
import trio

from runtime.clock import Clock
from runtime.config import SourceConf, is_loopback
from runtime.config.secrets import redact_query
from runtime.errors import ServerStartError, SourceError, leaves
from runtime.formats.decode import Decoder
from runtime.heap import ByteBudget
from runtime.io.httppush.conf import PushConf
from runtime.io.httppush.connection import is_upgrade, read_head, serve_http
from runtime.io.httppush.endpoint import Pusher, PushRoutes
from runtime.io.websocket.conf import WsConf, endpoint_differences
from runtime.io.websocket.endpoint import (
    GOING_AWAY,
    OUTBOUND_QUEUE,
    Endpoint,
    Registrant,
    Scope,
    StreamGroup,
    Subscriber,
)
from runtime.io.websocket.wire import Wire, handshake, reject
from runtime.metrics import ConnectionMetrics
from runtime.model import Outbox, Row

STOP_TIMEOUT = 5.0  # bound on waiting for the server task to exit; then it is cancelled outright
FORBIDDEN = 403  # the answer to a refused upgrade


@final
@attrs.define(eq=False)
class _Run:
    """One start of the server: its port, and the events and scope that stop it."""

    generation: int
    port: int = 0
    shutdown: trio.Event = attrs.Factory(trio.Event)
    stopped: trio.Event = attrs.Factory(trio.Event)
    cancel: trio.CancelScope = attrs.Factory(trio.CancelScope)


@final
class DataServer:
    """The global data server of one engine: refcounted server lifetime and the per-path endpoints.

    Args:
      nursery: returns the engine's supervisor nursery (raises when the engine is not running); the server
        runs there, so it outlives any one rule but never the engine.
      source_conf: the ``[source]`` section of ``oort.toml`` (address and TLS).

    Attributes:
      budget: the inbound bytes all connections together may hold (``source.maxInboundBytes``, runtime/heap.py).
      push_routes: the httppush paths (``push_routes.counts()``: paths and sources registered).
      outbound_queue: sink messages one client may lag behind before it is closed with 1008 (for paths
        registered from now on).

    Not thread-safe (trio tasks only).
    """

    def __init__(self, nursery: Callable[[], trio.Nursery], source_conf: SourceConf) -> None:
        self.outbound_queue = OUTBOUND_QUEUE
        self._nursery = nursery
        self._source = source_conf
        self._logger = logging.getLogger("oort.websocket.server")
        self._endpoints: dict[str, Endpoint] = {}
        self._run: _Run | None = None
        self._refs = 0
        self._generation = 0
        self._lock = trio.Lock()  # start and stop never interleave
        self._next_conn = 0
        self.budget = ByteBudget(source_conf.max_inbound_bytes)
        self.push_routes = PushRoutes(public=not is_loopback(source_conf.http_server_ip))

    @property
    def running(self) -> bool:
        return self._run is not None and not self._run.stopped.is_set()

    @property
    def port(self) -> int:
        """The bound port of the running server (0 when stopped)."""
        return self._run.port if self._run is not None else 0

    @property
    def generation(self) -> int:
        """How many times the server was started."""
        return self._generation

    def counts(self) -> dict[str, int]:
        """Live references, endpoints, stream groups, subscribers and connections (all 0 when idle)."""
        eps = self._endpoints.values()
        return {
            "refs": self._refs,
            "endpoints": len(eps),
            "streams": sum(len(ep.streams) for ep in eps),
            "subscribers": sum(ep.users for ep in eps),
            "connections": sum(len(ep.connections) for ep in eps),
        }

    @asynccontextmanager
    async def subscribe(
        self,
        path: str,
        stream_key: str,
        decoder: Decoder,
        outbox: Outbox,
        conf: WsConf,
        *,
        clock: Clock,
        metrics: ConnectionMetrics,
        owner: str = "",
    ) -> AsyncIterator[None]:
        """Deliver frames from clients on ``path`` to ``outbox`` for the duration of the block.

        Args:
          path: URL path clients connect to (the stream's DATASOURCE).
          stream_key: frames are decoded once per key; rules on the same stream pass the same key.
          decoder: decodes a frame for this stream (the group's first decoder is the one used).
          outbox: the rule's input; ``await outbox.send`` blocking stops reading the sending client's socket.
          conf: the conf group; every registrant of a path must have the same endpoint settings.
          clock: timestamps the events. metrics: the rule's connection metrics; they follow the path's clients.
          owner: who registers (``rule r1 (stream a)``), named when another registrant's settings clash.

        Raises:
          ServerStartError: the data server had to be started and could not bind or load its TLS files.
          SourceError: the path is in use with other endpoint settings (token, origins, limits).

        Cancellation: unsubscribes; the server's last user stops it (port freed) before the block exits.
        """
        registrant = Registrant(clock, metrics, owner)
        sub = Subscriber(outbox, registrant)
        async with self._reference():
            endpoint = self._register(path, conf, registrant)
            group = endpoint.streams.get(stream_key)
            if group is None:
                group = endpoint.streams[stream_key] = StreamGroup(decoder)
            group.subscribers.append(sub)
            try:
                yield
            finally:
                group.subscribers.remove(sub)
                sub.active = False
                for scope in sub.pending:
                    scope.cancel()
                if not group.subscribers:
                    del endpoint.streams[stream_key]
                self._unregister(endpoint, registrant)

    @asynccontextmanager
    async def publisher(
        self, path: str, conf: WsConf, *, clock: Clock, metrics: ConnectionMetrics, owner: str = ""
    ) -> AsyncIterator[Endpoint]:
        """Register a sink on ``path`` for the duration of the block; yields the path's ``Endpoint``, whose
        ``broadcast(is_text, frame)`` queues a frame for every connected client without blocking.

        Raises:
          ServerStartError, SourceError: as for ``subscribe``.
        """
        registrant = Registrant(clock, metrics, owner)
        async with self._reference():
            endpoint = self._register(path, conf, registrant)
            endpoint.sinks += 1
            try:
                yield endpoint
            finally:
                endpoint.sinks -= 1
                self._unregister(endpoint, registrant)

    @asynccontextmanager
    async def push(
        self,
        path: str,
        method: str,
        stream_key: str,
        decoder: Decoder,
        outbox: Outbox,
        conf: PushConf,
        *,
        clock: Clock,
        metrics: ConnectionMetrics,
        owner: str = "",
    ) -> AsyncIterator[None]:
        """Deliver the bodies clients send with ``method`` to ``path`` into ``outbox`` for the duration of the
        block (an httppush source; see ``runtime/io/httppush/endpoint.py`` for how a body is taken).

        Args:
          stream_key: bodies are decoded once per key; rules on the same stream pass the same key.
          outbox: the rule's input; a request is answered once every rule on the path took its rows.
          conf: the conf group; every registrant of a path must have the same token, origins and size cap.

        Raises:
          ServerStartError: the data server had to be started and could not bind or load its TLS files.
          SourceError: the path is in use with other settings.

        Cancellation: unregisters (requests waiting on this rule's buffer are let go); the server's last user
        stops it (port freed) before the block exits.
        """
        pusher = Pusher(outbox, clock, metrics, owner)
        async with self._reference():
            self.push_routes.register(path, method, stream_key, decoder, pusher, conf)
            try:
                yield
            finally:
                self.push_routes.unregister(path, method, stream_key, pusher)

    def _register(self, path: str, conf: WsConf, registrant: Registrant) -> Endpoint:
        endpoint = self._endpoints.get(path)
        if endpoint is None:
            endpoint = self._endpoints[path] = Endpoint(path, conf, self.outbound_queue)
            if not conf.token and not is_loopback(self._source.http_server_ip):
                self._logger.warning(
                    "websocket path %s takes data from anyone who can reach %s: its conf group sets no token",
                    path,
                    self._source.http_server_ip,
                )
        else:
            # One set of settings per path: a second conf group must not loosen (or silently lose) the
            # first one's token, origins or limits, whichever rule happens to start first.
            differ = endpoint_differences(endpoint.conf, conf)
            if differ:
                holders = (
                    ", ".join(sorted({r.owner for r in endpoint.registrants if r.owner})) or "another rule"
                )
                raise SourceError(
                    f"websocket path {path} is served by {holders} with other settings ({', '.join(differ)}); "
                    f"{registrant.owner or 'this rule'} must use the same conf group to share it"
                )
        endpoint.registrants.append(registrant)
        registrant.metrics.status = 1 if endpoint.connections else 0
        return endpoint

    def _unregister(self, endpoint: Endpoint, registrant: Registrant) -> None:
        endpoint.registrants.remove(registrant)
        registrant.metrics.status = 0
        if endpoint.users == 0:
            # No rule needs this path any more: its clients are told the server side is going away.
            del self._endpoints[endpoint.path]
            endpoint.close_all(GOING_AWAY)

    @asynccontextmanager
    async def _reference(self) -> AsyncIterator[None]:
        async with self._lock:
            if self._run is None or self._run.stopped.is_set():  # never started, or crashed (logged)
                await self._start()
            self._refs += 1
        try:
            yield
        finally:
            with trio.CancelScope(shield=True):
                self._refs -= 1
                if self._refs == 0:
                    async with self._lock:
                        if self._refs == 0 and self._run is not None:
                            await self._stop(self._run)

    def _ssl_context(self) -> ssl.SSLContext | None:
        """The server's TLS context from ``[source] httpServerTls`` (None without TLS); loads the files now, so
        a bad one is reported with its reason."""
        tls = self._source.http_server_tls
        if tls is None:
            return None
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        context.load_cert_chain(tls.certfile, tls.keyfile)
        if tls.ca_file:
            context.load_verify_locations(tls.ca_file)
            context.verify_mode = ssl.CERT_REQUIRED
        context.set_alpn_protocols(["http/1.1"])
        return context

    async def _start(self) -> None:
        source = self._source
        where = f"{source.http_server_ip}:{source.http_server_port}"
        self._generation += 1
        run = _Run(self._generation)
        try:
            context = self._ssl_context()
            listeners = await trio.open_tcp_listeners(source.http_server_port, host=source.http_server_ip)
        except Exception as exc:  # noqa: BLE001 - every cause becomes one message naming the address
            raise ServerStartError(
                f"cannot start the websocket data server on {where}: {_reason(exc)}"
            ) from exc
        run.port = listeners[0].socket.getsockname()[1]
        try:
            await self._nursery().start(self._serve, run, listeners, context)
        except BaseException:
            for listener in listeners:
                await trio.aclose_forcefully(listener)
            raise
        self._run = run
        tls = "s" if context is not None else ""
        logging.getLogger("oort.listening").info(  # shown at any log level (runtime/logsetup.py)
            "data server %d listening on %s:%d (ws%s:// websocket, http%s:// push)",
            run.generation,
            source.http_server_ip,
            run.port,
            tls,
            tls,
        )

    async def _serve(
        self,
        run: _Run,
        listeners: list[trio.SocketListener],
        context: ssl.SSLContext | None,
        *,
        task_status: trio.TaskStatus[None],
    ) -> None:
        try:
            with run.cancel:
                async with trio.open_nursery() as nursery:
                    serving: list[trio.abc.Listener[Any]] = (
                        [trio.SSLListener(listener, context) for listener in listeners]
                        if context is not None
                        else list(listeners)
                    )
                    await nursery.start(trio.serve_listeners, self._connection, serving)
                    task_status.started()
                    await run.shutdown.wait()
                    # Open websockets were closed (1001) when their endpoints were removed, before the last
                    # reference went; what is left is handshakes in progress.
                    nursery.cancel_scope.cancel()
        except Exception:
            # After start nothing may crash the supervisor nursery: log, and let the next start begin afresh.
            self._logger.exception("websocket data server failed")
        finally:
            for listener in listeners:
                with trio.CancelScope(shield=True):
                    await listener.aclose()
            run.stopped.set()

    async def _stop(self, run: _Run) -> None:
        run.shutdown.set()
        with trio.move_on_after(STOP_TIMEOUT) as waited:
            await run.stopped.wait()
        if waited.cancelled_caught:
            run.cancel.cancel()
            await run.stopped.wait()
        self._run = None

    async def _connection(self, stream: trio.abc.Stream) -> None:
        """One client connection: HTTP requests for push paths, or the upgrade, routing and admission of a
        websocket, which its endpoint then serves."""
        try:
            head = await read_head(stream)
            if head is None:
                return  # the client left, or sent no complete request head in time
            if not is_upgrade(head):
                await serve_http(stream, head, self.push_routes, self.budget, _peer(stream))
                return
            accepted = await handshake(stream, head)
            if accepted is None:
                return
            ws, request = accepted
            raw_path, _, query = request.target.partition("?")
            path = unquote(raw_path)  # as the stream's DATASOURCE is written (hypercorn decoded it too)
            endpoint = self._endpoints.get(path)
            scope: Scope = {
                "headers": [(b"host", request.host.encode("latin-1")), *request.extra_headers],
                "query_string": query.encode("latin-1"),
            }
            refusal = "no rule serves this path" if endpoint is None else endpoint.refusal(scope)
            if endpoint is None or refusal is not None:
                self._logger.debug("refused websocket on %s: %s", path, refusal)
                await reject(stream, ws, FORBIDDEN)
                return
            self._next_conn += 1
            meta: Row = {
                "remoteAddr": _peer(stream),
                "path": path,
                "query": redact_query(query),  # meta(query) reaches every rule: no tokens in it
                "connectionId": f"{self._generation}-{self._next_conn}",
            }
            wire = Wire(stream, ws, endpoint.conf.max_message_size, budget=self.budget)
            try:
                await endpoint.serve(meta, wire)
            finally:
                wire.release()
        except (trio.BrokenResourceError, trio.ClosedResourceError):
            pass  # the client went away or its TLS handshake failed: nothing to answer
        except Exception:  # noqa: BLE001 - one connection's failure must never take the server down
            # Debug level: any client can cause this, and a warning per connection would let it flood the log.
            self._logger.debug("data server connection failed", exc_info=True)
        finally:
            await trio.aclose_forcefully(stream)

    def __repr__(self) -> str:
        return f"<DataServer running={self.running} port={self.port} refs={self._refs}>"


def _peer(stream: trio.abc.Stream) -> str:
    """``host:port`` of the client (``:0`` when the transport does not say)."""
    transport = stream.transport_stream if isinstance(stream, trio.SSLStream) else stream
    if isinstance(transport, trio.SocketStream):
        try:
            address = transport.socket.getpeername()
        except OSError:  # the client reset the connection already
            return ":0"
        return f"{address[0]}:{address[1]}"
    return ":0"


def _reason(exc: BaseException) -> str:
    """The first real cause inside (nested) exception groups, as one line of text."""
    leaf = leaves(exc)[0]
    if isinstance(leaf, OSError) and leaf.strerror:
        return leaf.strerror
    return str(leaf) or type(leaf).__name__
