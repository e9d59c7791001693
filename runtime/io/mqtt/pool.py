"""The engine's shared MQTT connections (``Services.mqtt``): one per distinct ``MqttConn``, refcounted.

The first source or sink naming a connection starts its loop in the engine's supervisor nursery; the last one
out disconnects it. A source reading an MQTT shared subscription (``$share/<group>/<filter>``) gets a connection
of its own, so two rules on such a stream are two members of the group and the broker splits the messages
between them (which is what a shared subscription is for).
"""

from __future__ import annotations

import itertools
import ssl
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import final

import attrs
import trio

from runtime.clock import Clock
from runtime.io.confcheck import client_ssl_context
from runtime.io.mqtt.client import MqttClient
from runtime.io.mqtt.conf import MqttConn
from runtime.io.mqtt.router import Subscription
from runtime.metrics import ConnectionMetrics

STOP_TIMEOUT = 2.0  # seconds granted to a DISCONNECT when the last user leaves


@final
class MqttPool:
    """The engine's MQTT connections, keyed by ``MqttConn``.

    Args:
      nursery: returns the engine's supervisor nursery (raises when the engine is not running).
    """

    def __init__(self, nursery: Callable[[], trio.Nursery]) -> None:
        self._nursery = nursery
        self._clients: dict[MqttConn, MqttClient] = {}
        self._dedicated = itertools.count(1)

    @property
    def client_count(self) -> int:
        """Live connections (tests use it to prove sharing and release)."""
        return len(self._clients)

    def dedicated(self, conn: MqttConn) -> MqttConn:
        """A connection setting never shared with anyone (a shared-subscription member): its own client id."""
        number = next(self._dedicated)
        client_id = f"{conn.client_id}-{number}" if conn.client_id else ""
        return attrs.evolve(conn, dedicated=number, client_id=client_id)

    @asynccontextmanager
    async def connection(
        self, conn: MqttConn, *, clock: Clock, metrics: ConnectionMetrics
    ) -> AsyncIterator[MqttClient]:
        """Use the connection for ``conn`` for the duration of the block (it may still be connecting).

        Raises:
          SourceError: TLS files that cannot be loaded. Connection problems never raise: they are retried
            forever and reported through ``metrics``.

        Cancellation: leaving the block releases it; the last user disconnects (shielded, bounded).
        """
        client = self._clients.get(conn)
        fresh = client is None
        if client is None:
            ssl_context = None
            if conn.tls:
                ssl_context = client_ssl_context(
                    root_ca=conn.root_ca_path,
                    cert=conn.certification_path,
                    key=conn.private_key_path,
                    insecure=conn.insecure_skip_verify,
                    label="mqtt",
                )
                ssl_context.minimum_version = _TLS_VERSIONS[conn.tls_min_version]
            client = self._clients[conn] = MqttClient(conn, ssl_context, clock)
        client.join(metrics)
        try:
            if fresh:
                await self._nursery().start(client.run)
            yield client
        finally:
            client.leave(metrics)
            if not client.user_count and self._clients.get(conn) is client:
                del self._clients[conn]
                with trio.CancelScope(shield=True), trio.move_on_after(STOP_TIMEOUT):
                    await client.stop()

    @asynccontextmanager
    async def subscription(
        self, conn: MqttConn, sub: Subscription, *, clock: Clock, metrics: ConnectionMetrics
    ) -> AsyncIterator[MqttClient]:
        """Feed ``sub`` from its topic filter for the duration of the block.

        When the connection is up, waits (up to ``connectTimeout``) for the broker's SUBACK before entering, so
        messages published once the rule runs are not missed; a connection still being made subscribes every
        filter on CONNACK and reports connected only after the SUBACKs.
        """
        async with self.connection(conn, clock=clock, metrics=metrics) as client:
            if client.router.add(sub):
                await client.subscribe_filter(sub.topic_filter, sub.qos, conn.connect_timeout)
            try:
                yield client
            finally:
                if client.router.remove(sub):
                    client.unsubscribe_filter(sub.topic_filter)

    def __repr__(self) -> str:
        return f"<MqttPool clients={len(self._clients)}>"


_TLS_VERSIONS = {
    "tls1.0": ssl.TLSVersion.TLSv1,
    "tls1.1": ssl.TLSVersion.TLSv1_1,
    "tls1.2": ssl.TLSVersion.TLSv1_2,
    "tls1.3": ssl.TLSVersion.TLSv1_3,
}
