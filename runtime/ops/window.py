"""Window state machines (eKuiper docs sqls/windows.md), pure and trio-free: they buffer events and cut them
into panes.

Every window has the same three-call surface, driven by the rule's window operator:

* ``fire(now_ms)`` emits the panes whose timer is due at or before ``now_ms`` (called before each event with
  the event's time, so an event at exactly a window end belongs to the next window, and on timer expiry);
* ``add(event)`` buffers one event and returns the panes it triggers at once (count and sliding windows);
* ``next_due`` is the epoch ms of the next timer, or None: the operator waits on ``trio.move_on_at`` for it.

Times are epoch milliseconds of the rule clock (processing time: ingestion time).
"""

from __future__ import annotations

import heapq
from collections.abc import Callable, Collection, Hashable, Mapping
from types import MappingProxyType
from typing import TypeVar, final

import attrs

from runtime.model import Event
from runtime.sql.windows import WindowKindName

UNIT_MS: Mapping[str, int] = MappingProxyType(
    {"ms": 1, "ss": 1000, "mi": 60_000, "hh": 3_600_000, "dd": 86_400_000}
)
# The next larger unit, within which a window's first end is aligned (§C.5 "Alignment").
_ALIGN_BASE_MS: Mapping[str, int] = MappingProxyType(
    {"ms": 1000, "ss": 60_000, "mi": 3_600_000, "hh": 86_400_000, "dd": 86_400_000}
)

Trigger = Callable[[Event], bool]
PartitionKey = Callable[[Event], Hashable]
_W = TypeVar("_W", bound="Window")


@final
@attrs.frozen
class WindowSpec:
    """A window's parameters, converted to ms (timed windows) or event counts (count windows).

    ``size``: window length (session: max duration; count: n). ``hop``: hopping advance (count: m).
    ``delay``: sliding emission delay. ``timeout``: session inactivity timeout. ``unit``: the time unit.
    """

    kind: WindowKindName
    size: int
    hop: int = 0
    delay: int = 0
    timeout: int = 0
    unit: str = "ms"


@final
@attrs.frozen
class Pane:
    """One window's content when it fires: ``[start, end]`` bounds (for window_start/end()) and its events."""

    start: int
    end: int
    events: list[Event]


def aligned_end(start_ms: int, unit: str, value: int) -> int:
    """The first window end after ``start_ms``: aligned to ``value`` units within the next larger unit."""
    step = value * UNIT_MS[unit]
    base_len = _ALIGN_BASE_MS[unit]
    base = start_ms - start_ms % base_len
    return base + step * ((start_ms - base) // step + 1)


@attrs.frozen
class WindowStart:
    """What a rule run gives a new window: its spec, the run's start time, the OVER (WHEN) trigger (sliding) and
    the conditions (state)."""

    spec: WindowSpec
    start_ms: int
    trigger: Trigger | None = None
    state: StateConditions | None = None


class Window:
    """Base of the window state machines (see the module docstring for the protocol).

    Each concrete class is registered with ``@window_class(kind, ...)`` for the ``WindowSpec.kind`` values it
    runs (the kinds of ``runtime.sql.windows.WINDOW_KINDS``) and builds itself from a ``WindowStart`` in ``make``.
    """

    next_due: int | None = None

    @classmethod
    def make(cls, start: WindowStart) -> Window:
        raise NotImplementedError

    def add(self, event: Event) -> list[Pane]:
        raise NotImplementedError

    def fire(self, now_ms: int) -> list[Pane]:
        return []


_CLASSES: dict[str, type[Window]] = {}


def window_class(*kinds: WindowKindName) -> Callable[[type[_W]], type[_W]]:
    """Register a ``Window`` class as the state machine of the window kinds ``kinds``."""

    def register(cls: type[_W]) -> type[_W]:
        for kind in kinds:
            _CLASSES[kind] = cls
        return cls

    return register


@final
@window_class("tumbling", "hopping")
class PeriodicWindow(Window):
    """Tumbling and hopping windows: a timer at each window end emits ``[end-size, end)``, also when empty."""

    @classmethod
    def make(cls, start: WindowStart) -> Window:
        return cls(start.spec, start.start_ms)

    def __init__(self, spec: WindowSpec, start_ms: int) -> None:
        self._size = spec.size
        self._tumbling = spec.kind == "tumbling"
        self._step = spec.size if self._tumbling else spec.hop
        self._prev_end = start_ms
        self._first = True
        self._buf: list[Event] = []
        self.next_due = aligned_end(start_ms, spec.unit, self._step // UNIT_MS[spec.unit])

    def add(self, event: Event) -> list[Pane]:
        self._buf.append(event)
        return []

    def fire(self, now_ms: int) -> list[Pane]:
        out: list[Pane] = []
        while self.next_due is not None and self.next_due <= now_ms:
            end = self.next_due
            lo = end - self._size
            rows = [e for e in self._buf if e.ts < end and (self._tumbling or e.ts >= lo)]
            if self._tumbling:
                start = self._prev_end  # the first tumbling window starts at the start time, not aligned
            elif self._first:
                start = self._prev_end - self._step  # eKuiper: the first hopping window_start is start − hop
            else:
                start = lo
            self._first = False
            out.append(Pane(start, end, rows))
            self._prev_end = end
            self.next_due = end + self._step
            keep_from = self.next_due - self._size  # the oldest time the next window still covers
            self._buf = [e for e in self._buf if e.ts >= keep_from]
        return out


@final
@window_class("sliding")
class SlidingWindow(Window):
    """Per triggering event t: ``[t-size, t]`` at once, or with a delay d ``[t-size, t+d)`` at t+d."""

    @classmethod
    def make(cls, start: WindowStart) -> Window:
        return cls(start.spec, start.trigger)

    def __init__(self, spec: WindowSpec, trigger: Trigger | None) -> None:
        self._size = spec.size
        self._delay = spec.delay
        self._trigger = trigger
        self._buf: list[Event] = []
        self._pending: list[int] = []  # emission times of delayed triggers, ascending

    def add(self, event: Event) -> list[Pane]:
        t = event.ts
        self._buf.append(event)
        oldest = (self._pending[0] - self._delay) if self._pending else t
        self._buf = [e for e in self._buf if e.ts >= oldest - self._size]
        if self._trigger is not None and not self._trigger(event):
            return []
        if self._delay:
            self._pending.append(t + self._delay)
            self.next_due = self._pending[0]
            return []
        return [Pane(t - self._size, t, [e for e in self._buf if e.ts >= t - self._size])]

    def fire(self, now_ms: int) -> list[Pane]:
        out: list[Pane] = []
        while self._pending and self._pending[0] <= now_ms:
            due = self._pending.pop(0)
            lo = due - self._delay - self._size
            out.append(Pane(lo, due, [e for e in self._buf if lo <= e.ts < due]))
        self.next_due = self._pending[0] if self._pending else None
        return out


@final
@window_class("session")
class SessionWindow(Window):
    """Closes ``timeout`` after its last event, or at a max-duration tick once it has lasted that long."""

    @classmethod
    def make(cls, start: WindowStart) -> Window:
        return cls(start.spec, start.start_ms)

    def __init__(self, spec: WindowSpec, start_ms: int) -> None:
        self._max = spec.size
        self._timeout = spec.timeout
        self._buf: list[Event] = []
        self._start: int | None = None  # window_start of the open session
        self._next_start: int | None = None  # set by a tick emission: the next session starts at the tick
        self._timeout_due: int | None = None
        self._tick = aligned_end(start_ms, spec.unit, spec.size // UNIT_MS[spec.unit])
        self.next_due = self._tick

    def add(self, event: Event) -> list[Pane]:
        if not self._buf:
            self._start = self._next_start if self._next_start is not None else event.ts
            self._next_start = None
        self._buf.append(event)
        self._timeout_due = event.ts + self._timeout
        self._update_due()
        return []

    def fire(self, now_ms: int) -> list[Pane]:
        out: list[Pane] = []
        while True:
            timeout = self._timeout_due if self._buf else None
            if timeout is not None and timeout <= now_ms and timeout < self._tick:
                out.append(self._close(timeout))
                self._next_start = None
            elif self._tick <= now_ms:
                tick, self._tick = self._tick, self._tick + self._max
                if self._buf and tick - self._buf[0].ts >= self._max:
                    out.append(self._close(tick))
                    self._next_start = tick
            else:
                break
        self._update_due()
        return out

    def _close(self, end: int) -> Pane:
        start = self._start if self._start is not None else end
        pane = Pane(start, end, self._buf)
        self._buf = []
        self._timeout_due = None
        return pane

    def _update_due(self) -> None:
        timeout = self._timeout_due if self._buf else None
        self.next_due = self._tick if timeout is None else min(timeout, self._tick)


@final
@window_class("count")
class CountWindow(Window):
    """Every ``m`` events, the latest ``n`` events (nothing until ``n`` exist); start = end = emission time."""

    @classmethod
    def make(cls, start: WindowStart) -> Window:
        return cls(start.spec)

    def __init__(self, spec: WindowSpec) -> None:
        self._n = spec.size
        self._m = spec.hop or spec.size
        self._buf: list[Event] = []
        self._since = 0

    def add(self, event: Event) -> list[Pane]:
        self._buf.append(event)
        if len(self._buf) > self._n:
            del self._buf[0]
        self._since += 1
        if len(self._buf) < self._n or self._since < self._m:
            return []
        self._since = 0
        events = list(self._buf)
        if self._m == self._n:
            self._buf.clear()
        return [Pane(event.ts, event.ts, events)]


@final
@attrs.frozen
class StateConditions:
    """``STATEWINDOW(begin, emit)`` (``emit`` None: ``STATEWINDOW(cond)``) and its ``OVER (PARTITION BY ...)``."""

    begin: Trigger
    emit: Trigger | None = None
    partition: PartitionKey | None = None


@final
class _StateStatus:
    __slots__ = ("events", "open", "start")

    def __init__(self) -> None:
        self.open = False
        self.start = 0
        self.events: list[Event] = []


@final
@window_class("state")
class StateWindow(Window):
    """Condition-driven windows (eKuiper's v2 state window), one per partition key; no timers.

    With ``begin`` and ``emit``: a closed window opens on an event for which ``begin`` is true (that event is
    its first); while open every event is collected, and one for which ``emit`` is true is collected, then the
    window is emitted and closed. With a single condition: the first true event opens the window; each later
    true event emits the window collected so far (without itself) and opens the next one with itself. A pane
    spans the opening event's time to the emitting event's time.
    """

    @classmethod
    def make(cls, start: WindowStart) -> Window:
        assert start.state is not None, "a state window needs its conditions"
        return cls(start.state)

    def __init__(self, conditions: StateConditions) -> None:
        self._begin = conditions.begin
        self._emit = conditions.emit
        self._partition = conditions.partition
        self._status: dict[Hashable, _StateStatus] = {}

    def add(self, event: Event) -> list[Pane]:
        key = self._partition(event) if self._partition is not None else None
        status = self._status.get(key)
        if status is None:
            status = self._status[key] = _StateStatus()
        if not status.open:
            if self._begin(event):
                status.open, status.start, status.events = True, event.ts, [event]
            return []
        if self._emit is not None:
            status.events.append(event)
            if not self._emit(event):
                return []
            pane = Pane(status.start, event.ts, status.events)
            status.open, status.events = False, []
            return [pane]
        if not self._begin(event):
            status.events.append(event)
            return []
        pane = Pane(status.start, event.ts, status.events)
        status.start, status.events = event.ts, [event]
        return [pane]


def make_window(
    spec: WindowSpec, start_ms: int, trigger: Trigger | None = None, state: StateConditions | None = None
) -> Window:
    """A fresh window state machine for a rule run that starts at ``start_ms`` (``state``: a state window's
    conditions, required for ``spec.kind == "state"``): the class registered for ``spec.kind``."""
    return _CLASSES[spec.kind].make(WindowStart(spec, start_ms, trigger, state))


def window_classes() -> dict[str, type[Window]]:
    """Each registered window kind and its class (what ``make_window`` picks from)."""
    return dict(_CLASSES)


@final
class Watermark:
    """Event-time ordering (§C.5): buffers events and releases them in timestamp order once the watermark
    (max event time seen − lateTolerance) has passed them; events older than the watermark are late and dropped.

    With several input ``streams`` (a join) the watermark is the minimum over the streams of their max event
    time, minus lateTolerance, and exists only once every stream has delivered an event.
    """

    def __init__(self, late_tolerance_ms: int, streams: Collection[str] = ()) -> None:
        self._late = late_tolerance_ms
        self._streams = frozenset(streams)
        self._max: dict[str, int] = {}
        self._heap: list[tuple[int, int, Event]] = []
        self._seq = 0  # keeps arrival order among equal timestamps
        self.value: int | None = None
        self.dropped = 0

    def push(self, event: Event, stream: str = "") -> list[Event]:
        """Accept one event (of input ``stream``); returns the events now released, in timestamp order."""
        if self.value is not None and event.ts < self.value:
            self.dropped += 1
            return []
        heapq.heappush(self._heap, (event.ts, self._seq, event))
        self._seq += 1
        mark = event.ts - self._late
        if self._streams:
            if event.ts > self._max.get(stream, event.ts - 1):
                self._max[stream] = event.ts
            if len(self._max) < len(self._streams):
                return []
            mark = min(self._max.values()) - self._late
        if self.value is None or mark > self.value:
            self.value = mark
        released: list[Event] = []
        while self._heap and self._heap[0][0] <= self.value:
            released.append(heapq.heappop(self._heap)[2])
        return released
