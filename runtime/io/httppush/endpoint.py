"""One URL path of the data server that takes pushed bodies: who reads it, who may push, and taking a body.

A ``PushEndpoint`` exists while at least one rule's httppush source is registered on its path (``PushRoutes``
adds and removes them for ``DataServer.push``). Streams register per HTTP method, so one path may take POST for
one stream and PUT for another; all registrants of a path share its limits and token (one conf group's settings).

``PushEndpoint.take`` is where a body becomes rows: it is decoded once per stream and handed to every rule
reading that stream (fan-out), and it returns the HTTP answer only once every rule has taken the rows:

- a rule under the default ``bufferFullPolicy`` ``block`` makes the request wait while its buffer is full
  (backpressure on the client, as a websocket client's socket stops being read);
- a rule under a drop policy never waits: when its buffer is full, the request is refused with 503 and no rule
  gets its rows (checked for all such rules before any is given them), so a client can send them again without
  duplicating them anywhere;
- a body that a stream's FORMAT cannot decode is refused with 400 and the reason, and counted as an error of
  that stream's rules (an ``ErrorItem``, as the websocket source does); no rule gets rows from it.
"""

from __future__ import annotations

import hmac
import logging
from collections.abc import Mapping
from typing import final
from urllib.parse import parse_qs

import attrs
import trio

from runtime.clock import Clock
from runtime.errors import DecodeError, SourceError
from runtime.formats.decode import Decoder
from runtime.io.httppush.conf import PushConf, path_differences
from runtime.metrics import ConnectionMetrics
from runtime.model import Batch, ErrorItem, Event, Outbox, Row

LOGGER = logging.getLogger("oort.httppush")

OK, BAD_REQUEST, UNAUTHORIZED, FORBIDDEN, UNAVAILABLE = 200, 400, 401, 403, 503


@final
@attrs.define(eq=False)
class Pusher:
    """One rule's httppush source on a path and method.

    ``channel`` is the rule's buffer when the outbox is a drop-policy wrapper around it (see ``_drop_channel``):
    the endpoint then checks for room and refuses instead of letting the wrapper drop silently.
    """

    outbox: Outbox
    clock: Clock
    metrics: ConnectionMetrics
    owner: str = ""  # "rule r1 (stream a)", for messages naming who holds a path
    channel: trio.MemorySendChannel[Batch] | None = None
    pending: set[trio.CancelScope] = attrs.Factory(set)  # sends blocked on this rule, cancelled on leave
    active: bool = True


@final
@attrs.define(eq=False)
class PushGroup:
    """The rules reading one stream on a path and method: they share one decode per body."""

    decoder: Decoder
    pushers: list[Pusher] = attrs.Factory(list)


@final
@attrs.define(eq=False)
class PushEndpoint:
    """One URL path: its settings (from the first registrant's conf group) and its streams by method.

    Attributes:
      refused: requests answered 503 because a drop-policy rule's buffer was full (since the path appeared).
    """

    path: str
    conf: PushConf
    methods: dict[str, dict[str, PushGroup]] = attrs.Factory(dict)  # method -> stream key -> group
    refused: int = 0

    @property
    def pushers(self) -> list[Pusher]:
        return [p for groups in self.methods.values() for group in groups.values() for p in group.pushers]

    def refusal(self, headers: Mapping[str, str], query: str) -> tuple[int, str] | None:
        """Why a request is refused before its body is read, as (status, reason), or None to take it.

        A missing token is 401 and a wrong one 403, as eKuiper's REST API answers; the token is compared in
        constant time and never shown.
        """
        conf = self.conf
        if conf.allowed_origins and headers.get("origin", "") not in conf.allowed_origins:
            return FORBIDDEN, "origin not allowed"
        if conf.token:
            offered = headers.get("authorization", "")
            offered = offered[7:].strip() if offered[:7].lower() == "bearer " else ""
            if not offered:
                offered = (parse_qs(query).get("token") or [""])[0]
            if not offered:
                return UNAUTHORIZED, "a token is required (Authorization: Bearer <token> or ?token=<token>)"
            if not hmac.compare_digest(offered.encode(), self.conf.token.encode()):
                return FORBIDDEN, "wrong token"
        return None

    async def take(self, method: str, body: bytes, meta: Row) -> tuple[int, str]:
        """Decode ``body`` for every stream on ``method`` and hand its rows to every rule reading them; the
        answer (status, text) once every rule took them, or why not.

        Answers: 200 ``ok``; 400 with the decode error (each failing stream's rules count it); 503 when a
        drop-policy rule's buffer is full (nobody got the rows) or no rule reads the path any more.

        Cancellation: nothing is answered; rules that took the rows before keep them.
        """
        groups = [group for group in self.methods.get(method, {}).values() if group.pushers]
        decoded: list[tuple[PushGroup, list[Row]]] = []
        failed: list[tuple[PushGroup, str]] = []
        for group in groups:
            try:
                decoded.append((group, group.decoder(body)))
            except (DecodeError, UnicodeDecodeError) as exc:
                failed.append((group, str(exc)))
        if failed:
            # Nobody gets the rows (the client is told they were not taken); each stream that cannot decode the
            # body counts the error, as a frame that does not decode counts for the websocket source.
            for group, reason in failed:
                await _hand_over(group.pushers, [ErrorItem(f"httppush {self.path}: {reason}")])
            return BAD_REQUEST, f"cannot decode the body: {failed[0][1]}"
        deliveries: list[tuple[Pusher, Batch]] = []
        for group, rows in decoded:
            ts = group.pushers[0].clock.now_ms()
            batch: Batch = [Event(row, ts, meta) for row in rows]
            last = len(group.pushers) - 1
            # Each rule gets its own list (the last one the original): operators may keep what they get.
            deliveries.extend((p, batch if i == last else list(batch)) for i, p in enumerate(group.pushers))
        # Drop-policy rules first, all at once and without a checkpoint between looking and sending: either all
        # of them have room and take the rows, or none does and the request is refused.
        dropping = [(p.channel, b) for p, b in deliveries if p.channel is not None]
        if not all(_has_room(channel) for channel, _ in dropping):
            self.refused += 1
            return UNAVAILABLE, "a rule reading this path is busy (its buffer is full); send again later"
        taken = 0
        for channel, batch in dropping:
            try:
                channel.send_nowait(batch)
                taken += 1
            except (trio.WouldBlock, trio.BrokenResourceError, trio.ClosedResourceError):
                pass  # the rule is stopping (room was checked above)
        for pusher, batch in deliveries:
            if pusher.channel is None:
                taken += await _hand_over([pusher], batch)
        if not taken:
            return UNAVAILABLE, "no rule took the rows: the rules reading this path stopped"
        return OK, "ok"


def _has_room(channel: trio.MemorySendChannel[Batch]) -> bool:
    """Whether ``send_nowait`` on ``channel`` would succeed now."""
    stats = channel.statistics()
    return stats.current_buffer_used < stats.max_buffer_size or stats.tasks_waiting_receive > 0


def _drop_channel(outbox: Outbox) -> trio.MemorySendChannel[Batch] | None:
    """The rule's buffer behind a drop-policy outbox, or None when sending to ``outbox`` may simply wait.

    Under ``block`` the rule runtime hands a source its buffer itself (a memory channel: ``send`` waits while it
    is full). Under ``dropOldest``/``dropNewest`` it hands a wrapper whose ``send`` never waits and drops without
    telling the source; the ``Outbox`` protocol has no way to offer a batch and learn whether it was taken, so
    the wrapper's buffer (its ``_send`` channel) is used directly to check for room. Any other outbox (a join's
    per-stream tagger, a table) is awaited and applies its own policy.
    """
    if isinstance(outbox, trio.MemorySendChannel):
        return None
    inner = getattr(outbox, "_send", None)
    return inner if isinstance(inner, trio.MemorySendChannel) else None


async def _hand_over(pushers: list[Pusher], batch: Batch) -> int:
    """Give ``batch`` to each pusher's rule, waiting while a ``block`` buffer is full; returns how many took it.

    The per-send scope lets an unregistering rule free a request blocked on its full buffer.
    """
    taken = 0
    last = len(pushers) - 1
    for index, pusher in enumerate(pushers):
        if not pusher.active:
            continue
        items = batch if index == last else list(batch)
        outbox = pusher.outbox
        if isinstance(outbox, trio.MemorySendChannel):
            try:
                outbox.send_nowait(items)  # the common case: room in the rule's buffer
                taken += 1
                continue
            except trio.WouldBlock:
                pass
            except (trio.BrokenResourceError, trio.ClosedResourceError):
                continue  # the rule is stopping
        with trio.CancelScope() as scope:
            pusher.pending.add(scope)
            try:
                await outbox.send(items)
                taken += 1
            except (trio.BrokenResourceError, trio.ClosedResourceError):
                pass  # the rule is stopping
            finally:
                pusher.pending.discard(scope)
    return taken


@final
class PushRoutes:
    """The push paths of one data server: registration (for ``DataServer.push``) and lookup (for requests)."""

    def __init__(self, public: bool) -> None:
        self._paths: dict[str, PushEndpoint] = {}
        self._public = public  # the server listens beyond loopback: a path without a token is logged

    def get(self, path: str) -> PushEndpoint | None:
        return self._paths.get(path)

    def counts(self) -> dict[str, int]:
        """Live push paths and registered sources (both 0 when idle)."""
        return {"paths": len(self._paths), "pushers": sum(len(ep.pushers) for ep in self._paths.values())}

    def register(
        self,
        path: str,
        method: str,
        stream_key: str,
        decoder: Decoder,
        pusher: Pusher,
        conf: PushConf,
    ) -> None:
        """Add ``pusher`` to ``stream_key``'s group on ``path`` and ``method`` (a new group decodes with
        ``decoder``).

        Raises:
          SourceError: the path is served with other settings (token, origins, size cap).
        """
        endpoint = self._paths.get(path)
        if endpoint is None:
            endpoint = self._paths[path] = PushEndpoint(path, conf)
            if not conf.token and self._public:
                LOGGER.warning("httppush path %s takes data from anyone who can reach the data server", path)
        else:
            # One set of settings per path: a second conf group must not loosen (or silently lose) the first
            # one's token, origins or size cap, whichever rule happens to start first.
            differ = path_differences(endpoint.conf, conf)
            if differ:
                holders = ", ".join(sorted({p.owner for p in endpoint.pushers if p.owner})) or "another rule"
                raise SourceError(
                    f"httppush path {path} is served by {holders} with other settings ({', '.join(differ)}); "
                    f"{pusher.owner or 'this rule'} must use the same conf group to share it"
                )
        pusher.channel = _drop_channel(pusher.outbox)
        group = endpoint.methods.setdefault(method, {}).setdefault(stream_key, PushGroup(decoder))
        group.pushers.append(pusher)
        pusher.metrics.status = 1  # the path is served: clients can push (eKuiper reports "connected" too)
        pusher.metrics.last_connected_time = pusher.clock.now_ms()

    def unregister(self, path: str, method: str, stream_key: str, pusher: Pusher) -> None:
        """Remove ``pusher``; requests blocked on its rule's buffer are let go (they answer without it)."""
        pusher.active = False
        for scope in pusher.pending:
            scope.cancel()
        pusher.metrics.status = 0
        endpoint = self._paths.get(path)
        if endpoint is None:
            return
        groups = endpoint.methods.get(method, {})
        group = groups.get(stream_key)
        if group is not None and pusher in group.pushers:
            group.pushers.remove(pusher)
            if not group.pushers:
                del groups[stream_key]
            if not groups:
                del endpoint.methods[method]
        if not endpoint.methods:
            del self._paths[path]
