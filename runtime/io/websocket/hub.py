"""The global websocket data server (``WsHub``): a hypercorn ASGI app started by the first server-mode source or
sink and stopped by the last, routing each connection by URL path to the rules registered on it.

See WEBSOCKET.md §2 (lifetime, routing, limits), §5 (server-mode sink) and STACK.md (a) for hypercorn's quirks.
"""

from __future__ import annotations

import hmac
import logging
import socket
import ssl
from collections.abc import AsyncIterator, Awaitable, Callable, MutableMapping
from contextlib import asynccontextmanager
from typing import Any, cast, final
from urllib.parse import parse_qs

import attrs
import trio
from hypercorn.config import Config
from hypercorn.trio import serve

# The one-write path for sink frames uses hypercorn's websocket stream and its wsproto connection (internals of
# the pinned hypercorn 0.18): if they move, the hub falls back to one ASGI send per frame instead of failing.
try:
    from hypercorn.protocol.events import Data
    from hypercorn.protocol.ws_stream import ASGIWebsocketState, WSStream
    from wsproto.events import BytesMessage, TextMessage
    from wsproto.utilities import LocalProtocolError

    _FAST_WRITES = True
except ImportError:  # pragma: no cover - only with a hypercorn other than the pinned one
    _FAST_WRITES = False

from runtime.errors import ServerStartError
from runtime.formats.decode import DecodeError, Decoder
from runtime.io.contract import IoContext
from runtime.io.websocket.conf import WsConf
from runtime.model import Batch, ErrorItem, Event, Outbox, Row

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]

GOING_AWAY, POLICY_VIOLATION, MESSAGE_TOO_BIG = 1001, 1008, 1009  # close codes (1008: refused or too slow)
HYPERCORN_MAX_MESSAGE = 16 * 1024 * 1024  # hypercorn's own frame cap; ours per path is checked by the handler
GRACEFUL_TIMEOUT = 0.2  # what hypercorn waits for leftover connection tasks once our handlers have closed
CLOSE_TIMEOUT = 1.0  # bound on sending one close frame during cleanup
STOP_TIMEOUT = 5.0  # bound on waiting for hypercorn to exit; then its task is cancelled outright
OUTBOUND_QUEUE = 256  # sink messages a client may lag behind before it is closed with 1008
READ_BATCH = 64  # frames already queued on a connection that are delivered to the rules as one batch
WRITE_BATCH = 256  # sink frames already queued for a client that go out in one socket write
GATHER_PASSES = 3  # scheduler passes without a new frame after which the reader delivers what it has
GATHER_FAN_OUT = 16  # rules on a path from which one delivery costs enough wake-ups to be worth gathering for
APP_QUEUE = 64  # hypercorn's per-connection queue of received frames (its default, 10, caps the batches)


def hub_of(services: Any) -> WsHub:
    """The engine's hub (one per ``Services``), created on first use."""
    hub: WsHub = services.shared("websocket.hub", lambda: WsHub(services))
    return hub


@final
@attrs.define(eq=False)
class _Subscriber:
    outbox: Outbox
    ctx: IoContext
    pending: set[trio.CancelScope] = attrs.Factory(
        set
    )  # sends blocked on this rule, cancelled on unsubscribe
    active: bool = True  # False once unsubscribed (an O(1) check, where many rules share a stream)


@final
@attrs.define(eq=False)
class _StreamGroup:
    """The rules reading one stream on a path: they share one decode per frame."""

    decoder: Decoder
    subscribers: list[_Subscriber] = attrs.Factory(list)


@final
class _Connection:
    __slots__ = ("close_code", "id", "meta", "out_recv", "out_send", "scope")

    def __init__(self, conn_id: str, meta: Row, queue: int) -> None:
        self.id = conn_id
        self.meta = meta
        self.scope = trio.CancelScope()
        self.close_code = GOING_AWAY
        self.out_send, self.out_recv = trio.open_memory_channel[tuple[bool, bytes | str]](queue)

    def close(self, code: int) -> None:
        """Ask the connection's own handler to close with ``code`` (it alone may call ASGI send)."""
        self.close_code = code
        self.scope.cancel()


@final
@attrs.define(eq=False)
class _Endpoint:
    """One URL path: its limits (from the first registrant's conf group), streams, sinks and live clients."""

    path: str
    conf: WsConf
    streams: dict[str, _StreamGroup] = attrs.Factory(dict)
    sinks: int = 0
    contexts: list[IoContext] = attrs.Factory(list)  # every registrant, for connection metrics
    connections: set[_Connection] = attrs.Factory(set)

    @property
    def fan_out(self) -> int:
        """Rules reading this path (every stream group's subscribers)."""
        return sum(len(group.subscribers) for group in self.streams.values())

    @property
    def users(self) -> int:
        return self.sinks + sum(len(group.subscribers) for group in self.streams.values())

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

    def set_status(self, metrics_event: str, now_ms: int, message: str = "") -> None:
        # Status 1 while at least one client is connected, 0 ("waiting") otherwise: a server path is never
        # "disconnected" in the failure sense, so -1 is not used.
        for m in (ctx.connection for ctx in self.contexts):
            m.status = 1 if self.connections else 0
            if metrics_event == "connected":
                m.last_connected_time = now_ms
            else:
                m.last_disconnected_time = now_ms
                m.last_disconnected_message = message


@final
@attrs.define(eq=False)
class _Server:
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
class WsHub:
    """The global data server of one engine: refcounted hypercorn lifetime and per-path endpoints.

    Args:
      services: the engine's ``Services`` (supervisor nursery, ``[source]`` address and TLS).
      outbound_queue: sink messages one client may lag behind before it is closed with 1008.

    Server-mode sources use ``subscribe``, sinks ``publisher``; each holds one reference to the server for the
    duration of its ``async with`` block. Not thread-safe (trio tasks only).
    """

    def __init__(self, services: Any, *, outbound_queue: int = OUTBOUND_QUEUE) -> None:
        self._services = services
        self._outbound_queue = outbound_queue
        self._logger = logging.getLogger("oort.websocket.hub")
        self._endpoints: dict[str, _Endpoint] = {}
        self._server: _Server | None = None
        self._refs = 0
        self._generation = 0
        self._lock = trio.Lock()  # start and stop never interleave
        self._next_conn = 0

    @property
    def running(self) -> bool:
        return self._server is not None and not self._server.stopped.is_set()

    @property
    def port(self) -> int:
        """The bound port of the running server (0 when stopped)."""
        return self._server.port if self._server is not None else 0

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
        self, path: str, stream_key: str, decoder: Decoder, outbox: Outbox, ctx: IoContext, conf: WsConf
    ) -> AsyncIterator[None]:
        """Deliver frames from clients on ``path`` to ``outbox`` for the duration of the block.

        Args:
          path: URL path clients connect to (the stream's DATASOURCE).
          stream_key: frames are decoded once per key; rules on the same stream pass the same key.
          decoder: decodes a frame for this stream (the group's first decoder is the one used).
          outbox: the rule's input; ``await outbox.send`` blocking stops reading the sending client's socket.
          ctx: the rule's context; its ``connection`` metrics follow the path's clients.
          conf: the conf group; the path's limits come from its first registrant.

        Raises:
          ServerStartError: the data server had to be started and could not bind or load its TLS files.

        Cancellation: unsubscribes; the server's last user stops it (port freed) before the block exits.
        """
        sub = _Subscriber(outbox, ctx)
        async with self._reference(conf):
            endpoint = self._register(path, conf, ctx)
            group = endpoint.streams.get(stream_key)
            if group is None:
                group = endpoint.streams[stream_key] = _StreamGroup(decoder)
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
                self._unregister(endpoint, ctx)

    @asynccontextmanager
    async def publisher(
        self, path: str, ctx: IoContext, conf: WsConf
    ) -> AsyncIterator[Callable[[bool, bytes | str], int]]:
        """Register a sink on ``path``; yields ``broadcast(is_text, frame) -> number of slow clients closed``.

        ``broadcast`` never blocks: it queues the frame for each client's handler, closing (1008) full ones.

        Raises:
          ServerStartError: as for ``subscribe``.
        """
        async with self._reference(conf):
            endpoint = self._register(path, conf, ctx)
            endpoint.sinks += 1
            try:
                yield lambda is_text, frame: self._broadcast(endpoint, is_text, frame)
            finally:
                endpoint.sinks -= 1
                self._unregister(endpoint, ctx)

    def _register(self, path: str, conf: WsConf, ctx: IoContext) -> _Endpoint:
        endpoint = self._endpoints.get(path)
        if endpoint is None:
            endpoint = self._endpoints[path] = _Endpoint(path, conf)
        endpoint.contexts.append(ctx)
        ctx.connection.status = 1 if endpoint.connections else 0
        return endpoint

    def _unregister(self, endpoint: _Endpoint, ctx: IoContext) -> None:
        endpoint.contexts.remove(ctx)
        ctx.connection.status = 0
        if endpoint.users == 0:
            # No rule needs this path any more: its clients are told the server side is going away.
            del self._endpoints[endpoint.path]
            for conn in list(endpoint.connections):
                conn.close(GOING_AWAY)

    def _broadcast(self, endpoint: _Endpoint, is_text: bool, frame: bytes | str) -> int:
        slow = 0
        for conn in list(endpoint.connections):
            try:
                conn.out_send.send_nowait((is_text, frame))
            except trio.WouldBlock:
                slow += 1
                conn.close(POLICY_VIOLATION)
            except (trio.BrokenResourceError, trio.ClosedResourceError):
                pass  # its handler is finishing
        return slow

    @asynccontextmanager
    async def _reference(self, conf: WsConf) -> AsyncIterator[None]:
        async with self._lock:
            if self._server is None or self._server.stopped.is_set():  # never started, or crashed (logged)
                await self._start(conf)
            self._refs += 1
        try:
            yield
        finally:
            with trio.CancelScope(shield=True):
                self._refs -= 1
                if self._refs == 0:
                    async with self._lock:
                        if self._refs == 0 and self._server is not None:
                            await self._stop(self._server)

    def _config(self, conf: WsConf) -> Config:
        source = self._services.source_conf
        config = Config()
        config.bind = [f"{source.http_server_ip}:{source.http_server_port}"]
        config.accesslog = None
        config.errorlog = self._logger
        config.alpn_protocols = ["http/1.1"]  # no h2: websocket over h2 is not needed
        # Stop closes websockets itself (STACK.md a), but hypercorn's per-connection ping task outlives a
        # client-initiated close by up to one ping interval and would hold every stop for graceful_timeout.
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
        source = self._services.source_conf
        where = f"{source.http_server_ip}:{source.http_server_port}"
        self._generation += 1
        server = _Server(self._generation)
        try:
            config = self._config(conf)
            if config.ssl_enabled:
                config.create_ssl_context()  # load the files now: a bad one is reported with its reason
            _probe_bind(source.http_server_ip, source.http_server_port)
            binds: list[str] = await self._services.nursery.start(self._serve, server, config)
        except Exception as exc:  # noqa: BLE001 - every cause becomes one message naming the address
            raise ServerStartError(
                f"cannot start the websocket data server on {where}: {_leaf(exc)}"
            ) from exc
        server.port = int(binds[0].rsplit(":", 1)[1])
        self._server = server
        self._logger.info("websocket data server %d listening on %s", server.generation, binds[0])

    async def _serve(
        self, server: _Server, config: Config, *, task_status: trio.TaskStatus[list[str]]
    ) -> None:
        server.outer = task_status
        try:
            with server.cancel:
                # The app is typed loosely (plain mappings), hypercorn's stubs want their TypedDicts.
                app: Any = self._app
                started = cast("trio.TaskStatus[list[str]]", server)
                await serve(
                    app, config, shutdown_trigger=server.shutdown.wait, task_status=started, mode="asgi"
                )
        except Exception:
            if not server.started_ok:
                raise  # reaches the acquiring rule through nursery.start
            # After start nothing may crash the supervisor nursery: log, and let the next stop clean up.
            self._logger.exception("websocket data server failed")
        finally:
            server.stopped.set()

    async def _stop(self, server: _Server) -> None:
        # Open websockets are never idle, so hypercorn would wait graceful_timeout for them; they were closed
        # (1001) when their endpoints were removed, which happens before the last reference goes.
        server.shutdown.set()
        with trio.move_on_after(STOP_TIMEOUT) as waited:
            await server.stopped.wait()
        if waited.cancelled_caught:
            server.cancel.cancel()
            await server.stopped.wait()
        self._server = None

    async def _app(self, scope: Scope, receive: Receive, send: Send) -> None:
        kind = scope["type"]
        if kind == "lifespan":
            # Returning without answering crashes hypercorn at startup (STACK.md a): answer both phases.
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
        else:
            await self._websocket(scope, receive, send)

    async def _websocket(self, scope: Scope, receive: Receive, send: Send) -> None:
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
        conn = _Connection(meta["connectionId"], meta, self._outbound_queue)
        clock = endpoint.contexts[0].clock  # an endpoint exists only while someone is registered on it
        # Counted before the first await, so concurrent handshakes cannot overshoot maxConnections, and a path
        # removed meanwhile closes this connection (its cancelled scope makes the handler close at once).
        endpoint.connections.add(conn)
        endpoint.set_status("connected", clock.now_ms())
        client_gone, reason = False, ""  # set by _read, or stays False when we close
        try:
            await send({"type": "websocket.accept"})
            with conn.scope:
                async with trio.open_nursery() as nursery:
                    nursery.start_soon(self._write, conn, send)
                    client_gone, reason = await self._read(endpoint, conn, receive)
                    nursery.cancel_scope.cancel()
            if not client_gone:
                reason = f"closed by server ({conn.close_code})"
        finally:
            endpoint.connections.discard(conn)
            conn.out_send.close()
            conn.out_recv.close()
            endpoint.set_status("disconnected", clock.now_ms(), reason)
            if not client_gone:
                with trio.CancelScope(shield=True), trio.move_on_after(CLOSE_TIMEOUT):
                    try:
                        await send({"type": "websocket.close", "code": conn.close_code})
                    except Exception:  # noqa: BLE001 - the transport may already be gone; nothing to tell
                        pass

    async def _write(self, conn: _Connection, send: Send) -> None:
        """Send the sink's frames to the client: the frames queued now and within a few passes
        (``_gather_frames``) go out with one socket write where hypercorn's stream allows it (``_frame_writer``),
        else one ASGI ``send`` per frame."""
        write_many = _frame_writer(send)
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
                        self._logger.warning(
                            "websocket %s: batched writes unavailable", conn.id, exc_info=True
                        )
                        write_many = None
                for is_text, frame in frames:
                    await send({"type": "websocket.send", "text" if is_text else "bytes": frame})
        except (trio.ClosedResourceError, trio.BrokenResourceError, trio.EndOfChannel):
            pass  # closed by the handler's cleanup
        except Exception:  # noqa: BLE001 - the peer went away mid-send: the reader sees the disconnect
            self._logger.debug("websocket %s: send failed", conn.id, exc_info=True)

    async def _read(self, endpoint: _Endpoint, conn: _Connection, receive: Receive) -> tuple[bool, str]:
        """Read frames until the client leaves (True, reason) or the connection is closed by us (False, …).

        Frames that are already queued when one arrives are taken with it (up to ``READ_BATCH``) and delivered as
        one batch: the rule's channel is crossed once per batch, not once per frame. hypercorn hands over one
        frame per scheduler pass (its queue ``send`` yields), so every delivery would wake every rule on the path
        once per pass. Where that is many rules (``GATHER_FAN_OUT``), the reader also waits while frames keep
        coming, up to ``GATHER_PASSES`` passes without a new one, before delivering: a busy engine then delivers
        fewer, larger batches, and an idle one delivers a lone frame after a few empty passes (microseconds).
        Paths with few rules keep "what is already queued" batches, so a rule's bounded buffer (counted in
        batches) stays as small in rows as before.
        """
        limit = endpoint.conf.max_message_size
        drain = _nowait(receive)
        payloads: list[bytes | str] = []
        while True:
            message: Message | None = await receive()
            while message is not None:
                if message["type"] == "websocket.disconnect":
                    if payloads:
                        await self._deliver(endpoint, conn, payloads)
                    return True, f"client disconnected ({message.get('code', 1005)})"
                payload: bytes | str | None = message.get("bytes")
                if payload is None:
                    payload = message.get("text") or ""
                if limit and _too_big(payload, limit):
                    if payloads:
                        await self._deliver(endpoint, conn, payloads)
                    conn.close_code = MESSAGE_TOO_BIG
                    return False, "message too big"
                payloads.append(payload)
                if drain is None or len(payloads) >= READ_BATCH:
                    break
                if endpoint.fan_out < GATHER_FAN_OUT:
                    try:
                        message = drain()
                    except trio.WouldBlock:
                        break
                else:
                    message = await _gather(drain)
            await self._deliver(endpoint, conn, payloads)
            payloads = []

    async def _deliver(self, endpoint: _Endpoint, conn: _Connection, payloads: list[bytes | str]) -> None:
        for group in list(endpoint.streams.values()):
            subscribers = tuple(group.subscribers)
            if not subscribers:
                continue
            batch: Batch = []
            ts = subscribers[0].ctx.clock.now_ms()
            meta = conn.meta
            decoder = group.decoder
            for payload in payloads:
                try:
                    rows = decoder(payload)
                except (DecodeError, UnicodeDecodeError) as exc:
                    batch.append(ErrorItem(f"websocket {endpoint.path}: {exc}"))
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


async def _gather_frames(out: trio.MemoryReceiveChannel[tuple[bool, bytes | str]], frames: list[Any]) -> None:
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


def _frame_writer(send: Send) -> Callable[[list[tuple[bool, bytes | str]]], Awaitable[bool]] | None:
    """A writer of several frames with one socket write, for hypercorn's websocket stream; None elsewhere.

    hypercorn hands the app ``WSStream.app_send`` (bound method); one ASGI ``send`` per frame costs a lock and a
    socket write, each a scheduler pass, so a client receiving thousands of frames a second falls behind. The
    writer encodes the frames with the stream's own wsproto connection and passes the bytes on as one ``Data``
    event, which is what ``app_send`` does for one frame. It returns False (nothing sent: use ``send``) unless
    the stream is connected, so closing and errors keep hypercorn's own path.
    """
    if not _FAST_WRITES:
        return None
    stream = getattr(send, "__self__", None)
    if not isinstance(stream, WSStream) or not all(
        hasattr(stream, name) for name in ("state", "stream_id", "send", "closed")
    ):
        return None
    connected = ASGIWebsocketState.CONNECTED

    async def write_many(frames: list[tuple[bool, bytes | str]]) -> bool:
        if stream.closed:
            return True  # hypercorn's own app_send drops frames for a closed stream too
        connection = getattr(stream, "connection", None)
        if stream.state != connected or connection is None:
            return False
        try:
            data = b"".join(
                [
                    connection.send(
                        TextMessage(data=frame) if isinstance(frame, str) else BytesMessage(data=frame)
                    )
                    for _, frame in frames
                ]
            )
        except LocalProtocolError:
            return True  # the connection is closing: hypercorn drops sends then too
        await stream.send(Data(stream_id=stream.stream_id, data=data))
        return True

    return write_many


def _nowait(receive: Receive) -> Callable[[], Message] | None:
    """The non-blocking twin of hypercorn's ASGI ``receive``, where there is one.

    hypercorn's trio worker hands the app ``MemoryReceiveChannel.receive`` (bound method) of the connection's app
    queue; its ``receive_nowait`` lets the reader take every frame already queued. Anything else: None (one
    frame per delivery, as before).
    """
    channel = getattr(receive, "__self__", None)
    if isinstance(channel, trio.MemoryReceiveChannel):
        nowait: Callable[[], Message] = channel.receive_nowait
        return nowait
    return None


def _probe_bind(host: str, port: int) -> None:
    # hypercorn leaks its half-made socket when bind fails: probing first (same SO_REUSEADDR) keeps the common
    # failure, a port in use, out of it. A race with another process still ends in hypercorn's error.
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        probe.bind((host, port))


def _too_big(payload: bytes | str, limit: int) -> bool:
    # A str's UTF-8 size is at most 4 bytes per character: encode only when that bound exceeds the cap.
    if isinstance(payload, bytes) or len(payload) > limit:
        return len(payload) > limit
    return len(payload) * 4 > limit and len(payload.encode()) > limit


def _leaf(exc: BaseException) -> str:
    """The first real cause inside (nested) exception groups, as ``message`` text."""
    while isinstance(exc, BaseExceptionGroup) and exc.exceptions:
        exc = exc.exceptions[0]
    if isinstance(exc, OSError) and exc.strerror:
        return exc.strerror
    return str(exc) or type(exc).__name__
