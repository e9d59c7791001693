"""Aggregate functions and the post-window query: grouping, HAVING, ORDER BY, LIMIT, errors, window bounds."""

from __future__ import annotations

from typing import Any

import pytest

from runtime.model import ErrorItem, Event
from runtime.ops.window import Pane
from runtime.plan.window import plan_window
from runtime.sql.aggregates import compile_aggregate
from runtime.sql.ast import Call
from runtime.sql.expr import EvalContext, EvalError
from runtime.sql.parser import parse_select

ROWS = [
    {"color": "red", "size": 3},
    {"color": "blue", "size": 6},
    {"color": "blue", "size": 2},
    {"color": "yellow", "size": 4},
    {"color": "red", "size": 1},
]


def run(sql: str, rows: list[dict[str, Any]] = ROWS, start: int = 100, end: int = 200) -> Any:
    plan = plan_window(parse_select(sql))
    assert plan is not None
    events = [Event(row, start + i) for i, row in enumerate(rows)]
    return plan.query.evaluate(Pane(start, end, events), EvalContext())


def agg(expr: str, rows: list[dict[str, Any]]) -> Any:
    call = parse_select(f"SELECT {expr} FROM s").fields[0].expr
    assert isinstance(call, Call)
    return compile_aggregate(call)(rows, EvalContext())


@pytest.mark.parametrize(
    ("expr", "values", "expected"),
    [
        ("count(x)", [1, None, 3], 2),
        ("count(*)", [None, None], 2),
        ("sum(x)", [1, 2, None], 3),
        ("sum(x)", [1.5, 2], 3.5),
        ("avg(x)", [1, 2], 1),  # integer division on ints
        ("avg(x)", [1.0, 2], 1.5),
        ("max(x)", [3, None, 7, 5], 7),
        ("min(x)", ["b", "a"], "a"),
        ("collect(x)", [1, None], [1, None]),
        ("median(x)", [1, 3, 2, 10], 2.5),
        ("stddev(x)", [2, 4, 4, 4, 5, 5, 7, 9], 2.0),
        ("var(x)", [2, 4, 4, 4, 5, 5, 7, 9], 4.0),
        ("vars(x)", [1, 2, 3], 1.0),
        ("percentile_disc(x, 0.5)", [1, 2, 3, 4], 2),
        ("percentile_cont(x, 0.5)", [1, 2, 3, 4], 2.5),
        ("last_value(x, true)", [1, 2, None], 2),
        ("last_value(x, false)", [1, 2, None], None),
        ("merge_agg(x)", [{"a": 1}, {"a": 2, "b": 3}], {"a": 2, "b": 3}),
    ],
)
def test_aggregate_functions(expr: str, values: list[Any], expected: Any) -> None:
    result = agg(expr, [{"x": v} for v in values])
    assert result == expected and type(result) is type(expected)


def test_deduplicate_all_and_newest() -> None:
    rows = [{"c": "a"}, {"c": "b"}, {"c": "a"}]
    assert agg("deduplicate(c, true)", rows) == [{"c": "a"}, {"c": "b"}]
    assert agg("deduplicate(c, false)", rows) is None
    assert agg("deduplicate(c, false)", rows[:2]) == {"c": "b"}


def test_aggregates_are_synthetic_columns_that_never_leak() -> None:
    sql = "SELECT *, count(*), sum(size) + 1 AS s1 FROM s GROUP BY COUNTWINDOW(2)"
    assert run(sql, rows=ROWS[:2]) == [{"color": "red", "size": 3, "count": 2, "s1": 10}]
    with pytest.raises(EvalError, match="call func sum error"):
        agg("sum(x)", [{"x": "a"}])


def test_group_by_having_order_limit_and_first_row_columns() -> None:
    sql = (
        "SELECT color, size, count(*) AS c, window_start() AS ws, window_end() AS we FROM s "
        "GROUP BY TUMBLINGWINDOW(ss, 1), color HAVING c > 0 ORDER BY c DESC, color LIMIT 2"
    )
    assert run(sql) == [
        {"color": "blue", "size": 6, "c": 2, "ws": 100, "we": 200},
        {"color": "red", "size": 3, "c": 2, "ws": 100, "we": 200},
    ]


def test_event_time_is_window_end_in_aggregates_and_row_time_otherwise() -> None:
    assert run("SELECT count(*) AS n, event_time() AS et FROM s GROUP BY COUNTWINDOW(5)") == [
        {"n": 5, "et": 200}
    ]
    rows = run("SELECT event_time() AS et FROM s GROUP BY COUNTWINDOW(5)")
    assert [r["et"] for r in rows] == [100, 101, 102, 103, 104]


def test_where_after_a_count_window_forwards_nothing_when_empty() -> None:
    assert run("SELECT color FROM s WHERE size > 100 GROUP BY COUNTWINDOW(5)") is None
    assert run("SELECT color FROM s GROUP BY TUMBLINGWINDOW(ss, 1)", rows=[]) == []


def test_clause_errors_become_error_items() -> None:
    mixed: list[dict[str, Any]] = [{"color": "a", "size": 3}, {"color": "b", "size": "x"}]
    order = run("SELECT size FROM s GROUP BY TUMBLINGWINDOW(ss, 1) ORDER BY size", rows=mixed)
    assert isinstance(order, ErrorItem)
    assert order.message == "run Order By error: incompatible types for comparison: int and string"
    having = run(
        "SELECT color FROM s GROUP BY SLIDINGWINDOW(ss, 1), color HAVING collect(size)[0] >= 2", mixed
    )
    assert isinstance(having, ErrorItem)
    assert having.message == "run Having error: invalid operation string(x) >= int64(2)"
    where = run("SELECT color FROM s WHERE size > 1 GROUP BY COUNTWINDOW(2)", rows=mixed)
    assert isinstance(where, ErrorItem) and where.message.startswith("run Where error: ")


def test_nulls_sort_last() -> None:
    rows: list[dict[str, Any]] = [{"k": None}, {"k": 2}, {"k": 1}]
    assert run("SELECT k FROM s GROUP BY COUNTWINDOW(3) ORDER BY k", rows=rows) == [{"k": 1}, {"k": 2}, {}]


def test_row_number_counts_rows_after_having() -> None:
    sql = "SELECT color, row_number() FROM s GROUP BY COUNTWINDOW(5), color HAVING count(*) > 1"
    assert run(sql) == [{"color": "red", "row_number": 1}, {"color": "blue", "row_number": 2}]
