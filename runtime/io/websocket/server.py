"""The global data server: one hypercorn server per engine whose lifetime tracks the rules that use it.

``DataServer`` is ``Services.data_server``. Every server-mode websocket source (``subscribe``) and sink
(``publisher``) holds one reference for as long as its rule runs: the first reference starts hypercorn in the
engine's supervisor nursery (bound to ``[source] httpServerIp:httpServerPort`` of ``oort.toml``, with TLS when
configured), the last one stops it, so the port is bound exactly while some rule needs it. Start and stop are
serialised by a lock and never interleave.

Connections are routed by URL path to an ``Endpoint`` (``endpoint.py``: auth, reading, delivering, writing);
a path nobody is registered on is refused with HTTP 403. Plain HTTP requests get 404.
"""

from __future__ import annotations

import logging
import ssl
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any, cast, final

import attrs
import trio
from hypercorn.config import Config
from hypercorn.trio import serve

from runtime.clock import Clock
from runtime.config import SourceConf
from runtime.errors import ServerStartError, leaves
from runtime.formats.decode import Decoder
from runtime.io.websocket._hypercorn import Receive, Scope, Send, probe_bind
from runtime.io.websocket.conf import WsConf
from runtime.io.websocket.endpoint import (
    GOING_AWAY,
    OUTBOUND_QUEUE,
    POLICY_VIOLATION,
    Endpoint,
    Registrant,
    StreamGroup,
    Subscriber,
)
from runtime.metrics import ConnectionMetrics
from runtime.model import Outbox, Row

HYPERCORN_MAX_MESSAGE = (
    16 * 1024 * 1024
)  # hypercorn's own frame cap; ours per path is checked by the endpoint
GRACEFUL_TIMEOUT = 0.2  # what hypercorn waits for leftover connection tasks once our handlers have closed
STOP_TIMEOUT = 5.0  # bound on waiting for hypercorn to exit; then its task is cancelled outright
APP_QUEUE = 64  # hypercorn's per-connection queue of received frames (its default, 10, caps the batches)


@final
@attrs.define(eq=False)
class _Run:
    """One start of hypercorn: its port, and the events and scope that stop it."""

    generation: int
    port: int = 0
    shutdown: trio.Event = attrs.Factory(trio.Event)
    stopped: trio.Event = attrs.Factory(trio.Event)
    cancel: trio.CancelScope = attrs.Factory(trio.CancelScope)
    outer: Any = None  # nursery.start's task status while starting
    started_ok: bool = False

    def started(self, binds: list[str]) -> None:
        """hypercorn's ``task_status``: pass ``binds`` on to ``nursery.start`` and remember that it happened."""
        self.started_ok = True
        self.outer.started(binds)


@final
class DataServer:
    """The global data server of one engine: refcounted hypercorn lifetime and the per-path endpoints.

    Args:
      nursery: returns the engine's supervisor nursery (raises when the engine is not running); the server
        runs there, so it outlives any one rule but never the engine.
      source_conf: the ``[source]`` section of ``oort.toml`` (address and TLS).

    Attributes:
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
    ) -> AsyncIterator[None]:
        """Deliver frames from clients on ``path`` to ``outbox`` for the duration of the block.

        Args:
          path: URL path clients connect to (the stream's DATASOURCE).
          stream_key: frames are decoded once per key; rules on the same stream pass the same key.
          decoder: decodes a frame for this stream (the group's first decoder is the one used).
          outbox: the rule's input; ``await outbox.send`` blocking stops reading the sending client's socket.
          conf: the conf group; the path's limits come from its first registrant.
          clock: timestamps the events. metrics: the rule's connection metrics; they follow the path's clients.

        Raises:
          ServerStartError: the data server had to be started and could not bind or load its TLS files.

        Cancellation: unsubscribes; the server's last user stops it (port freed) before the block exits.
        """
        registrant = Registrant(clock, metrics)
        sub = Subscriber(outbox, registrant)
        async with self._reference(conf):
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
        self, path: str, conf: WsConf, *, clock: Clock, metrics: ConnectionMetrics
    ) -> AsyncIterator[Endpoint]:
        """Register a sink on ``path`` for the duration of the block; yields the path's ``Endpoint``, whose
        ``broadcast(is_text, frame)`` queues a frame for every connected client without blocking.

        Raises:
          ServerStartError: as for ``subscribe``.
        """
        registrant = Registrant(clock, metrics)
        async with self._reference(conf):
            endpoint = self._register(path, conf, registrant)
            endpoint.sinks += 1
            try:
                yield endpoint
            finally:
                endpoint.sinks -= 1
                self._unregister(endpoint, registrant)

    def _register(self, path: str, conf: WsConf, registrant: Registrant) -> Endpoint:
        endpoint = self._endpoints.get(path)
        if endpoint is None:
            endpoint = self._endpoints[path] = Endpoint(path, conf, self.outbound_queue)
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
    async def _reference(self, conf: WsConf) -> AsyncIterator[None]:
        async with self._lock:
            if self._run is None or self._run.stopped.is_set():  # never started, or crashed (logged)
                await self._start(conf)
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

    def _config(self, conf: WsConf) -> Config:
        source = self._source
        config = Config()
        config.bind = [f"{source.http_server_ip}:{source.http_server_port}"]
        config.accesslog = None
        config.errorlog = self._logger
        config.alpn_protocols = ["http/1.1"]  # no h2: websocket over h2 is not needed
        # Stop closes websockets itself, but hypercorn's per-connection ping task outlives a client-initiated
        # close by up to one ping interval and would hold every stop for graceful_timeout.
        config.graceful_timeout = GRACEFUL_TIMEOUT
        config.websocket_max_message_size = max(HYPERCORN_MAX_MESSAGE, conf.max_message_size)
        config.max_app_queue_size = APP_QUEUE
        config.websocket_ping_interval = conf.ping_interval if conf.ping_interval > 0 else None
        tls = source.http_server_tls
        if tls is not None:
            config.certfile = tls.certfile
            config.keyfile = tls.keyfile
            if tls.ca_file:
                config.ca_certs = tls.ca_file
                config.verify_mode = ssl.CERT_REQUIRED
        return config

    async def _start(self, conf: WsConf) -> None:
        source = self._source
        where = f"{source.http_server_ip}:{source.http_server_port}"
        self._generation += 1
        run = _Run(self._generation)
        try:
            config = self._config(conf)
            if config.ssl_enabled:
                config.create_ssl_context()  # load the files now: a bad one is reported with its reason
            probe_bind(source.http_server_ip, source.http_server_port)
            binds: list[str] = await self._nursery().start(self._serve, run, config)
        except Exception as exc:  # noqa: BLE001 - every cause becomes one message naming the address
            raise ServerStartError(
                f"cannot start the websocket data server on {where}: {_reason(exc)}"
            ) from exc
        run.port = int(binds[0].rsplit(":", 1)[1])
        self._run = run
        self._logger.info("websocket data server %d listening on %s", run.generation, binds[0])

    async def _serve(self, run: _Run, config: Config, *, task_status: trio.TaskStatus[list[str]]) -> None:
        run.outer = task_status
        try:
            with run.cancel:
                # The app is typed loosely (plain mappings), hypercorn's stubs want their TypedDicts.
                app: Any = self._app
                started = cast("trio.TaskStatus[list[str]]", run)
                await serve(app, config, shutdown_trigger=run.shutdown.wait, task_status=started, mode="asgi")
        except Exception:
            if not run.started_ok:
                raise  # reaches the acquiring rule through nursery.start
            # After start nothing may crash the supervisor nursery: log, and let the next stop clean up.
            self._logger.exception("websocket data server failed")
        finally:
            run.stopped.set()

    async def _stop(self, run: _Run) -> None:
        # Open websockets are never idle, so hypercorn would wait graceful_timeout for them; they were closed
        # (1001) when their endpoints were removed, which happens before the last reference goes.
        run.shutdown.set()
        with trio.move_on_after(STOP_TIMEOUT) as waited:
            await run.stopped.wait()
        if waited.cancelled_caught:
            run.cancel.cancel()
            await run.stopped.wait()
        self._run = None

    async def _app(self, scope: Scope, receive: Receive, send: Send) -> None:
        kind = scope["type"]
        if kind == "lifespan":
            # Returning without answering crashes hypercorn at startup: answer both phases.
            while True:
                message = await receive()
                if message["type"] == "lifespan.startup":
                    await send({"type": "lifespan.startup.complete"})
                else:
                    await send({"type": "lifespan.shutdown.complete"})
                    return
        if kind == "http":
            await send({"type": "http.response.start", "status": 404, "headers": []})
            await send({"type": "http.response.body", "body": b"websocket endpoints only"})
            return
        await receive()  # websocket.connect
        endpoint = self._endpoints.get(scope["path"])
        refusal = "no rule serves this path" if endpoint is None else endpoint.refusal(scope)
        if endpoint is None or refusal is not None:
            # A close before accept is answered with HTTP 403 by hypercorn.
            self._logger.debug("refused websocket on %s: %s", scope["path"], refusal)
            await send({"type": "websocket.close", "code": POLICY_VIOLATION})
            return
        self._next_conn += 1
        meta: Row = {
            "remoteAddr": ":".join(map(str, scope.get("client") or ("", 0))),
            "path": scope["path"],
            "query": scope.get("query_string", b"").decode("latin-1"),
            "connectionId": f"{self._generation}-{self._next_conn}",
        }
        await endpoint.serve(meta, receive, send)

    def __repr__(self) -> str:
        return f"<DataServer running={self.running} port={self.port} refs={self._refs}>"


def _reason(exc: BaseException) -> str:
    """The first real cause inside (nested) exception groups, as one line of text."""
    leaf = leaves(exc)[0]
    if isinstance(leaf, OSError) and leaf.strerror:
        return leaf.strerror
    return str(leaf) or type(leaf).__name__
