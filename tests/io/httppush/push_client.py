"""Test helpers for HTTP push: a rule's registration on the data server, and a raw HTTP/1.1 client on h11 that
keeps one TCP connection (to prove keep-alive and to send exactly the bytes a test needs)."""

from __future__ import annotations

import ssl
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import final

import h11
import trio

from runtime.formats.decode import Decoder
from runtime.io.httppush.conf import PushConf
from runtime.io.websocket.server import DataServer
from runtime.model import Batch, Outbox
from tests.io.websocket.test_data_server import json_decoder, make_ctx, registrant


@asynccontextmanager
async def push_rule(
    hub: DataServer,
    path: str,
    stream: str = "s",
    *,
    method: str = "POST",
    conf: PushConf | None = None,
    buffer: int = 100,
    decoder: Decoder | None = None,
    outbox: Outbox | None = None,
    rule: str = "r",
) -> AsyncIterator[trio.MemoryReceiveChannel[Batch]]:
    """A rule's httppush source on ``path``: yields the rule's input (``outbox`` replaces the channel's sending
    end as what the source hands rows to, e.g. a drop-policy wrapper around it)."""
    send, recv = trio.open_memory_channel[Batch](buffer)
    ctx = make_ctx(None, rule)
    async with (
        send,
        recv,
        hub.push(
            path,
            method,
            stream,
            decoder or json_decoder(),
            outbox if outbox is not None else send,
            conf or PushConf(method=method),
            owner=f"rule {rule} (stream {stream})",
            **registrant(ctx),
        ),
    ):
        yield recv


@final
class RawHttp:
    """One client connection; ``request`` sends a request and reads its answer (status, headers, body)."""

    def __init__(self, stream: trio.abc.Stream) -> None:
        self.stream = stream
        self.conn = h11.Connection(h11.CLIENT)

    @classmethod
    @asynccontextmanager
    async def open(cls, port: int, tls: ssl.SSLContext | None = None) -> AsyncIterator[RawHttp]:
        stream: trio.abc.Stream = await trio.open_tcp_stream("127.0.0.1", port)
        if tls is not None:
            stream = trio.SSLStream(stream, tls, server_hostname="127.0.0.1")
        async with stream:
            yield cls(stream)

    @property
    def closed_by_server(self) -> bool:
        return self.conn.their_state in (h11.MUST_CLOSE, h11.CLOSED)

    async def request(
        self,
        method: str,
        target: str,
        body: bytes = b"",
        headers: tuple[tuple[str, str], ...] = (),
        *,
        chunked: bool = False,
    ) -> tuple[int, dict[str, str], bytes]:
        if self.conn.our_state is h11.DONE and self.conn.their_state is h11.DONE:
            self.conn.start_next_cycle()
        framing = ("transfer-encoding", "chunked") if chunked else ("content-length", str(len(body)))
        data = self.conn.send(
            h11.Request(method=method, target=target, headers=[("host", "127.0.0.1"), framing, *headers])
        )
        if body:
            data += self.conn.send(h11.Data(data=body))
        data += self.conn.send(h11.EndOfMessage())
        try:
            await self.stream.send_all(data)
        except trio.BrokenResourceError:
            pass  # the server answered early and closed: its answer may still be readable
        return await self.response()

    async def response(self) -> tuple[int, dict[str, str], bytes]:
        """Read one answer (skipping 100 Continue)."""
        status, headers, body = 0, {}, b""
        while True:
            event = self.conn.next_event()
            if event is h11.NEED_DATA:
                self.conn.receive_data(await self.stream.receive_some(65536))
                continue
            if isinstance(event, h11.Response):
                status = event.status_code
                headers = {k.decode(): v.decode() for k, v in event.headers}
            elif isinstance(event, h11.Data):
                body += event.data
            elif isinstance(event, h11.EndOfMessage):
                return status, headers, body
            elif isinstance(event, h11.ConnectionClosed):
                raise trio.BrokenResourceError("closed before an answer")
