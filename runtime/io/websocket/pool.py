"""The engine's pool of shared websocket client connections (``Services.ws_clients``).

Sources and sinks in client mode that name the same target (URL with path and query, TLS files, headers, open
message, timeouts) share one ``WsClient``: the first user starts its reconnect loop in the engine's supervisor
nursery, the last one out closes it.
"""

from __future__ import annotations

import itertools
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import final

import trio

from runtime.clock import Clock
from runtime.formats.decode import Decoder
from runtime.io.websocket.client import CLOSE_TIMEOUT, Subscriber, WsClient
from runtime.io.websocket.conf import WsConf
from runtime.io.websocket.tls import WsTarget, client_ssl_context, resolve_target
from runtime.metrics import ConnectionMetrics
from runtime.model import Outbox


@final
class WsClientPool:
    """The engine's shared websocket client connections, keyed by ``WsTarget`` and refcounted.

    Args:
      nursery: returns the engine's supervisor nursery (raises when the engine is not running); each shared
        connection's reconnect loop runs there, so it outlives any one rule but never the engine.

    One exists per engine: ``Services.ws_clients``.
    """

    def __init__(self, nursery: Callable[[], trio.Nursery]) -> None:
        self._nursery = nursery
        self._clients: dict[WsTarget, WsClient] = {}
        self._ids = itertools.count(1)

    @property
    def client_count(self) -> int:
        """Live shared connections (tests use it to prove sharing and release)."""
        return len(self._clients)

    @asynccontextmanager
    async def subscribe(
        self,
        conf: WsConf,
        path: str,
        *,
        clock: Clock,
        metrics: ConnectionMetrics,
        stream: str | None = None,
        decoder: Decoder | None = None,
        outbox: Outbox | None = None,
    ) -> AsyncIterator[WsClient]:
        """Use the shared connection for ``conf`` + ``path`` for the duration of the ``async with`` block.

        Args:
          conf: a client-mode conf group. path: the stream's DATASOURCE or the action's path (query kept).
          clock: the engine clock (timestamps). metrics: the caller's ``ctx.connection``, kept in sync.
          stream, decoder, outbox: for sources: frames are decoded once per ``stream`` with the first
            subscriber's ``decoder`` and each batch is awaited into ``outbox``. Sinks pass none of them.

        Yields: the ``WsClient`` (``send``, ``wait_connected``). It may still be connecting.

        Raises:
          SourceError: a bad address or path, or TLS files that cannot be loaded. Connection problems never
            raise: they are retried forever and reported through ``metrics``.

        Cancellation: leaving the block unsubscribes; the last subscriber out closes the connection (shielded,
        bounded) before the block exits.
        """
        target = resolve_target(conf, path)
        client = self._clients.get(target)
        fresh = client is None
        if client is None:
            client = self._clients[target] = WsClient(target, client_ssl_context(conf), clock, self._ids)
        sub = Subscriber(metrics, stream, outbox)
        client.join(sub, decoder)
        try:
            if fresh:
                await self._nursery().start(client.run)
            yield client
        finally:
            client.leave(sub)
            if not client.subscriber_count and self._clients.get(target) is client:
                del self._clients[target]
                with trio.CancelScope(shield=True), trio.move_on_after(CLOSE_TIMEOUT * 2):
                    await client.stop()

    def __repr__(self) -> str:
        return f"<WsClientPool clients={len(self._clients)}>"
