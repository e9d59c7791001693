"""The in-process pub/sub bus of eKuiper's ``memory`` connector: topics, MQTT-style filters, subscriptions.

The bus is engine-scoped (``Services.memory``): rules chain through it (one rule's memory sink feeds another
rule's memory stream) and REST ``POST /memory/{topic}`` publishes into it.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import final

import trio

from runtime.errors import SinkError, SourceError
from runtime.model import Row

Published = tuple[str, list[Row]]
"""What a subscription receives: the concrete topic and the rows published to it in one call."""

DEFAULT_SUBSCRIPTION_BUFFER = 1024  # batches a memory source may lag behind before publishers block
_MATCH_CACHE_LIMIT = 4096  # distinct topics remembered; past this the cache restarts (unbounded topic names)


def validate_filter(topic_filter: str) -> list[str]:
    """Split an MQTT-style topic filter into levels, checking the wildcards.

    ``+`` must be a whole level; ``#`` must be the whole last level.

    Raises:
      SourceError: an empty filter or a misplaced wildcard.
    """
    if not topic_filter:
        raise SourceError("memory topic filter must not be empty")
    levels = topic_filter.split("/")
    for i, level in enumerate(levels):
        if level in ("+", "#"):
            if level == "#" and i != len(levels) - 1:
                raise SourceError(f"invalid memory topic filter {topic_filter!r}: '#' must be the last level")
        elif "+" in level or "#" in level:
            raise SourceError(
                f"invalid memory topic filter {topic_filter!r}: a wildcard must be a whole level"
            )
    return levels


def _levels_match(filter_levels: list[str], topic_levels: list[str]) -> bool:
    for i, level in enumerate(filter_levels):
        if level == "#":
            return True  # matches the rest, including nothing ("a/#" matches "a", as in MQTT)
        if i >= len(topic_levels):
            return False
        if level != "+" and level != topic_levels[i]:
            return False
    return len(filter_levels) == len(topic_levels)


def topic_matches(topic_filter: str, topic: str) -> bool:
    """Whether a concrete ``topic`` matches ``topic_filter`` (``+`` one level, ``#`` the rest, exact otherwise).

    Raises:
      SourceError: ``topic_filter`` is malformed.
    """
    return _levels_match(validate_filter(topic_filter), topic.split("/"))


@final
class _Subscription:
    __slots__ = ("levels", "recv", "send", "topic_filter")

    def __init__(self, topic_filter: str, levels: list[str], buffer: int) -> None:
        self.topic_filter = topic_filter
        self.levels = levels
        self.send, self.recv = trio.open_memory_channel[Published](buffer)


@final
class MemoryBus:
    """Topic-based pub/sub between rules, the REST API and tests; delivery blocks on full subscribers.

    Not thread-safe (trio tasks only). Matching subscriptions are cached per published topic, so a steady
    stream of publishes does no filter matching; any (un)subscribe clears the cache.
    """

    def __init__(self) -> None:
        self._subscriptions: list[_Subscription] = []
        self._matches: dict[str, tuple[_Subscription, ...]] = {}

    @property
    def subscription_count(self) -> int:
        """Live subscriptions (tests use it to check that nothing leaks)."""
        return len(self._subscriptions)

    @property
    def cached_topic_count(self) -> int:
        """Topics whose matching subscriptions are cached."""
        return len(self._matches)

    @asynccontextmanager
    async def subscribe(
        self, topic_filter: str, buffer: int = DEFAULT_SUBSCRIPTION_BUFFER
    ) -> AsyncIterator[trio.MemoryReceiveChannel[Published]]:
        """Subscribe for the duration of the ``async with`` block.

        Args:
          topic_filter: exact topic or MQTT-style filter (``a/+/c``, ``a/#``, ``#``).
          buffer: how many publishes may wait unread before publishers block (0 = rendezvous).

        Yields: the receive channel of ``(topic, rows)`` publications. It is closed, and the subscription
        removed, when the block exits (normally, by error or cancellation).

        Raises:
          SourceError: the filter is malformed.
        """
        sub = _Subscription(topic_filter, validate_filter(topic_filter), buffer)
        self._subscriptions.append(sub)
        self._matches.clear()
        try:
            yield sub.recv
        finally:
            self._subscriptions.remove(sub)
            self._matches.clear()
            # Closing both ends wakes a publisher blocked on this subscriber (it gets Broken/Closed and
            # moves on) instead of leaving it stuck on a channel nobody reads.
            sub.send.close()
            sub.recv.close()

    def _matching(self, topic: str) -> tuple[_Subscription, ...]:
        found = self._matches.get(topic)
        if found is None:
            levels = topic.split("/")
            found = tuple(sub for sub in self._subscriptions if _levels_match(sub.levels, levels))
            if len(self._matches) >= _MATCH_CACHE_LIMIT:
                self._matches.clear()
            self._matches[topic] = found
        return found

    async def publish(self, topic: str, rows: list[Row]) -> None:
        """Deliver ``rows`` (one publication) to every subscription whose filter matches ``topic``.

        Blocks while a matching subscriber's buffer is full (backpressure; nothing is dropped). A
        subscriber that goes away meanwhile is skipped. Publishing with no subscriber is a no-op.

        Raises:
          SinkError: ``topic`` is empty or contains a wildcard.

        Cancellation: subscribers already served keep the rows; the rest do not get them.
        """
        if not topic or "+" in topic or "#" in topic:
            raise SinkError(
                f"invalid memory topic {topic!r}: publish needs a concrete topic without wildcards"
            )
        item = (topic, rows)
        for sub in self._matching(topic):
            try:
                await sub.send.send(item)
            except (trio.BrokenResourceError, trio.ClosedResourceError):
                continue  # unsubscribed while we waited: its rows are not wanted any more
