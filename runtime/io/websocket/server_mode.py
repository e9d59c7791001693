"""The websocket source and sink in server mode (conf group without ``addr``): users of the global data server.

A server-mode source receives what clients send on its DATASOURCE path; a server-mode sink sends every output
message to the clients connected on its ``path``. Both hold a reference to the engine's data server
(``Services.data_server``, see ``server.py``) while they run, so the server is up exactly while some rule uses it.
"""

from __future__ import annotations

from contextlib import AsyncExitStack
from typing import Any, final

import trio

from runtime.errors import SinkError, SourceError
from runtime.formats import encoder
from runtime.formats.decode import Decoder
from runtime.io.contract import SinkSpec, SourceSpec
from runtime.io.sinktemplate import message_text
from runtime.io.websocket.conf import WsConf
from runtime.io.websocket.endpoint import Endpoint
from runtime.model import Outbox, Row

TEXT_FORMATS = frozenset({"json", "delimited"})  # sent as text frames; every other format as binary frames
RELEASE_TIMEOUT = 10.0  # bound on releasing the server (closing clients, freeing the port) when a rule stops


def server_path(path: str) -> str:
    """A DATASOURCE or sink ``path`` as the URL path clients use (always with a leading ``/``)."""
    return path if path.startswith("/") else "/" + path


@final
class ServerSource:
    """Stream source ``TYPE="websocket"`` in server mode: frames clients send on the DATASOURCE path.

    Each frame becomes one batch: its decoded rows as events with ``meta`` = ``remoteAddr``, ``path``,
    ``query``, ``connectionId``, or one ``ErrorItem`` when it cannot be decoded. ``ctx.connection.status`` is
    1 while at least one client is connected on the path and 0 while none is (waiting is not a failure).

    Raises (when built):
      SourceError: the conf group is in client mode, or DATASOURCE is empty.
    """

    def __init__(self, spec: SourceSpec, conf: WsConf, decoder: Decoder) -> None:
        if not conf.server_mode:
            raise SourceError(f"websocket source of stream {spec.stream}: server mode needs an empty 'addr'")
        if not spec.datasource.strip("/"):
            raise SourceError(f"websocket source of stream {spec.stream}: DATASOURCE must be a URL path")
        self._spec = spec
        self._conf = conf
        self._decoder = decoder
        self._path = server_path(spec.datasource)

    async def run(
        self,
        send: Outbox,
        *,
        task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED,
    ) -> None:
        """Deliver frames until cancelled; the caller owns and closes ``send``.

        ``task_status.started()`` is called once the server's port is bound and the path registered.

        Returns: This function never returns unless cancelled.

        Raises:
          ServerStartError: the data server could not be started (address in use, bad TLS files).

        Cancellation: unregisters the path (its clients are closed with 1001 unless another rule still needs
        it); the last user of the server stops it, so the port is free when this returns.
        """
        ctx = self._spec.ctx
        stack = AsyncExitStack()
        await stack.enter_async_context(
            ctx.services.data_server.subscribe(
                self._path,
                self._spec.stream,
                self._decoder,
                send,
                self._conf,
                clock=ctx.clock,
                metrics=ctx.connection,
                owner=f"rule {ctx.rule_id} (stream {self._spec.stream})",
            )
        )
        try:
            task_status.started()
            await trio.sleep_forever()
        finally:
            with trio.CancelScope(shield=True), trio.move_on_after(RELEASE_TIMEOUT):
                await stack.aclose()

    def __repr__(self) -> str:
        return f"<ServerSource stream={self._spec.stream} path={self._path}>"


@final
class ServerSink:
    """Action ``websocket`` in server mode: every message goes to every client connected on ``path``.

    ``format`` (default json) picks the encoder (a ``dataTemplate`` output is sent as it is, unencoded); json
    and delimited go out as text frames, other formats as
    binary frames. Each client has its own bounded queue; a client whose queue is full is closed with 1008,
    counted in ``slow_clients`` and reported in ``ctx.connection.last_disconnected_message``. ``write`` never
    blocks on clients and never fails for them (no client connected means the message reaches nobody).

    Raises (when built):
      SinkError: the conf group is in client mode or ``path`` is empty.
      PlanError: unknown format.
    """

    def __init__(self, spec: SinkSpec, conf: WsConf, path: str) -> None:
        where = f"websocket sink (action {spec.index})"
        if not conf.server_mode:
            raise SinkError(f"{where}: server mode needs an empty 'addr'")
        if not path.strip("/"):
            raise SinkError(f"{where}: property 'path' is required")
        props = spec.props
        fmt = _str_prop(props, "format", "json").lower()
        self._encode = encoder(
            fmt, delimiter=_str_prop(props, "delimiter", ","), has_header=props.get("hasHeader") is True
        )
        self._text = fmt in TEXT_FORMATS
        self._spec = spec
        self._conf = conf
        self._path = server_path(path)
        self._stack = AsyncExitStack()
        self._endpoint: Endpoint | None = None
        self.slow_clients = 0

    async def open(self) -> None:
        """Register ``path`` on the data server (starting it if needed).

        Raises:
          ServerStartError: the data server could not be started.
        """
        ctx = self._spec.ctx
        self._endpoint = await self._stack.enter_async_context(
            ctx.services.data_server.publisher(
                self._path,
                self._conf,
                clock=ctx.clock,
                metrics=ctx.connection,
                owner=f"rule {ctx.rule_id} (action {self._spec.index})",
            )
        )

    async def write(self, data: Row | list[Row] | str) -> None:
        """Queue one message, as one frame, for every connected client.

        Raises:
          SinkError: the sink is not open.
        """
        if self._endpoint is None:
            raise SinkError(f"websocket sink on {self._path} is not open")
        # A dataTemplate output (a str message) goes out as it is, without the format's encoder.
        payload = message_text(data).encode() if isinstance(data, str) else self._encode(data)
        slow = self._endpoint.broadcast(self._text, payload)  # text frames: the encoder's UTF-8 bytes
        if slow:
            self.slow_clients += slow
            ctx = self._spec.ctx
            ctx.connection.last_disconnected_time = ctx.clock.now_ms()
            ctx.connection.last_disconnected_message = (
                f"{slow} client(s) on {self._path} could not keep up: closed with 1008 "
                f"({self.slow_clients} in total)"
            )

    async def aclose(self) -> None:
        """Unregister ``path`` (the last user stops the server). Idempotent."""
        self._endpoint = None
        with trio.CancelScope(shield=True), trio.move_on_after(RELEASE_TIMEOUT):
            await self._stack.aclose()

    def __repr__(self) -> str:
        return f"<ServerSink path={self._path}>"


def _str_prop(props: Row, key: str, default: str) -> str:
    value: Any = props.get(key, default)
    return value if isinstance(value, str) and value else default
