"""The websocket source and sink in client mode (conf group with ``addr``): thin users of the shared client pool.

Both resolve their target when built, so a bad address or path fails the rule at start; connection problems
never do (the shared client retries forever and reports through ``ctx.connection``).
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
from runtime.io.websocket.client import WsClient
from runtime.io.websocket.conf import WsConf
from runtime.io.websocket.tls import resolve_target
from runtime.model import Outbox, Row

TEXT_FORMATS = frozenset({"json", "delimited"})  # sent as text frames; every other format as binary frames


@final
class ClientSource:
    """Stream source ``TYPE="websocket"`` in client mode: frames from the connection dialled for DATASOURCE.

    Each frame becomes one batch: its decoded rows as events (``meta`` = ``path`` without query and
    ``connectionId``), or one ``ErrorItem`` when it cannot be decoded.

    Raises (when built):
      SourceError: the conf group is not in client mode, or its address or the DATASOURCE is malformed.
    """

    def __init__(self, spec: SourceSpec, conf: WsConf, decoder: Decoder) -> None:
        if conf.server_mode:
            raise SourceError(f"websocket source of stream {spec.stream}: client mode needs 'addr'")
        try:
            self._url = resolve_target(conf, spec.datasource).redacted
        except SourceError as exc:
            raise SourceError(f"websocket source of stream {spec.stream}: {exc}") from None
        self._spec = spec
        self._conf = conf
        self._decoder = decoder

    async def run(
        self,
        send: Outbox,
        *,
        task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED,
    ) -> None:
        """Deliver frames until cancelled; the caller owns and closes ``send``.

        ``task_status.started()`` is called as soon as the subscription exists: a connection that is still
        being dialled counts as running (the rule waits for data).

        Returns: This function never returns unless cancelled.

        Raises:
          SourceError: the TLS files of the conf group cannot be loaded.

        Cancellation: unsubscribes; the last user of the connection closes it.
        """
        ctx = self._spec.ctx
        pool = ctx.services.ws_clients
        async with pool.subscribe(
            self._conf,
            self._spec.datasource,
            clock=ctx.clock,
            metrics=ctx.connection,
            stream=self._spec.stream,
            decoder=self._decoder,
            outbox=send,
        ):
            task_status.started()
            await trio.sleep_forever()

    def __repr__(self) -> str:
        return f"<ClientSource stream={self._spec.stream} url={self._url}>"


@final
class ClientSink:
    """Action ``websocket`` in client mode: each message is one frame on the connection dialled for ``path``.

    ``format`` (default json) picks the encoder (a ``dataTemplate`` output is sent as it is, unencoded); json
    and delimited go out as text frames, other formats as
    binary frames. While the connection is down ``write`` raises ``SinkUnavailable`` (eKuiper reports success
    and loses the data): the message is counted and dropped, or cached and resent with ``enableCache``.

    Raises (when built):
      SinkError: the conf group is not in client mode or the address or path is malformed.
      PlanError: unknown format.
    """

    def __init__(self, spec: SinkSpec, conf: WsConf, path: str) -> None:
        where = f"websocket sink (action {spec.index})"
        if conf.server_mode:
            raise SinkError(f"{where}: client mode needs 'addr'")
        try:
            self._url = resolve_target(conf, path).redacted
        except SourceError as exc:
            raise SinkError(f"{where}: {exc}") from None
        props = spec.props
        fmt = _str_prop(props, "format", "json").lower()
        self._encode = encoder(
            fmt, delimiter=_str_prop(props, "delimiter", ","), has_header=props.get("hasHeader") is True
        )
        self._text = fmt in TEXT_FORMATS
        self._spec = spec
        self._conf = conf
        self._path = path
        self._stack = AsyncExitStack()
        self._client: WsClient | None = None
        self._first_write = True

    async def open(self) -> None:
        """Join the shared connection, without waiting for it: the rule starts at once and the connection's
        progress shows in its status (a host that drops packets must not hold up rule creation).

        Raises:
          SinkError: the TLS files of the conf group cannot be loaded.
        """
        ctx = self._spec.ctx
        try:
            self._client = await self._stack.enter_async_context(
                ctx.services.ws_clients.subscribe(
                    self._conf, self._path, clock=ctx.clock, metrics=ctx.connection
                )
            )
        except SourceError as exc:
            raise SinkError(str(exc)) from exc

    async def write(self, data: Row | list[Row] | str) -> None:
        """Send one message as one frame.

        Raises:
          SinkUnavailable: not connected.
          SinkError: the sink is not open.
        """
        if self._client is None:
            raise SinkError(f"websocket {self._url} is not open")
        if self._first_write:
            # The first message waits up to connectTimeout for the connection a fresh rule is still making,
            # instead of failing with an avoidable "not connected"; later ones do not wait.
            self._first_write = False
            with trio.move_on_after(self._conf.connect_timeout):
                await self._client.wait_connected()
        if isinstance(data, str):  # a dataTemplate output: sent as it is
            text = message_text(data)
            await self._client.send(text if self._text else text.encode())
            return
        payload = self._encode(data)
        await self._client.send(payload.decode() if self._text else payload)

    async def aclose(self) -> None:
        """Leave the shared connection (the last user closes it). Idempotent."""
        self._client = None
        await self._stack.aclose()

    def __repr__(self) -> str:
        return f"<ClientSink url={self._url}>"


def _str_prop(props: Row, key: str, default: str) -> str:
    value: Any = props.get(key, default)
    return value if isinstance(value, str) and value else default
