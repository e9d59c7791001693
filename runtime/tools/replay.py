"""Deterministic replay: run one rule over recorded, timestamped events on a mock clock and collect what it emits.

``replay`` goes through the real engine path (DDL parser, catalog, planner, ``run_rule``) with two test doubles
registered in a private ``Registry``: a ``mock`` source that emits recorded events when the clock reaches
their ``ts``, and a collector sink that keeps (or hands on) every emission. The caller provides the clock: under
``trio.testing.MockClock(autojump_threshold=0)`` virtual time jumps straight to the next event or window
timer, so a replay of hours of data takes milliseconds and gives the same result every time
(``oort replay`` does exactly that; tests use pytest-trio's ``autojump_clock``).

The time scheme is the one of eKuiper's rule tests (the feeder and mock clock of eKuiper's
``internal/topo/topotest``): the clock starts at ``clock_start_ms`` (default: the first event's ts floored to
the second), each source waits for its events' ``ts`` (or ``effective_ts``, TIMELEAP) in the recorded order
across streams, and the run ends right after the last event — windows that would only fire later are not
waited for. A file table's recorded rows (events without ``ts``) are written to a real file that the ``file``
source loads at rule start.

Speed and memory: consecutive events of one stream with one ``ts`` go to the rule as one batch after one clock
jump (``_Feed``), so virtual time moves per distinct timestamp, not per event; the recording can be a function
returning an iterator, read only as the sources take events; and ``on_emission`` hands each emission on as it
happens. ``oort replay`` uses all three: its memory is the rule's state, not the size of the recording.
"""

from __future__ import annotations

import base64
import datetime
import functools
import tempfile
from collections import deque
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from pathlib import Path
from types import MappingProxyType
from typing import Any, final

import attrs
import orjson
import tomli_w
import trio

from runtime.clock import Clock
from runtime.config import RuleOptions
from runtime.errors import PlanError, leaves
from runtime.formats.decode import checked_event, row_check
from runtime.io.contract import SinkSpec, SourceSpec
from runtime.io.file_source import FileSource
from runtime.io.registry import Registry
from runtime.io.services import Services
from runtime.io.sinktemplate import rendered_rows
from runtime.metrics import RuleMetrics
from runtime.model import Batch, ErrorItem, Event, Outbox, Row
from runtime.plan.catalog import Catalog
from runtime.plan.planner import plan_rule, source_type
from runtime.plan.ruledef import parse_rule
from runtime.rule.loop import RuleEnv
from runtime.rule.pipeline import run_rule
from runtime.sql.ast import StreamDef
from runtime.sql.parser import parse_ddl
from runtime.sql.values import go_str, typed

MOCK_META: Mapping[str, str] = MappingProxyType(
    {"topic": "mock"}
)  # what eKuiper's mock source attaches to every event (meta(topic))
COLLECTOR = "collector"


Events = Sequence[dict[str, Any]] | Callable[[], Iterable[dict[str, Any]]]
"""Recorded events: a sequence, or a function returning a fresh iterator over them (e.g. reading a file line by
line), so a long recording is read as a stream instead of being held in memory."""


def iterate(events: Events) -> Iterator[dict[str, Any]]:
    """A fresh pass over ``events``."""
    return iter(events()) if callable(events) else iter(events)


RUN_LIMIT = 1024  # events in one run at most: one timestamp with a million events is still sent in batches


def _effective_ts(event: dict[str, Any]) -> int:
    # TIMELEAP: where eKuiper's feeder delivered an event late, effective_ts says when.
    return int(event.get("effective_ts", event["ts"]))


@final
class _Feed:
    """Hands out the recorded events to the mock sources in recorded order, a run of events at a time.

    A run is a maximal sequence of consecutive timed events for one stream with one effective ts: the source
    sends it as one batch after one clock jump, so virtual time moves once per distinct timestamp, not once
    per event. With several streams (a join), a stream's source waits until every earlier run of the other
    streams was sent: trio wakes tasks sleeping until the same instant in no fixed order, so without these
    turns two events with one ``ts`` could reach the rule either way round. Events are read from the input
    only as the sources take them, so memory holds the runs in flight, not the recording.
    """

    def __init__(self, events: Events) -> None:
        self._events = events
        self._it: Iterator[dict[str, Any]] | None = None
        self._readers: dict[str, list[int]] = {}  # stream -> its sources (a self-join has two), in order
        self._held: dict[str, Any] | None = None  # the next timed event, read but not yet in a run
        self._runs: deque[tuple[int, int, list[dict[str, Any]]]] = (
            deque()
        )  # (reader, ts, events); head's turn
        self._ended = False
        self._in_flight = False  # a run was taken and is not sent yet: nobody else's turn until it is
        self._waiting = 0
        self._changed = trio.Event()

    def register(self, stream: str) -> int:
        """Called for every mock source when the rule is built, before any of them runs; returns its reader
        key for ``take``. Every source of a stream gets every run of it."""
        key = sum(len(keys) for keys in self._readers.values())
        self._readers.setdefault(stream, []).append(key)
        return key

    def _next_timed(self) -> dict[str, Any] | None:
        if self._held is not None:
            event, self._held = self._held, None
            return event
        if self._it is None:
            self._it = iterate(self._events)
        for event in self._it:
            if event.get("ts") is not None:
                return event
        return None

    def _read_run(self) -> None:
        """Queue the next run's turns (one per source of its stream), or mark the feed ended."""
        while True:
            event = self._next_timed()
            if event is None:
                self._ended = True
                return
            stream, ts = event.get("stream"), _effective_ts(event)
            if stream is None:  # an event without a stream goes to every stream
                readers = [r for name in sorted(self._readers) for r in self._readers[name]]
            else:
                readers = self._readers.get(stream, [])
            if not readers:
                continue
            run = [event]
            if len(readers) == 1 or stream is not None:
                # Events of one stream (or, with a single reader, without one) at one ts form one run. With
                # several readers, stream-less events go one by one, so every reader sees them interleaved
                # in the recorded order.
                assert self._it is not None and self._held is None  # _next_timed just took from the input
                raw = event.get("effective_ts", event["ts"])
                for follower in self._it:
                    at = follower.get("ts")
                    if at is None:
                        continue  # a file table's row: not sent by mock sources
                    if follower.get("stream") != stream or follower.get("effective_ts", at) != raw:
                        self._held = follower
                        break
                    run.append(follower)
                    if len(run) >= RUN_LIMIT:
                        break
            self._runs.extend((reader, ts, run) for reader in readers)
            return

    async def take(self, reader: int) -> tuple[int, list[dict[str, Any]]] | None:
        """The next run for ``reader`` once it is that run's turn: (effective ts, events); None at the end."""
        while True:
            if not self._in_flight:
                if not self._runs and not self._ended:
                    self._read_run()
                if not self._runs:
                    return None
                head, ts, events = self._runs[0]
                if head == reader:
                    self._runs.popleft()
                    self._in_flight = True
                    return ts, events
            self._waiting += 1
            try:
                await self._changed.wait()
            finally:
                self._waiting -= 1

    def done(self) -> None:
        """The run just taken was sent: let a source waiting for its turn look again."""
        self._in_flight = False
        if self._waiting:
            self._changed.set()
            self._changed = trio.Event()


@final
class MockSource:
    """Emits its stream's recorded events, each run of events with one ``ts`` as one batch when the rule clock
    reaches that ``ts`` (epoch ms)."""

    def __init__(self, spec: SourceSpec, feed: _Feed) -> None:
        self._clock = spec.ctx.clock
        self._check = row_check(spec.definition, spec.fields_read, describe=go_literal_typed)
        self._feed = feed
        self._meta: Row = dict(MOCK_META)  # shared by the events without meta of their own (never mutated)
        self._reader = feed.register(spec.stream)

    async def run(
        self, send: Outbox, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED
    ) -> None:
        task_status.started()
        feed, reader, clock = self._feed, self._reader, self._clock
        # Without strict validation a row needs no check: build the Event directly (no call per row more).
        make: Callable[[Row, int, Row], Event | ErrorItem] = (
            Event if self._check is None else functools.partial(checked_event, self._check)
        )
        while True:
            run = await feed.take(reader)
            if run is None:
                return
            ts, events = run
            await trio.sleep_until(clock.to_trio(ts))
            shared = self._meta
            batch: Batch = [
                make(
                    from_notation(event["data"]),
                    ts,
                    {**MOCK_META, **event["meta"]} if event.get("meta") else shared,
                )
                for event in events
            ]
            await send.send(batch)
            feed.done()


@final
class CollectorSink:
    """Keeps every message it is given (with ``sendSingle`` off: one list of rows per emission), or hands each
    to ``on_message``. Its write never waits, so the rule's operator task writes it directly."""

    def __init__(self, spec: SinkSpec, on_message: Callable[[list[Row]], None]) -> None:
        self._on_message = on_message

    async def open(self) -> None:
        await trio.lowlevel.checkpoint()

    def write_nowait(self, data: Row | list[Row] | str) -> None:
        if isinstance(data, str):  # a dataTemplate output: its rows, as the memory sink reads it back
            self._on_message(rendered_rows(data))
            return
        self._on_message(data if isinstance(data, list) else [data])

    async def write(self, data: Row | list[Row] | str) -> None:
        await trio.lowlevel.checkpoint()
        self.write_nowait(data)

    async def aclose(self) -> None:
        await trio.lowlevel.checkpoint()


def replay_registry(events: Events, out: list[list[Row]] | Callable[[list[Row]], None]) -> Registry:
    """A registry with only the ``mock`` source over ``events`` and the collector sink appending to ``out`` (or
    calling it with each emission). One registry serves one rule run: its sources share one pass over
    ``events``."""
    registry = Registry()
    feed = _Feed(events)
    on_message = out.append if isinstance(out, list) else out
    registry.register_source("mock", lambda spec: MockSource(spec, feed))
    # File tables read real files: ``replay`` writes their recorded rows (events without ``ts``) there.
    registry.register_source("file", FileSource)
    registry.register_sink(COLLECTOR, lambda spec: CollectorSink(spec, on_message))
    return registry


def default_clock_start(events: Events) -> int:
    """The first timed event's ts floored to the whole second (0 with no events)."""
    first = next((e for e in iterate(events) if e.get("ts") is not None), None)
    return (int(first["ts"]) // 1000) * 1000 if first is not None else 0


async def replay(
    ddl: str,
    rule: dict[str, Any],
    events: Events,
    clock_start_ms: int | None = None,
    *,
    metrics: RuleMetrics | None = None,
    on_emission: Callable[[list[Row]], None] | None = None,
) -> list[list[Row]]:
    """Run ``rule`` over ``events`` and return its emissions in order (error rows as ``{"error": ...}``).

    Args:
      ddl: one or more ``CREATE STREAM/TABLE`` statements separated by ``;`` at line ends.
      rule: rule JSON (``sql``, ``options``); its ``actions`` are replaced by the collector.
      events: ``{"stream", "ts", "data", ["meta"]}`` in arrival order; ``stream`` defaults to every stream. A
        function returning an iterator is read as a stream (once for the run, once more for the clock start
        and, when there are file tables, once for their rows).
      clock_start_ms: epoch ms the clock reads when the rule starts.
      metrics: receives the run's metric nodes (``source_*``, ``op_*``, ``sink_collector_0``) when given.
      on_emission: called with each emission as it happens; then nothing is kept and the result is empty.

    Raises:
      SqlError, PlanError, RuleError: the DDL or rule is invalid or not supported.
    """
    out: list[list[Row]] = []
    registry = replay_registry(events, out if on_emission is None else on_emission)
    start = default_clock_start(events) if clock_start_ms is None else clock_start_ms
    clock = Clock(start)
    with tempfile.TemporaryDirectory(prefix="oort-replay-") as tmp:
        catalog = Catalog(Path(tmp) / "data")
        for statement in split_ddl(ddl):
            stmt = parse_ddl(statement)
            if not isinstance(stmt, StreamDef):
                raise PlanError(f"replay: expected CREATE STREAM/TABLE, got {statement!r}")
            catalog.put_stream(_recorded(stmt))
        _write_file_tables(catalog, events, Path(tmp))
        raw = {**rule, "id": rule.get("id") or "replay", "actions": [{COLLECTOR: {}}]}
        rule_def = parse_rule(raw, RuleOptions())
        plan = plan_rule(rule_def, catalog, registry)
        env = RuleEnv(clock=clock, services=Services(), registry=registry, etc_dir=Path(tmp) / "etc")
        await run_rule(plan, env, RuleMetrics() if metrics is None else metrics)
    return out


def _recorded(stmt: StreamDef) -> StreamDef:
    """``stmt`` reading the recordings: every source but a file table's becomes the ``mock`` source, so a user
    replays the DDL they deploy (``TYPE="websocket"``, ``"memory"``...) without editing it."""
    if source_type(stmt) == "file" and stmt.kind == "table":
        return stmt
    return attrs.evolve(stmt, options=attrs.evolve(stmt.options, type="mock"))


def _write_file_tables(catalog: Catalog, events: Events, tmp: Path) -> None:
    """Write each file table's recorded rows (its events without ``ts``: loaded at rule start, as eKuiper's tests do)
    as the JSON file its DATASOURCE names, and the ``file`` conf groups pointing there, so the real file source
    loads them."""
    folder = tmp / "files"
    groups: dict[str, dict[str, Any]] = {"default": {"path": str(folder), "fileType": "json", "interval": 0}}
    for table in catalog.streams["table"].values():
        if source_type(table) != "file" or not table.options.datasource:
            continue
        rows = [
            from_notation(e["data"])
            for e in iterate(events)
            if e.get("stream") == table.name and e.get("ts") is None
        ]
        path = folder / table.options.datasource
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(orjson.dumps(rows, default=_json_default))
        if table.options.conf_key:
            groups.setdefault(table.options.conf_key, {})
    conf = tmp / "etc" / "sources" / "file.toml"
    conf.parent.mkdir(parents=True, exist_ok=True)
    conf.write_text(tomli_w.dumps(groups))


def split_ddl(ddl: str) -> list[str]:
    """DDL text -> statements: split at ``;`` ending a line (a ``;`` inside a quoted option stays)."""
    parts: list[str] = []
    current: list[str] = []
    for line in ddl.splitlines():
        current.append(line)
        if line.rstrip().endswith(";"):
            parts.append("\n".join(current).strip())
            current = []
    rest = "\n".join(current).strip()
    if rest:
        parts.append(rest)
    return [p for p in parts if p.strip(" ;\n")]


def from_notation(value: Any) -> Any:
    """Recorded JSON -> runtime values: ``{"$time_ms": n}`` is a UTC datetime, ``{"$bytes_b64": s}`` bytes.

    A value with nothing to convert is returned as it is (rows are never mutated), so flat rows cost no copy.
    """
    kind = type(value)
    if kind is dict:
        if len(value) == 1:
            if "$time_ms" in value:
                return datetime.datetime.fromtimestamp(value["$time_ms"] / 1000, tz=datetime.UTC)
            if "$bytes_b64" in value:
                return base64.b64decode(value["$bytes_b64"])
        for item in value.values():
            if type(item) in _NESTED:
                return {key: from_notation(item) for key, item in value.items()}
        return value
    if kind is list:
        for item in value:
            if type(item) in _NESTED:
                return [from_notation(item) for item in value]
        return value
    return value


_NESTED = frozenset({dict, list})  # JSON containers: what may hold notation to convert


def go_literal_typed(value: Any) -> str:
    """``typed`` for recorded data, whose integers are Go ``int`` literals in eKuiper's tests (``int(7)``)."""
    return f"int({go_str(value)})" if type(value) is int else typed(value)


def _json_default(value: Any) -> Any:
    if isinstance(value, datetime.datetime):
        return {"$time_ms": int(value.timestamp() * 1000)}
    if isinstance(value, bytes):
        return {"$bytes_b64": base64.b64encode(value).decode()}
    raise TypeError(f"cannot encode {type(value).__name__}")


def emission_json(rows: list[Row]) -> str:
    """One emission as a JSON array on one line (datetimes and bytes in the conformance notation)."""
    return orjson.dumps(rows, default=_json_default).decode()


def run_cli(
    ddl_path: Path, rule_path: Path, input_path: Path, clock_start_ms: int | None, emit: Callable[[str], None]
) -> None:
    """``oort replay``: replay the JSON-lines file ``input_path`` on a mock clock, reading it as a stream, and
    ``emit`` one JSON line per emission as it happens (memory holds the rule's state, not the recording)."""
    from trio.testing import MockClock  # only the replay verb needs it

    rule = orjson.loads(rule_path.read_bytes())
    ddl = ddl_path.read_text()

    def events() -> Iterator[dict[str, Any]]:
        with input_path.open("rb") as lines:
            for number, line in enumerate(lines, 1):
                if not line.strip():
                    continue
                try:
                    event = orjson.loads(line)
                except orjson.JSONDecodeError as exc:
                    raise ValueError(f"{input_path}:{number}: invalid JSON: {exc}") from None
                if not isinstance(event, dict) or "data" not in event:
                    raise ValueError(f"{input_path}:{number}: expected an object with 'data'")
                yield event

    try:
        trio.run(
            functools.partial(
                replay, ddl, rule, events, clock_start_ms, on_emission=lambda rows: emit(emission_json(rows))
            ),
            clock=MockClock(autojump_threshold=0),
        )
    except BaseExceptionGroup as group:
        # The input is read by the rule's source task: its failure arrives wrapped by the rule's nursery.
        first = leaves(group)[0]
        if isinstance(first, ValueError | OSError):
            raise first from None
        raise
