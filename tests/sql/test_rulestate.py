"""``rule_start()``, ``window_trigger()``, ``props()``, ``get_keyed_state()``, ``delay()``, ``extract()`` and the
``dedup_trigger()`` checks by plain calls: parse-time checks, values, errors (eKuiper docs
sqls/functions/other_functions.md; sqls/query_language_elements.md)."""

from __future__ import annotations

from typing import Any

import pytest

from runtime.errors import PlanError, SqlError
from runtime.model import Event
from runtime.ops.project import compile_filter_project, unnest_rows
from runtime.ops.window import Pane
from runtime.plan.window import plan_window
from runtime.sql.expr import EvalContext, EvalError
from runtime.sql.functions.rulestate import DEDUP_TRIGGER_REFUSAL, SNOWFLAKE_EPOCH_MS, calls_delay
from runtime.sql.parser import parse_select
from runtime.store.keyed import KeyedStateStore


def project(sql: str, row: dict[str, Any], ctx: EvalContext | None = None) -> dict[str, Any] | None:
    return compile_filter_project(parse_select(sql)).apply(row, ctx if ctx is not None else EvalContext())


@pytest.mark.parametrize(
    ("sql", "message"),
    [
        (
            "SELECT rule_start(1) FROM s",
            "validate function rule_start error: Expect 0 arguments but found 1.",
        ),
        ("SELECT window_trigger(a) FROM s", "Expect 0 arguments but found 1."),
        ("SELECT props() FROM s", "validate function props error: Expect 1 arguments but found 0."),
        ("SELECT props(12) FROM s", "validate function props error: Expect string type for parameter 1"),
        ("SELECT props(true) FROM s", "Expect string type for parameter 1"),
        ('SELECT get_keyed_state("k", "bigint") FROM s', "Expect 3 arguments but found 2."),
        ('SELECT get_keyed_state("k", 1, 0) FROM s', "Expect string type for parameter 1"),
        (
            'SELECT get_keyed_state("k", "int", 0) FROM s',
            "expect one of following value for the 2nd parameter: bigint, float, string, boolean, datetime",
        ),
        ('SELECT delay("1s", a) FROM s', "Expect number - float or int type for parameter 1"),
        ("SELECT delay(1000) FROM s", "validate function delay error: Expect 2 arguments but found 1."),
        ("SELECT extract(a, b) FROM s", "validate function extract error: Expect 1 arguments but found 2."),
        ("SELECT a FROM s WHERE extract(a) = 1", "select statement shouldn't has srf except fields"),
        ("SELECT unnest(a), extract(b) FROM s", "shouldn't has multi set-returning-functions"),
        ("SELECT dedup_trigger(a, b, c) FROM s", "Expect 4 arguments but found 3."),
        ("SELECT dedup_trigger(a, 1, c, 10) FROM s", "Expect field reference type for parameter 2"),
        ("SELECT dedup_trigger(a, b, c, 1.5) FROM s", "Expect int type for parameter 4"),
    ],
)
def test_parse_time_checks(sql: str, message: str) -> None:
    with pytest.raises(SqlError, match=message):
        parse_select(sql)


def test_rule_start_is_the_context_creation_time() -> None:
    ctx = EvalContext()
    ctx.rule_start = 1_700_000_000_000
    assert project("SELECT rule_start() AS rs FROM s", {}, ctx) == {"rs": 1_700_000_000_000}


def test_window_trigger_is_the_operator_time_else_the_window_end() -> None:
    plan = plan_window(
        parse_select("SELECT count(*) AS c, window_trigger() AS t FROM s GROUP BY TUMBLINGWINDOW(ss, 1)")
    )
    assert plan is not None
    pane = Pane(1000, 2000, [Event({"a": 1}, 1500)])
    assert plan.query.evaluate(pane, EvalContext()) == [{"c": 1, "t": 2000}]  # no operator: the end
    ctx = EvalContext()
    ctx.window_trigger = 2003  # what the window operator sets when it emits the pane
    assert plan.query.evaluate(pane, ctx) == [{"c": 1, "t": 2003}]
    assert project("SELECT window_trigger() AS t, a FROM s", {"a": 1}) == {"a": 1}  # no window: null


def test_props_reads_et_snowflake_and_engine_properties() -> None:
    ctx = EvalContext(ts=1_700_000_000_123, props={"vin": "V42"})
    out = project('SELECT props("et") AS et, props("vin") AS vin, props("nope") AS nope FROM s', {}, ctx)
    assert out == {"et": "1700000000123", "vin": "V42"}  # clockless context: now is the event time
    ids = [project('SELECT props("snowflake") AS id FROM s', {}, ctx) for _ in range(3)]
    values = [int(row["id"]) for row in ids if row is not None]
    assert len(values) == 3 and values == sorted(set(values))
    assert values[0] >> 22 == 1_700_000_000_123 - SNOWFLAKE_EPOCH_MS
    with pytest.raises(EvalError, match="invalid input 12: must be property name of string type"):
        project("SELECT props(a) FROM s", {"a": 12})


def test_get_keyed_state_casts_the_stored_value_or_returns_the_default() -> None:
    store = KeyedStateStore()
    store.put("count", "41")
    store.put("ratio", 2)
    ctx = EvalContext(keyed_state=store)
    sql = (
        'SELECT get_keyed_state("count", "bigint", 0) + 1 AS n, get_keyed_state("ratio", "float", 0.0) AS r, '
        'get_keyed_state("missing", "string", "dflt") AS d, get_keyed_state("missing", "string", k) AS nd '
        "FROM s"
    )
    assert project(sql, {}, ctx) == {"n": 42, "r": 2.0, "d": "dflt"}  # a null default is returned
    with pytest.raises(EvalError, match="key <nil> is not a string"):  # no null passthrough, as eKuiper
        project('SELECT get_keyed_state(k, "string", "x") FROM s', {}, ctx)
    assert project('SELECT get_keyed_state("count", "bigint", 7) AS n FROM s', {}) == {"n": 7}  # no store
    with pytest.raises(EvalError, match="key 3 is not a string"):
        project('SELECT get_keyed_state(k, "bigint", 0) FROM s', {"k": 3}, ctx)
    store.put("bad", "x")
    with pytest.raises(EvalError, match="cannot convert x to bigint"):
        project('SELECT get_keyed_state("bad", "bigint", 0) FROM s', {}, ctx)


def test_delay_returns_its_value_and_books_the_wait() -> None:
    ctx = EvalContext()
    assert project("SELECT delay(250, a) AS a, delay(50.9, b) AS b FROM s", {"a": 1, "b": "x"}, ctx) == {
        "a": 1,
        "b": "x",
    }
    assert ctx.delay_ms == 300  # the operator sleeps this long before it sends the row
    with pytest.raises(EvalError, match=r"cannot convert <nil>\(<nil>\) to int"):  # no null passthrough
        project("SELECT delay(d, a) AS a FROM s", {"a": 1}, ctx)
    assert project("SELECT delay(20, d) AS a FROM s", {}, ctx) == {}  # a null value still waits
    assert ctx.delay_ms == 320
    with pytest.raises(EvalError, match=r"cannot convert string\(bar\) to int"):
        project("SELECT delay(d, a) FROM s", {"d": "bar", "a": 1})
    assert calls_delay(parse_select("SELECT a FROM s WHERE delay(1, a) > 0"))
    assert not calls_delay(parse_select("SELECT a FROM s"))


def test_extract_spreads_an_object_into_one_row() -> None:
    op = compile_filter_project(parse_select("SELECT extract(obj), x FROM s"))
    out = op.apply({"obj": {"a": 1, "x": 9}, "x": 7}, EvalContext())
    assert out is not None and op.srf_key == "extract"
    assert unnest_rows(out, op.srf_key) == [{"a": 1, "x": 9}]  # the object's keys win, as unnest's
    with pytest.raises(EvalError, match="call func extract error: extract should use map"):
        op.apply({"obj": [1, 2], "x": 7}, EvalContext())


def test_dedup_trigger_is_no_per_row_function() -> None:
    # The planner turns the SELECT field of a plain stream rule into its stage (tests/ops/test_dedup.py);
    # compiled as a call (window or join queries, nested uses) it is refused.
    select = parse_select("SELECT dedup_trigger(begin, finish, ts, 9999) AS ranges FROM s")
    with pytest.raises(PlanError) as info:
        compile_filter_project(select)
    assert info.value.message == DEDUP_TRIGGER_REFUSAL
    assert "holds each row until its end time" in DEDUP_TRIGGER_REFUSAL
