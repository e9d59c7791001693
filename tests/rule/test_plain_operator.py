"""The plain operator (``runtime.rule.operators.plain``) through a replay: event-time order, ``unnest()``
emissions and the metric nodes both add (``op_2_watermark``, ``op_N_projectset``)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import attrs
import pytest
import trio
import trio.testing

from runtime.clock import Clock
from runtime.config import RuleOptions
from runtime.errors import EncodeError, SinkError
from runtime.io.contract import SinkSpec
from runtime.io.nop import NopSink
from runtime.io.services import Services
from runtime.metrics import RuleMetrics
from runtime.model import Row
from runtime.plan.catalog import Catalog
from runtime.plan.planner import plan_rule
from runtime.plan.ruledef import parse_rule
from runtime.rule.loop import RuleEnv
from runtime.rule.pipeline import run_rule
from runtime.sql.ast import StreamDef
from runtime.sql.parser import parse_ddl
from runtime.tools.replay import replay, replay_registry

DDL = (
    'CREATE STREAM demo (color STRING, size BIGINT, ts BIGINT) WITH (DATASOURCE="demo", TYPE="mock", '
    'FORMAT="json", TIMESTAMP="ts");'
)
ARR_DDL = 'CREATE STREAM arr () WITH (DATASOURCE="arr", TYPE="mock", FORMAT="json");'
T0 = 1541152486000
LIMIT_S = 600.0  # virtual seconds (autojump clock)


def _event(at: int, ts: Any, size: int) -> dict[str, Any]:
    return {"stream": "demo", "ts": T0 + at, "data": {"size": size, "ts": ts}}


async def test_event_time_rows_come_out_in_timestamp_order(autojump_clock: trio.testing.MockClock) -> None:
    events = [
        _event(10, T0 + 2000, 1),
        _event(20, T0 + 1500, 2),  # earlier than the first: reordered
        _event(30, T0 + 4000, 3),  # watermark 3000 releases the first two
        _event(40, T0 + 2500, 4),  # older than the watermark: late, dropped
        _event(50, "bad", 5),  # no event time: counted as an error
        _event(60, T0 + 6000, 6),  # watermark 5000 releases size 3
    ]
    rule = {
        "sql": "SELECT size FROM demo WHERE size > 1",
        "options": {"isEventTime": True, "lateTolerance": 1000},
    }
    metrics = RuleMetrics()
    with trio.fail_after(LIMIT_S):
        out = await replay(DDL, rule, events, metrics=metrics)
    assert out == [[{"size": 2}], [{"size": 3}]]
    snap = metrics.snapshot()
    assert snap["source_demo_0_records_in_total"] == 6
    assert snap["op_2_watermark_0_records_in_total"] == 6
    assert snap["op_2_watermark_0_records_out_total"] == 3
    assert snap["op_2_watermark_0_exceptions_total"] == 1
    assert snap["op_3_filter_0_records_in_total"] == 3
    assert snap["op_4_project_0_records_out_total"] == 2


async def test_unnest_emits_each_element_and_errors(autojump_clock: trio.testing.MockClock) -> None:
    events = [
        {"stream": "arr", "ts": T0 + 10, "data": {"v": [1, {"k": 2}], "x": 7}},
        {"stream": "arr", "ts": T0 + 20, "data": {"v": 3, "x": 8}},
    ]
    rule = {"sql": "SELECT unnest(v) AS e, x FROM arr", "options": {"sendError": True}}
    metrics = RuleMetrics()
    with trio.fail_after(LIMIT_S):
        out = await replay(ARR_DDL, rule, events, metrics=metrics)
    assert out == [
        [{"e": 1, "x": 7}],
        [{"k": 2, "x": 7}],
        [{"error": "the argument for the unnest function should be array"}],
    ]
    snap = metrics.snapshot()
    assert snap["op_3_projectset_0_records_in_total"] == 2
    assert snap["op_3_projectset_0_records_out_total"] == 1
    assert snap["op_3_projectset_0_exceptions_total"] == 1


class _InlineRecorder:
    """A sink whose write never waits (``write_nowait``): the operator task writes it, without a sink task."""

    def __init__(self, spec: SinkSpec, written: list[Any], state: list[str]) -> None:
        self._written = written
        self._state = state

    async def open(self) -> None:
        self._state.append("open")

    async def write(self, data: Row | list[Row]) -> None:
        self.write_nowait(data)

    def write_nowait(self, data: Row | list[Row]) -> None:
        rows = data if isinstance(data, list) else [data]
        if any(row.get("size") == 3 for row in rows):
            raise EncodeError("size 3 has no form")  # this message only
        if any(row.get("size") == 99 for row in rows):
            raise SinkError("sink broke")  # counted and dropped: the rule goes on
        if any(row.get("size") == 666 for row in rows):
            raise RuntimeError("a bug in the sink")  # not a SinkError: fails the rule
        self._written.append(data)

    async def aclose(self) -> None:
        self._state.append("closed")


async def _run_inline(
    tmp: Path, sizes: list[int], actions: list[dict[str, Any]]
) -> tuple[list[Any], list[str], RuleMetrics]:
    events = [_event(10 * (i + 1), T0 + 10 * i, size) for i, size in enumerate(sizes)]
    written: list[Any] = []
    state: list[str] = []
    registry = replay_registry(events, [])
    registry.register_sink("inline", lambda spec: _InlineRecorder(spec, written, state))
    registry.register_sink("nop", NopSink)
    catalog = Catalog(tmp)
    stmt = parse_ddl(DDL.rstrip(";"))
    assert isinstance(stmt, StreamDef)
    catalog.put_stream(attrs.evolve(stmt, options=attrs.evolve(stmt.options, type="mock")))
    rule = parse_rule(
        {"id": "r", "sql": "SELECT size FROM demo WHERE size > 1", "actions": actions}, RuleOptions()
    )
    plan = plan_rule(rule, catalog, registry)
    env = RuleEnv(clock=Clock(T0), services=Services(), registry=registry, etc_dir=Path("/nonexistent"))
    metrics = RuleMetrics()
    try:
        with trio.fail_after(LIMIT_S):
            await run_rule(plan, env, metrics)
    finally:
        state.append("returned")
    return written, state, metrics


async def test_an_inline_sink_is_written_by_the_operator_with_the_sink_metrics(
    autojump_clock: trio.testing.MockClock, tmp_path: Path
) -> None:
    written, state, metrics = await _run_inline(
        tmp_path, [1, 2, 3, 4], [{"inline": {}}, {"nop": {"sendSingle": True}}]
    )
    assert written == [[{"size": 2}], [{"size": 4}]]
    assert state == ["open", "closed", "returned"]  # opened before data, closed when the operator ended
    snap = metrics.snapshot()
    assert snap["sink_inline_0_0_records_in_total"] == 3
    assert snap["sink_inline_0_0_records_out_total"] == 3
    assert snap["sink_inline_0_0_exceptions_total"] == 1
    assert snap["sink_inline_0_0_last_exception"] == "size 3 has no form"
    assert snap["sink_inline_0_0_buffer_length"] == 0
    assert snap["sink_nop_1_0_records_in_total"] == 3
    assert snap["sink_nop_1_0_records_out_total"] == 3


async def test_an_inline_sink_error_is_counted_and_the_rule_goes_on(
    autojump_clock: trio.testing.MockClock, tmp_path: Path
) -> None:
    written, state, metrics = await _run_inline(tmp_path, [2, 99, 4], [{"inline": {}}])
    assert written == [[{"size": 2}], [{"size": 4}]]  # the failed message is dropped, the next one written
    assert state == ["open", "closed", "returned"]
    snap = metrics.snapshot()
    assert snap["sink_inline_0_0_records_in_total"] == 3
    assert snap["sink_inline_0_0_records_out_total"] == 2
    assert snap["sink_inline_0_0_exceptions_total"] == 1
    assert snap["sink_inline_0_0_last_exception"] == "sink broke"


async def test_an_inline_sink_bug_fails_the_rule(
    autojump_clock: trio.testing.MockClock, tmp_path: Path
) -> None:
    with pytest.RaisesGroup(RuntimeError, flatten_subgroups=True):
        await _run_inline(tmp_path, [2, 666, 4], [{"inline": {}}])
