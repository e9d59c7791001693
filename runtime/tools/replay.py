"""Deterministic replay: run one rule over recorded, timestamped events on a mock clock and collect what it emits.

``replay`` goes through the real engine path (DDL parser, catalog, planner, ``run_rule``) with two test doubles
registered in a private ``Registry``: a ``mock`` source that emits each recorded event when the clock reaches
its ``ts``, and a collector sink that keeps every emission. The caller provides the clock: under
``trio.testing.MockClock(autojump_threshold=0)`` virtual time jumps straight to the next event or window
timer, so a replay of hours of data takes milliseconds and gives the same result every time
(``oort replay`` does exactly that; tests use pytest-trio's ``autojump_clock``).

The time scheme is the one of eKuiper's rule tests (its feeder and mock clock in eKuiper's ``internal/topo/topotest``): the clock starts at
``clock_start_ms`` (default: the first event's ts floored to the second), each source waits for its events'
``ts`` (or ``effective_ts``, TIMELEAP) in the recorded order across streams, and the run ends right after the
last event — windows that would only fire later are not waited for. A file table's recorded rows (events
without ``ts``) are written to a real file that the ``file`` source loads at rule start.
"""

from __future__ import annotations

import base64
import datetime
import tempfile
from collections.abc import Mapping, Sequence
from pathlib import Path
from types import MappingProxyType
from typing import Any, final

import attrs
import orjson
import tomli_w
import trio

from runtime.clock import Clock
from runtime.config import RuleOptions
from runtime.errors import PlanError
from runtime.formats.decode import checked_event, row_check
from runtime.io.contract import SinkSpec, SourceSpec
from runtime.io.file_source import FileSource
from runtime.io.registry import Registry
from runtime.io.services import Services
from runtime.metrics import RuleMetrics
from runtime.model import Outbox, Row
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


@final
class MockSource:
    """Emits its stream's recorded events, each when the rule clock reaches the event's ``ts`` (epoch ms)."""

    def __init__(
        self, spec: SourceSpec, events: Sequence[dict[str, Any]], turns: _Turns | None = None
    ) -> None:
        self._clock = spec.ctx.clock
        self._stream = spec.stream
        self._events = [
            (i, e)
            for i, e in enumerate(events)
            if e.get("stream", spec.stream) == spec.stream and e.get("ts") is not None
        ]
        self._check = row_check(spec.definition, spec.fields_read, describe=go_literal_typed)
        self._turns = turns
        if turns is not None:
            turns.register(spec.stream)

    async def run(
        self, send: Outbox, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED
    ) -> None:
        task_status.started()
        turns, stream = self._turns, self._stream
        for index, event in self._events:
            if turns is not None:
                await turns.wait(index, stream)
            # TIMELEAP: where eKuiper's feeder delivered an event late, effective_ts says when.
            ts = int(event.get("effective_ts", event["ts"]))
            await trio.sleep_until(self._clock.to_trio(ts))
            meta = {**MOCK_META, **event.get("meta", {})}
            await send.send([checked_event(self._check, from_notation(event["data"]), ts, meta)])
            if turns is not None:
                turns.done(index, stream)


@final
class _Turns:
    """The recorded order across the mock sources of one replay: an event is sent only after every earlier one.

    Several streams (a join) each have a mock source; trio wakes tasks sleeping until the same instant in no
    fixed order, so without turns two events with one ``ts`` could reach the rule either way round.
    """

    def __init__(self, events: Sequence[dict[str, Any]]) -> None:
        self._events = events
        self._streams: set[str] = set()
        self._done: dict[tuple[int, str], trio.Event] | None = None
        self._previous: dict[tuple[int, str], tuple[int, str]] = {}

    def register(self, stream: str) -> None:
        self._streams.add(stream)

    def _table(self) -> dict[tuple[int, str], trio.Event]:
        if self._done is None:  # every source was built (and registered) before the first one runs
            order = [
                (i, stream)
                for i, event in enumerate(self._events)
                if event.get("ts") is not None
                for stream in sorted(self._streams)
                if event.get("stream", stream) == stream
            ]
            self._done = {turn: trio.Event() for turn in order}
            self._previous = dict(zip(order[1:], order, strict=False))
        return self._done

    async def wait(self, index: int, stream: str) -> None:
        done = self._table()
        previous = self._previous.get((index, stream))
        if previous is not None:
            await done[previous].wait()

    def done(self, index: int, stream: str) -> None:
        self._table()[(index, stream)].set()


@final
class CollectorSink:
    """Keeps every message it is given (with ``sendSingle`` off: one list of rows per emission)."""

    def __init__(self, spec: SinkSpec, out: list[list[Row]]) -> None:
        self._out = out

    async def open(self) -> None:
        await trio.lowlevel.checkpoint()

    async def write(self, data: Row | list[Row]) -> None:
        await trio.lowlevel.checkpoint()
        self._out.append(data if isinstance(data, list) else [data])

    async def aclose(self) -> None:
        await trio.lowlevel.checkpoint()


def replay_registry(events: Sequence[dict[str, Any]], out: list[list[Row]]) -> Registry:
    """A registry with only the ``mock`` source over ``events`` and the collector sink appending to ``out``."""
    registry = Registry()
    turns = _Turns(events)
    registry.register_source("mock", lambda spec: MockSource(spec, events, turns))
    # File tables read real files: ``replay`` writes their recorded rows (events without ``ts``) there.
    registry.register_source("file", FileSource)
    registry.register_sink(COLLECTOR, lambda spec: CollectorSink(spec, out))
    return registry


def default_clock_start(events: Sequence[dict[str, Any]]) -> int:
    """The first timed event's ts floored to the whole second (0 with no events)."""
    timed = [e for e in events if e.get("ts") is not None]
    return (int(timed[0]["ts"]) // 1000) * 1000 if timed else 0


async def replay(
    ddl: str,
    rule: dict[str, Any],
    events: list[dict[str, Any]],
    clock_start_ms: int | None = None,
    *,
    metrics: RuleMetrics | None = None,
) -> list[list[Row]]:
    """Run ``rule`` over ``events`` and return its emissions in order (error rows as ``{"error": ...}``).

    Args:
      ddl: one or more ``CREATE STREAM/TABLE`` statements separated by ``;`` at line ends.
      rule: rule JSON (``sql``, ``options``); its ``actions`` are replaced by the collector.
      events: ``{"stream", "ts", "data", ["meta"]}`` in arrival order; ``stream`` defaults to every stream.
      clock_start_ms: epoch ms the clock reads when the rule starts.
      metrics: receives the run's metric nodes (``source_*``, ``op_*``, ``sink_collector_0``) when given.

    Raises:
      SqlError, PlanError, RuleError: the DDL or rule is invalid or not supported.
    """
    out: list[list[Row]] = []
    registry = replay_registry(events, out)
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


def _write_file_tables(catalog: Catalog, events: Sequence[dict[str, Any]], tmp: Path) -> None:
    """Write each file table's recorded rows (its events without ``ts``: loaded at rule start, as eKuiper's tests do)
    as the JSON file its DATASOURCE names, and the ``file`` conf groups pointing there, so the real file source
    loads them."""
    folder = tmp / "files"
    groups: dict[str, dict[str, Any]] = {"default": {"path": str(folder), "fileType": "json", "interval": 0}}
    for table in catalog.streams["table"].values():
        if source_type(table) != "file" or not table.options.datasource:
            continue
        rows = [
            from_notation(e["data"]) for e in events if e.get("stream") == table.name and e.get("ts") is None
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
    """Recorded JSON -> runtime values: ``{"$time_ms": n}`` is a UTC datetime, ``{"$bytes_b64": s}`` bytes."""
    if isinstance(value, dict):
        if value.keys() == {"$time_ms"}:
            return datetime.datetime.fromtimestamp(value["$time_ms"] / 1000, tz=datetime.UTC)
        if value.keys() == {"$bytes_b64"}:
            return base64.b64decode(value["$bytes_b64"])
        return {key: from_notation(item) for key, item in value.items()}
    if isinstance(value, list):
        return [from_notation(item) for item in value]
    return value


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


def run_cli(ddl_path: Path, rule_path: Path, input_path: Path, clock_start_ms: int | None) -> list[str]:
    """``oort replay``: read the files, replay on a mock clock, return one JSON line per emission."""
    from trio.testing import MockClock  # only the replay verb needs it

    rule = orjson.loads(rule_path.read_bytes())
    events = [orjson.loads(line) for line in input_path.read_text().splitlines() if line.strip()]
    ddl = ddl_path.read_text()
    emissions = trio.run(replay, ddl, rule, events, clock_start_ms, clock=MockClock(autojump_threshold=0))
    return [emission_json(rows) for rows in emissions]
