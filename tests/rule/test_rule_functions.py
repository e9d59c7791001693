"""Rule-level functions through the real rule runtime (``run_rule`` on a MockClock): ``rule_start()``,
``delay()`` blocking the operator, ``window_trigger()`` of a late emission, ``extract()``, and the engine's
keyed state and props reaching ``get_keyed_state()``/``props()``."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import trio
import trio.testing

from runtime.clock import Clock
from runtime.config import RuleOptions
from runtime.errors import PlanError
from runtime.io.services import Services, props_from_environ
from runtime.metrics import OpMetrics, RuleMetrics
from runtime.model import Batch, Emission, Event, Row
from runtime.plan.catalog import Catalog
from runtime.plan.planner import plan_rule
from runtime.plan.ruledef import parse_rule
from runtime.rule.loop import RuleEnv
from runtime.rule.operators.dedup import DedupOperator
from runtime.rule.pipeline import run_rule
from runtime.sql.ast import StreamDef
from runtime.sql.parser import parse_ddl
from runtime.store.keyed import KEYED_STATE_FILE, KeyedStateStore
from runtime.tools.replay import COLLECTOR, default_clock_start, replay, replay_registry, split_ddl

DDL = 'CREATE STREAM arr () WITH (DATASOURCE="arr", TYPE="mock", FORMAT="json");'
T0 = 1541152486000
LIMIT_S = 600.0  # virtual seconds (autojump clock)


def _events(*rows: tuple[int, dict[str, Any]]) -> list[dict[str, Any]]:
    return [{"stream": "arr", "ts": T0 + at, "data": data} for at, data in rows]


async def test_delay_blocks_the_rule_and_rule_start_is_the_run_start(
    autojump_clock: trio.testing.MockClock,
) -> None:
    events = _events((10, {"a": 1}), (20, {"a": 2}))
    rule = {"sql": "SELECT delay(1000, a) AS a, tstamp() AS t, rule_start() AS rs FROM arr"}
    with trio.fail_after(LIMIT_S):
        out = await replay(DDL, rule, events)
    # The second event arrived at +20 but the operator slept until +1010 (eKuiper's delay sleeps in the call).
    assert out == [[{"a": 1, "t": T0 + 10, "rs": T0}], [{"a": 2, "t": T0 + 1010, "rs": T0}]]


async def test_window_trigger_is_the_emission_time(autojump_clock: trio.testing.MockClock) -> None:
    events = _events((10, {"a": 1}), (20, {"a": 2}))
    rule = {
        "sql": "SELECT a, window_end() AS we, window_trigger() AS wt, delay(1000, 0) AS d FROM arr "
        "GROUP BY COUNTWINDOW(1)"
    }
    with trio.fail_after(LIMIT_S):
        out = await replay(DDL, rule, events)
    # The second pane ends with its event (+20) but the blocked operator emits it at +1010.
    assert out == [
        [{"a": 1, "we": T0 + 10, "wt": T0 + 10, "d": 0}],
        [{"a": 2, "we": T0 + 20, "wt": T0 + 1010, "d": 0}],
    ]


async def test_tumbling_window_trigger_equals_its_end_when_on_time(
    autojump_clock: trio.testing.MockClock,
) -> None:
    events = _events((100, {"a": 1}), (600, {"a": 2}), (1200, {"a": 3}), (2100, {"a": 4}))
    rule = {
        "sql": "SELECT count(*) AS c, window_end() AS we, window_trigger() AS wt FROM arr "
        "GROUP BY TUMBLINGWINDOW(ss, 1)"
    }
    with trio.fail_after(LIMIT_S):
        out = await replay(DDL, rule, events)
    assert out == [[{"c": 2, "we": T0 + 1000, "wt": T0 + 1000}], [{"c": 1, "we": T0 + 2000, "wt": T0 + 2000}]]


async def test_extract_spreads_the_object_and_reports_non_objects(
    autojump_clock: trio.testing.MockClock,
) -> None:
    events = _events((10, {"o": {"k": 1, "x": 0}, "x": 7}), (20, {"o": [1], "x": 8}))
    rule = {"sql": "SELECT extract(o), x FROM arr", "options": {"sendError": True}}
    with trio.fail_after(LIMIT_S):
        out = await replay(DDL, rule, events)
    assert out[0] == [{"k": 1, "x": 0}]
    assert out[1][0]["error"].endswith("call func extract error: extract should use map")


def _span(at: int, begin: Any, finish: Any, now: Any, rule_id: str) -> dict[str, Any]:
    return {
        "stream": "arr",
        "ts": T0 + at,
        "data": {"begin": begin, "finish": finish, "ts": now, "ruleId": rule_id},
    }


def _ranges(*pairs: tuple[int, int]) -> list[dict[str, str]]:
    return [{"start_key": str(s), "end_key": str(e)} for s, e in pairs]


async def test_dedup_trigger_holds_rows_until_a_later_now_reaches_their_end(
    autojump_clock: trio.testing.MockClock,
) -> None:
    # eKuiper's dedup_trigger_node_test TestExec, through the rule runtime.
    events = [
        _span(10, 100, 200, 150, "test"),
        _span(20, 110, 210, 160, "test"),
        _span(30, 90, 180, 180, "new"),
        _span(40, 1700, 1800, 1800, "new"),
    ]
    rule = {"sql": "SELECT ruleId, begin, dedup_trigger(begin, finish, ts, 99999) AS ranges FROM arr"}
    metrics = RuleMetrics()
    with trio.fail_after(LIMIT_S):
        out = await replay(DDL, rule, events, metrics=metrics)
    assert out == [
        [{"ruleId": "new", "begin": 90, "ranges": _ranges((90, 180))}],
        [{"ruleId": "test", "begin": 100, "ranges": _ranges((180, 200))}],
        [{"ruleId": "test", "begin": 110, "ranges": _ranges((200, 210))}],
        [{"ruleId": "new", "begin": 1700, "ranges": _ranges((1700, 1800))}],
    ]
    snap = metrics.snapshot()
    assert snap["op_2_dedup_trigger_0_records_in_total"] == 4
    assert snap["op_2_dedup_trigger_0_records_out_total"] == 4
    assert snap["op_3_project_0_records_out_total"] == 4


async def test_dedup_trigger_timer_releases_held_rows(autojump_clock: trio.testing.MockClock) -> None:
    events = [
        _span(10, 100, 200, 150, "a"),  # held: end 200 is 50 ms after its now -> released at +60
        _span(100, 300, 400, 160, "b"),  # held 240 ms -> released at +340
        _span(500, 90, 95, 1000, "c"),  # expired with 500 ms expiry (before now - 500): released empty
        _span(510, 5, "x", 1000, "d"),  # not an int: an error row
    ]
    rule = {
        "sql": 'SELECT ruleId, tstamp() AS t, dedup_trigger(begin, finish, ts, 500) AS r FROM arr WHERE ruleId != "z"',
        "options": {"sendError": True},
    }
    metrics = RuleMetrics()
    with trio.fail_after(LIMIT_S):
        out = await replay(DDL, rule, events, metrics=metrics)
    assert out == [
        [{"ruleId": "a", "t": T0 + 60, "r": _ranges((100, 200))}],
        [{"ruleId": "b", "t": T0 + 340, "r": _ranges((300, 400))}],
        [{"ruleId": "c", "t": T0 + 500}],
        [{"error": "dedup_trigger end time x is not int64"}],
    ]
    snap = metrics.snapshot()
    assert snap["op_2_filter_0_records_in_total"] == 4
    assert snap["op_3_dedup_trigger_0_exceptions_total"] == 1


async def test_dedup_trigger_in_a_window_rule_is_refused(autojump_clock: trio.testing.MockClock) -> None:
    sql = "SELECT dedup_trigger(b, e, n, 100) AS r FROM arr GROUP BY COUNTWINDOW(2)"
    with pytest.raises(
        PlanError, match="dedup_trigger is only supported as a SELECT field of a rule without"
    ):
        await replay(DDL, {"sql": sql}, _events())


async def _run_with_services(
    tmp_path: Path, sql: str, events: list[dict[str, Any]], services: Services
) -> list[list[Row]]:
    """``replay`` with the engine's services (keyed state, props) given to the rule, as the engine does."""
    out: list[list[Row]] = []
    registry = replay_registry(events, out)
    catalog = Catalog(tmp_path / "catalog")
    for statement in split_ddl(DDL):
        stmt = parse_ddl(statement)
        assert isinstance(stmt, StreamDef)
        catalog.put_stream(stmt)
    rule = parse_rule({"id": "r", "sql": sql, "actions": [{COLLECTOR: {}}]}, RuleOptions())
    env = RuleEnv(
        clock=Clock(default_clock_start(events)), services=services, registry=registry, etc_dir=tmp_path
    )
    await run_rule(plan_rule(rule, catalog, registry), env, RuleMetrics())
    return out


async def test_keyed_state_and_props_come_from_the_engine(
    tmp_path: Path, autojump_clock: trio.testing.MockClock
) -> None:
    store = KeyedStateStore(tmp_path / "data" / KEYED_STATE_FILE)
    store.put("limit", "3")
    props = props_from_environ({"KUIPER_PROPS_VIN": "V1", "OORT_PROPS_SITE": "north", "PATH": "/bin"})
    assert props == {"vin": "V1", "site": "north"}
    services = Services(keyed_state=store, props=props)
    sql = (
        'SELECT a, get_keyed_state("limit", "bigint", 0) AS lim, props("vin") AS vin, props("site") AS site '
        'FROM arr WHERE a > get_keyed_state("limit", "bigint", 0)'
    )
    events = _events((10, {"a": 1}), (20, {"a": 5}))
    with trio.fail_after(LIMIT_S):
        out = await _run_with_services(tmp_path, sql, events, services)
    assert out == [[{"a": 5, "lim": 3, "vin": "V1", "site": "north"}]]


# ------------------------------------------------------------------------------------------------ hostile values


async def test_out_of_range_epochs_are_error_rows_not_a_dead_rule(
    autojump_clock: trio.testing.MockClock,
) -> None:
    events = _events((10, {"a": 1e20}), (20, {"a": -(10**30)}), (30, {"a": 0}))
    rule = {
        "sql": 'SELECT year(a) AS y, cast(a, "datetime") AS d, to_seconds(a) AS s FROM arr',
        "options": {"sendError": True},
    }
    with trio.fail_after(LIMIT_S):
        out = await replay(DDL, rule, events)
    assert len(out) == 3
    assert "to datetime: out of range" in out[0][0]["error"]
    assert "to datetime: out of range" in out[1][0]["error"]
    assert out[2][0]["y"] == 1970


async def test_strict_validation_of_an_out_of_range_datetime_is_an_error_row(
    autojump_clock: trio.testing.MockClock,
) -> None:
    ddl = (
        "CREATE STREAM arr (a DATETIME, f FLOAT) "
        'WITH (DATASOURCE="arr", TYPE="mock", FORMAT="json", STRICT_VALIDATION="true");'
    )
    events = _events((10, {"a": 1e20}), (20, {"a": 0, "f": 10**400}), (30, {"a": 0}))
    rule = {"sql": "SELECT year(a) AS y, f FROM arr", "options": {"sendError": True}}
    with trio.fail_after(LIMIT_S):
        out = await replay(ddl, rule, events)
    assert out[0][0]["error"].startswith("error in preprocessor: field a type mismatch: cannot convert")
    assert out[1][0]["error"].startswith("error in preprocessor: field f type mismatch: cannot convert")
    assert out[2] == [{"y": 1970}]  # the rule lives on


@pytest.mark.parametrize("content", [b"{not json", None])
async def test_a_broken_keyed_state_file_yields_the_default(
    tmp_path: Path, autojump_clock: trio.testing.MockClock, content: bytes | None
) -> None:
    path = tmp_path / "data" / KEYED_STATE_FILE
    path.parent.mkdir()
    if content is None:
        path.mkdir()  # IsADirectoryError on read
    else:
        path.write_bytes(content)
    services = Services(keyed_state=KeyedStateStore(path), props={})
    sql = 'SELECT a, get_keyed_state("limit", "bigint", 7) AS lim FROM arr'
    events = _events((10, {"a": 1}), (20, {"a": 5}))
    with trio.fail_after(LIMIT_S):
        out = await _run_with_services(tmp_path, sql, events, services)
    assert out == [[{"a": 1, "lim": 7}], [{"a": 5, "lim": 7}]]


async def test_get_keyed_state_and_delay_see_null_arguments(autojump_clock: trio.testing.MockClock) -> None:
    # No null passthrough: a null key is eKuiper's "key <nil> is not a string", a null value still waits.
    events = _events((10, {"a": 1}), (20, {"a": 2}))
    rule = {
        "sql": 'SELECT get_keyed_state(k, "bigint", 0) AS s FROM arr WHERE a = 1',
        "options": {"sendError": True},
    }
    with trio.fail_after(LIMIT_S):
        out = await replay(DDL, rule, events)
    assert len(out) == 1
    assert out[0][0]["error"].endswith("call func get_keyed_state error: key <nil> is not a string")
    rule = {"sql": "SELECT delay(1000, b) AS d, tstamp() AS t FROM arr"}
    with trio.fail_after(LIMIT_S):
        out = await replay(DDL, rule, events)
    assert out == [[{"t": T0 + 10}], [{"t": T0 + 1010}]]  # null d omitted; the delay still happened


async def test_dedup_rule_with_delay_blocks_per_event_of_a_batch(
    tmp_path: Path, autojump_clock: trio.testing.MockClock
) -> None:
    # As run_batches: with delay() each event of a batch is processed, slept for and sent on its own.
    catalog = Catalog(tmp_path / "catalog")
    stmt = parse_ddl(DDL)
    assert isinstance(stmt, StreamDef)
    catalog.put_stream(stmt)
    sql = "SELECT b, delay(1000, b) AS d, tstamp() AS t, dedup_trigger(b, e, n, 99999) AS r FROM arr"
    rule = parse_rule({"id": "r", "sql": sql, "actions": [{COLLECTOR: {}}]}, RuleOptions())
    plan = plan_rule(rule, catalog, replay_registry([], []))
    clock = Clock(T0)
    op = DedupOperator(plan, clock, OpMetrics("source_arr_0"), RuleMetrics())
    send_in, recv_in = trio.open_memory_channel[Batch](1)
    send_out, recv_out = trio.open_memory_channel[list[Emission]](10)
    with trio.fail_after(LIMIT_S):
        async with trio.open_nursery() as nursery:
            await nursery.start(op.run, recv_in, [send_out])
            rows = [{"b": b, "e": b + 1, "n": b + 1} for b in (1, 5)]
            async with send_in:
                await send_in.send([Event(row, T0, None) for row in rows])
            emitted = [emission async for emission in recv_out]
    sends = [[(row["b"], row["t"]) for em in sent if isinstance(em, list) for row in em] for sent in emitted]
    assert sends == [
        [(1, T0)],
        [(5, T0 + 1000)],
    ]
