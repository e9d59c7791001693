"""Which streams an incoming MQTT message feeds, and its delivery into their rules.

A connection's ``Router`` holds the topic filters its sources subscribed (one broker subscription per distinct
filter, at the highest QoS asked for) and, per filter, the streams reading it. Messages paho parsed from one
socket read are collected (``on_message``) and delivered together (``deliver``): per stream, each payload is
decompressed and decoded once into events (``meta``: topic, qos, messageId, and MQTT 5 user properties), one
batch per stream and read, awaited into every subscribed rule's outbox; then QoS 1/2 messages are acknowledged.
A payload that cannot be decoded becomes an ``ErrorItem`` (counted by the rule); the others flow.
"""

from __future__ import annotations

import zlib
from typing import Any, final

import paho.mqtt.client as paho
import trio

from runtime.clock import Clock
from runtime.formats.decode import DecodeError, Decoder
from runtime.model import Batch, ErrorItem, Event, Outbox, Row

BATCH = 256  # messages per batch at most (one socket read may complete more)
ROUTE_CACHE = 10_000  # topics whose matching filters are remembered; cleared beyond this


@final
class Subscription:
    """One source (one rule's stream) reading a topic filter."""

    __slots__ = (
        "decoder",
        "decompression",
        "ended",
        "eof",
        "max_size",
        "outbox",
        "qos",
        "stream",
        "topic_filter",
    )

    def __init__(
        self,
        topic_filter: str,
        qos: int,
        stream: str,
        decoder: Decoder,
        outbox: Outbox,
        decompression: str = "",
        eof: bytes = b"",
        max_size: int = 16 << 20,
    ) -> None:
        self.topic_filter = topic_filter
        self.qos = qos
        self.stream = stream
        self.decoder = decoder
        self.outbox = outbox
        self.decompression = decompression
        self.eof = eof
        self.max_size = max_size  # largest decompressed payload accepted
        self.ended = trio.Event()  # set when the stream's eofMessage arrived: the source ends


@final
class _Group:
    """The subscriptions of one stream on one filter: a message is decoded once for all of them."""

    __slots__ = ("events", "first", "subs")

    def __init__(self, first: Subscription) -> None:
        self.first = first  # its decoder, decompression and eof serve the group
        self.subs: list[Subscription] = [first]
        self.events: Batch = []  # being filled during one delivery


@final
class _Filter:
    __slots__ = ("groups", "match", "name")

    def __init__(self, name: str) -> None:
        self.name = name
        self.match = shared_topic(name)
        self.groups: dict[str, _Group] = {}

    @property
    def qos(self) -> int:
        return max(sub.qos for group in self.groups.values() for sub in group.subs)


def shared_topic(topic_filter: str) -> str:
    """The filter messages are matched against: ``$share/<group>/<filter>`` and ``$queue/<filter>`` -> filter."""
    if topic_filter.startswith("$share/"):
        parts = topic_filter.split("/", 2)
        return parts[2] if len(parts) == 3 else topic_filter
    if topic_filter.startswith("$queue/"):
        return topic_filter[len("$queue/") :]
    return topic_filter


_WBITS = {"gzip": 16 + zlib.MAX_WBITS, "zlib": zlib.MAX_WBITS, "flate": -zlib.MAX_WBITS}


def decompress(kind: str, data: bytes, limit: int) -> bytes:
    """``data`` decompressed (``gzip``, ``zlib`` or ``flate``), never more than ``limit`` bytes of it.

    Raises:
      ValueError: the output would exceed ``limit`` (a decompression bomb is refused, not inflated), or the
        input is truncated. zlib.error: not compressed data.
    """
    inflater = zlib.decompressobj(_WBITS[kind])
    out = inflater.decompress(data, limit + 1)
    if len(out) > limit or inflater.unconsumed_tail:
        raise ValueError(f"decompressed payload exceeds maxMessageSize ({limit} bytes)")
    if not inflater.eof:
        raise ValueError(f"truncated {kind} payload")
    return out


@final
class Router:
    """The topic filters of one connection and the streams they feed (see the module docstring)."""

    def __init__(self, clock: Clock, label: str) -> None:
        self._clock = clock
        self._label = label
        self._filters: dict[str, _Filter] = {}
        self._routes: dict[str, list[_Filter]] = {}
        self._inbox: list[paho.MQTTMessage] = []
        self.delivering = False  # a delivery is waiting for a full rule buffer

    def filters(self) -> list[tuple[str, int]]:
        """Every filter to subscribe, with its QoS."""
        return [(f.name, f.qos) for f in self._filters.values()]

    def add(self, sub: Subscription) -> bool:
        """Register a source; True when the broker must be (re)subscribed (a new filter or a higher QoS)."""
        entry = self._filters.get(sub.topic_filter)
        before = -1 if entry is None else entry.qos
        if entry is None:
            entry = self._filters[sub.topic_filter] = _Filter(sub.topic_filter)
            self._routes.clear()
        group = entry.groups.get(sub.stream)
        if group is None:
            entry.groups[sub.stream] = _Group(sub)
        else:
            group.subs.append(sub)
        return entry.qos > before

    def remove(self, sub: Subscription) -> bool:
        """Unregister a source; True when its filter has no reader left (unsubscribe it)."""
        entry = self._filters.get(sub.topic_filter)
        if entry is None:
            return False
        group = entry.groups.get(sub.stream)
        if group is not None and sub in group.subs:
            group.subs.remove(sub)
            if not group.subs:
                del entry.groups[sub.stream]
            elif group.first is sub:
                group.first = group.subs[0]
        if entry.groups:
            return False
        del self._filters[sub.topic_filter]
        self._routes.clear()
        return True

    def on_message(self, _client: Any, _userdata: Any, message: paho.MQTTMessage) -> None:
        """paho's on_message: collect; ``deliver`` hands the messages of one read over together."""
        self._inbox.append(message)

    async def deliver(self, link: paho.Client) -> None:
        """Deliver the collected messages to their streams' rules, then acknowledge the QoS 1/2 ones.

        Waits while a rule's buffer is full (``delivering`` is true meanwhile): the reader stops, and with it
        the acknowledgements, so the broker holds the backlog.
        """
        while self._inbox:
            inbox, self._inbox = self._inbox[:BATCH], self._inbox[BATCH:]
            self.delivering = True
            try:
                await self._deliver(inbox)
            finally:
                self.delivering = False
            for message in inbox:
                if message.qos:
                    link.ack(message.mid, message.qos)

    def _targets(self, topic: str) -> list[_Filter]:
        routes = self._routes.get(topic)
        if routes is None:
            if len(self._routes) >= ROUTE_CACHE:
                self._routes.clear()
            routes = self._routes[topic] = [
                f for f in self._filters.values() if paho.topic_matches_sub(f.match, topic)
            ]
        return routes

    async def _deliver(self, inbox: list[paho.MQTTMessage]) -> None:
        ts = self._clock.now_ms()
        touched: dict[int, _Group] = {}  # the groups given events, in order
        for message in inbox:
            try:
                topic = message.topic
            except UnicodeDecodeError:
                continue  # not a valid topic name: brokers refuse these, so this is a broken broker
            targets = self._targets(topic)
            if not targets:
                continue
            meta: Row = {"topic": topic, "qos": message.qos, "messageId": message.mid}
            user = getattr(message.properties, "UserProperty", None) if message.properties else None
            if user:
                meta["properties"] = dict(user)
            for entry in targets:
                payload = message.payload
                for group in entry.groups.values():
                    touched[id(group)] = group
                    self._decode(group, payload if isinstance(payload, bytes) else bytes(payload), ts, meta)
        for group in touched.values():
            batch, group.events = group.events, []
            if not batch:
                continue
            subs = tuple(group.subs)
            last = len(subs) - 1
            for index, sub in enumerate(subs):
                if sub.ended.is_set():
                    continue
                try:
                    # Each rule gets its own list (the last one the original): operators may keep what they get.
                    await sub.outbox.send(batch if index == last else list(batch))
                except (trio.BrokenResourceError, trio.ClosedResourceError):
                    continue  # its rule is stopping; it unsubscribes on the way out

    def _decode(self, group: _Group, payload: bytes, ts: int, meta: Row) -> None:
        first = group.first
        if first.eof and payload == first.eof:
            for sub in group.subs:
                sub.ended.set()
            return
        try:
            if first.decompression:
                payload = decompress(first.decompression, payload, first.max_size)
            group.events.extend([Event(row, ts, meta) for row in first.decoder(payload)])
        except (DecodeError, ValueError, zlib.error) as exc:
            group.events.append(ErrorItem(f"{self._label} topic {meta['topic']}: {exc}"))
        except Exception as exc:  # a faulty decoder must not take the shared connection (and engine) down
            group.events.append(
                ErrorItem(f"{self._label} topic {meta['topic']}: decoder failed: {type(exc).__name__}: {exc}")
            )
