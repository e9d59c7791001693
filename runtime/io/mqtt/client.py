"""One shared MQTT connection: dial, CONNECT, subscribe, deliver and publish; reconnect forever with backoff.

An ``MqttClient`` is made by the engine's pool (``pool.py``) for each distinct ``MqttConn`` and runs as one
task in the engine's supervisor nursery. Every attempt: Trio dials (TCP, TLS), paho speaks MQTT over a
``Pipe`` (``link.py``), and three tasks serve the session: the reader (socket -> paho -> rules), the writer
(paho -> socket) and the ticker (paho's keepalive). Sources subscribe topic filters (``router.py`` decodes and
delivers), sinks publish.

Flow control: incoming QoS 1 and 2 messages are acknowledged only after every rule took them (manual acks),
and a rule whose buffer is full holds the reader, so nothing more is read: the broker keeps the backlog (its
in-flight window fills, then TCP pushes back). A persistent session (``enableClientSession``) keeps the
subscriptions and the QoS 1/2 backlog at the broker while Oort is away.
"""

from __future__ import annotations

import logging
import random
import ssl
import uuid
from typing import Any, final

import attrs
import paho.mqtt.client as paho
import trio
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties
from paho.mqtt.reasoncodes import ReasonCode

from runtime.clock import Clock
from runtime.errors import SinkUnavailable
from runtime.io.dial import CONNECT_FAILURES, describe_failure, dial
from runtime.io.mqtt.conf import V5, MqttConn
from runtime.io.mqtt.link import Link, Pipe
from runtime.io.mqtt.router import Router
from runtime.metrics import ConnectionMetrics, mirror_connection

LOGGER = logging.getLogger("oort.mqtt")

CONNECTING, CONNECTED, DISCONNECTED = 0, 1, -1  # ConnectionMetrics.status values
MIN_RETRY_DELAY = 0.001  # floor for a zero reconnectMinDelay: a dead broker never means a busy loop
ACK_TIMEOUT = 5.0  # seconds a QoS 1/2 publish waits for the broker's acknowledgement (eKuiper's token wait)
TICK = 1.0  # seconds between paho's keepalive checks
WRITE_HIGH_WATER = 1 << 20  # bytes queued for the socket beyond which publishers wait for the writer
READ_SIZE = 1 << 16
_PROTOCOLS = {3: paho.MQTTv31, 4: paho.MQTTv311, 5: paho.MQTTv5}


class _SessionEnded(Exception):
    """The MQTT session ended (broker closed it, refused CONNECT, or the keepalive expired); the text says why."""


@final
class MqttClient:
    """One shared broker connection and its reconnect loop. Built only by ``MqttPool``.

    Attributes:
      conn: what it connects to. metrics: its connection state, mirrored into every user's metrics.
      router: the topic filters subscribed and the streams they feed.
    """

    def __init__(self, conn: MqttConn, ssl_context: ssl.SSLContext | None, clock: Clock) -> None:
        self.conn = conn
        self.metrics = ConnectionMetrics()
        self.router = Router(clock, f"mqtt {conn.server}")
        self._ssl = ssl_context
        self._clock = clock
        self._rng = random.Random()
        self._users: list[ConnectionMetrics] = []
        self._client_id = conn.client_id or f"oort-{uuid.uuid4().hex[:16]}"
        self._link = self._make_link()
        self._pipe: Pipe | None = None
        self._connected = trio.Event()
        self._changed = trio.Event()
        self._session_ended = ""  # why paho ended the session ("" while it runs)
        self._pending_subacks: dict[int, tuple[str, trio.Event]] = {}
        self._acks: dict[int, trio.Event] = {}
        self._ack_reasons: dict[int, str] = {}
        self._scope = trio.CancelScope()
        self._stopped = trio.Event()
        self._ran = False

    @property
    def user_count(self) -> int:
        return len(self._users)

    @property
    def client_id(self) -> str:
        return self._client_id

    def join(self, metrics: ConnectionMetrics) -> None:
        self._users.append(metrics)
        mirror_connection(self.metrics, metrics)

    def leave(self, metrics: ConnectionMetrics) -> None:
        # By identity: ConnectionMetrics compare by value, and every user's mirror the same state.
        self._users = [user for user in self._users if user is not metrics]
        metrics.status = CONNECTING

    # --- the connection loop

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        """Keep a session with the broker: dial, CONNECT, serve, back off, again. Never returns unless stopped.

        ``task_status.started()`` is called at once (a connection still being made is running). Every failure
        (refused, TLS, CONNECT refused, closed, keepalive timeout) is recorded in ``metrics``, logged once per
        state change and retried with exponential backoff and jitter between ``reconnectMinDelay`` and
        ``reconnectMaxDelay``.
        """
        self._ran = True
        try:
            with self._scope:
                task_status.started()
                failures = 0
                while True:
                    self._update(last_try_time=self._clock.now_ms())
                    reason = await self._attempt()
                    failures = 1 if self.metrics.status == CONNECTED else failures + 1
                    self._lost(reason)
                    await trio.sleep(self._backoff(failures))
        finally:
            self._pipe = None
            self._stopped.set()

    async def stop(self) -> None:
        """End the session (DISCONNECT sent, bounded) and the loop. Idempotent."""
        self._scope.cancel()
        if self._ran:
            await self._stopped.wait()

    async def _attempt(self) -> str:
        conn = self.conn
        try:
            with trio.fail_after(conn.connect_timeout):
                stream = await dial(conn.host, conn.port, self._ssl)
        except trio.TooSlowError:
            return f"connect timed out after {conn.connect_timeout:g}s"
        except CONNECT_FAILURES as exc:
            return describe_failure(exc)
        reason = "connection closed"
        try:
            reason = await self._session(stream)
        except* CONNECT_FAILURES as group:
            reason = describe_failure(group.exceptions[0])
        finally:
            await trio.aclose_forcefully(stream)
        return reason

    async def _session(self, stream: trio.abc.Stream) -> str:
        pipe = self._pipe = Pipe()
        self._session_ended = ""
        ended = "connection closed"
        self._link.next_pipe = pipe
        self._link.reconnect()  # writes CONNECT into the pipe
        try:
            async with trio.open_nursery() as nursery:
                nursery.start_soon(self._write, stream, pipe)
                nursery.start_soon(self._tick, pipe)
                with trio.move_on_after(self.conn.connect_timeout) as waiting:
                    await self._read_until(stream, pipe, lambda: self._link.is_connected())
                if waiting.cancelled_caught:
                    raise _SessionEnded(f"no CONNACK within {self.conn.connect_timeout:g}s")
                await self._read_until(stream, pipe, lambda: False)
        except* _SessionEnded as group:
            ended = str(group.exceptions[0])
        finally:
            self._pipe = None
            self._fail_waiters("connection lost")
            if not pipe.closed:
                # Stopping: say goodbye (a persistent session survives a DISCONNECT), bounded and shielded.
                with trio.CancelScope(shield=True), trio.move_on_after(1.0):
                    self._link.disconnect()
                    await _flush(stream, pipe)
        return ended

    async def _read_until(self, stream: trio.abc.Stream, pipe: Pipe, done: Any) -> None:
        link = self._link
        while not done():
            data = await stream.receive_some(READ_SIZE)
            if data:
                pipe.feed(bytes(data))
            else:
                pipe.feed_eof()
            while pipe.readable and not pipe.closed:
                link.loop_read()
            _write_queued(link, pipe)
            if pipe.closed:
                raise _SessionEnded(self._session_ended or "connection closed by the broker")
            await self.router.deliver(link)

    async def _write(self, stream: trio.abc.Stream, pipe: Pipe) -> None:
        while True:
            await pipe.wrote.wait()
            pipe.wrote = trio.Event()
            if pipe.pending_out:
                await stream.send_all(pipe.take_out())
            pipe.flushed.set()
            pipe.flushed = trio.Event()
            if pipe.closed:
                raise _SessionEnded(self._session_ended or "connection closed")

    async def _tick(self, pipe: Pipe) -> None:
        while True:
            await trio.sleep(TICK)
            if self.router.delivering:
                continue  # a full rule buffer holds the reader: missing PINGRESPs are backpressure, not death
            self._link.loop_misc()
            _write_queued(self._link, pipe)
            if pipe.closed:
                raise _SessionEnded(self._session_ended or "no answer from the broker within the keepalive")

    async def publish(
        self, topic: str, payload: bytes, qos: int, retain: bool, properties: dict[str, str]
    ) -> None:
        """Publish one message; QoS 1 and 2 wait for the broker's acknowledgement.

        Raises:
          SinkUnavailable: not connected, the connection was lost before the acknowledgement, or none came
            within ``ACK_TIMEOUT``. The reconnect loop keeps trying meanwhile.
        """
        pipe = self._pipe
        if pipe is None or not self._connected.is_set():
            raise SinkUnavailable(f"mqtt {self.conn.server} is not connected")
        props = None
        if properties and self.conn.protocol == V5:
            props = Properties(PacketTypes.PUBLISH)  # type: ignore[no-untyped-call]
            props.UserProperty = list(properties.items())
        info = self._link.publish(topic, payload, qos, retain, props)
        if info.rc != paho.MQTT_ERR_SUCCESS:
            raise SinkUnavailable(f"mqtt {self.conn.server}: publish failed: {paho.error_string(info.rc)}")
        if qos > 0:
            done = self._acks[info.mid] = trio.Event()
            with trio.move_on_after(ACK_TIMEOUT) as waited:
                await done.wait()
            self._acks.pop(info.mid, None)
            reason = self._ack_reasons.pop(info.mid, "")
            if waited.cancelled_caught:
                raise SinkUnavailable(f"mqtt {self.conn.server}: no acknowledgement within {ACK_TIMEOUT:g}s")
            if reason:
                raise SinkUnavailable(f"mqtt {self.conn.server}: publish to {topic!r} failed: {reason}")
        if pipe.pending_out > WRITE_HIGH_WATER:
            # A slow broker slows the publishers: wait for the writer to take the backlog (or the session to end).
            while self._pipe is pipe and pipe.pending_out > WRITE_HIGH_WATER // 2 and not pipe.closed:
                await pipe.flushed.wait()

    async def subscribe_filter(self, topic_filter: str, qos: int, wait: float) -> None:
        """Subscribe ``topic_filter`` now if connected (else it is subscribed on connect); wait up to ``wait``
        seconds for the broker's SUBACK so messages published right after are delivered."""
        if not self._connected.is_set():
            return
        done = self._send_subscribe(topic_filter, qos)
        if done is not None:
            with trio.move_on_after(wait):
                await done.wait()

    def unsubscribe_filter(self, topic_filter: str) -> None:
        """Drop a filter nobody uses any more (kept at the broker for a persistent session, as eKuiper does)."""
        if self._connected.is_set() and not self.conn.persistent:
            self._link.unsubscribe(topic_filter)

    async def wait_status(self, status: int) -> None:
        while self.metrics.status != status:
            await self._changed.wait()

    # --- paho callbacks (run synchronously inside loop_read / loop_misc)

    def _make_link(self) -> Link:
        conn = self.conn
        v5 = conn.protocol == V5
        link = Link(
            CallbackAPIVersion.VERSION2,
            client_id=self._client_id,
            clean_session=None if v5 else not conn.persistent,
            protocol=_PROTOCOLS[conn.protocol],
            reconnect_on_failure=False,
            manual_ack=True,
        )
        if conn.username or conn.password:
            link.username_pw_set(conn.username or None, conn.password or None)
        props = None
        if v5:
            props = Properties(PacketTypes.CONNECT)  # type: ignore[no-untyped-call]
            props.SessionExpiryInterval = conn.session_expiry if conn.persistent else 0
        keepalive = max(1, round(conn.keep_alive)) if conn.keep_alive else 0
        if v5:
            link.connect_async(
                conn.host, conn.port, keepalive, clean_start=not conn.persistent, properties=props
            )
        else:
            link.connect_async(conn.host, conn.port, keepalive)
        link.on_connect = self._on_connect
        link.on_disconnect = self._on_disconnect
        link.on_message = self.router.on_message
        link.on_subscribe = self._on_subscribe
        link.on_publish = self._on_publish
        return link

    def _on_connect(self, _c: Any, _u: Any, flags: Any, reason: ReasonCode, _p: Any) -> None:
        if reason.is_failure:
            self._session_ended = f"broker refused the connection: {reason}"
            return  # the broker closes the connection; the reader reports it
        filters = self.router.filters()
        waiting = [event for f, qos in filters if (event := self._send_subscribe(f, qos)) is not None]
        self._connected_now(bool(getattr(flags, "session_present", False)), pending=len(waiting))

    def _on_disconnect(self, _c: Any, _u: Any, flags: Any, reason: ReasonCode, _p: Any) -> None:
        # Only a DISCONNECT packet from the broker (MQTT 5) carries a reason; a lost connection is reported by
        # the reader ("connection closed by the broker").
        if not self._session_ended and getattr(flags, "is_disconnect_packet_from_server", False):
            self._session_ended = f"disconnected by the broker: {reason}"

    def _send_subscribe(self, topic_filter: str, qos: int) -> trio.Event | None:
        rc, mid = self._link.subscribe(topic_filter, qos)
        if rc != paho.MQTT_ERR_SUCCESS or mid is None:
            LOGGER.warning("mqtt %s: cannot subscribe %r: %s", self.conn.server, topic_filter, rc)
            return None
        event = trio.Event()
        self._pending_subacks[mid] = (topic_filter, event)
        return event

    def _on_subscribe(self, _c: Any, _u: Any, mid: int, reasons: list[ReasonCode], _p: Any) -> None:
        topic_filter, event = self._pending_subacks.pop(mid, ("", trio.Event()))
        for reason in reasons:
            if reason.is_failure:
                LOGGER.warning(
                    "mqtt %s: the broker refused the subscription to %r: %s",
                    self.conn.server,
                    topic_filter,
                    reason,
                )
        event.set()
        if self.metrics.status != CONNECTED and self._connected.is_set() and not self._pending_subacks:
            self._update(status=CONNECTED)  # connected counts once the first subscriptions are in place

    def _on_publish(self, _c: Any, _u: Any, mid: int, reason: ReasonCode, _p: Any) -> None:
        if reason.is_failure:
            self._ack_reasons[mid] = str(reason)
        event = self._acks.get(mid)
        if event is not None:
            event.set()

    # --- state

    def _connected_now(self, session_present: bool, pending: int) -> None:
        self._connected.set()
        LOGGER.info(
            "mqtt %s connected as %r%s",
            self.conn.server,
            self._client_id,
            " (session resumed)" if session_present else "",
        )
        self._update(last_connected_time=self._clock.now_ms(), **({} if pending else {"status": CONNECTED}))

    def _fail_waiters(self, reason: str) -> None:
        for mid, event in self._acks.items():
            self._ack_reasons.setdefault(mid, reason)
            event.set()
        for _, event in self._pending_subacks.values():
            event.set()
        self._pending_subacks.clear()

    def _lost(self, reason: str) -> None:
        previous = self.metrics.status
        if self._connected.is_set():
            self._connected = trio.Event()
        if previous == DISCONNECTED:
            self._update(last_disconnected_message=reason)  # another failed retry: not a state change
            return
        self._update(
            status=DISCONNECTED, last_disconnected_time=self._clock.now_ms(), last_disconnected_message=reason
        )
        verb = "disconnected" if previous == CONNECTED else "cannot connect"
        LOGGER.warning("mqtt %s %s: %s; retrying", self.conn.server, verb, reason)

    def _backoff(self, failures: int) -> float:
        low = max(self.conn.reconnect_min_delay, MIN_RETRY_DELAY)
        high = max(self.conn.reconnect_max_delay, low)
        ceiling = min(high, low * 2.0 ** min(failures - 1, 60))
        return self._rng.uniform(max(low, ceiling / 2), ceiling)  # equal jitter: no redial in lockstep

    def _update(self, **changes: Any) -> None:
        self.metrics = attrs.evolve(self.metrics, **changes)
        for user in self._users:
            mirror_connection(self.metrics, user)
        self._changed.set()
        self._changed = trio.Event()

    def __repr__(self) -> str:
        status = {CONNECTING: "connecting", CONNECTED: "connected", DISCONNECTED: "disconnected"}
        return f"<MqttClient {self.conn.server} {status[self.metrics.status]} users={len(self._users)}>"


def _write_queued(link: Link, pipe: Pipe) -> None:
    # paho queues packets made inside its callbacks (our SUBSCRIBEs on CONNACK) without writing them.
    if link.want_write() and not pipe.closed:
        link.loop_write()


async def _flush(stream: trio.abc.Stream, pipe: Pipe) -> None:
    try:
        if pipe.pending_out:
            await stream.send_all(pipe.take_out())
    except (trio.BrokenResourceError, trio.ClosedResourceError, OSError):
        pass
