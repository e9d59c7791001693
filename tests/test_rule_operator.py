"""The non-window operator of ``runtime.rule`` through a replay: event-time order, ``unnest()`` emissions and
the metric nodes both add (``op_2_watermark``, ``op_N_projectset``)."""

from __future__ import annotations

from typing import Any

import trio
import trio.testing

from runtime.metrics import RuleMetrics
from runtime.replay import replay

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
