"""Analytic functions (eKuiper docs sqls/functions/analytic_functions.md) in the fused WHERE + SELECT
operator: per-rule state, evaluation
before WHERE, ``OVER (PARTITION BY ...)`` and ``OVER (WHEN ...)``."""

from __future__ import annotations

from typing import Any

import pytest

from runtime.errors import SqlError
from runtime.ops.project import compile_filter_project
from runtime.sql.expr import EvalContext, EvalError
from runtime.sql.parser import parse_select

ROWS: list[dict[str, Any]] = [
    {"color": "red", "size": 3},
    {"color": "blue", "size": 6},
    {"color": "blue", "size": 2},
    {"color": "red", "size": 4},
    {"color": "yellow"},
]


def run(sql: str, rows: list[dict[str, Any]] = ROWS) -> list[dict[str, Any] | None]:
    op = compile_filter_project(parse_select(sql))
    ctx = EvalContext(rule_id="r1")
    return [op.apply(row, ctx) for row in rows]


def test_analytic_functions_see_rows_where_rejects() -> None:
    out = run("SELECT lag(size) AS prev, size FROM demo WHERE size > 2")
    assert out == [{"size": 3}, {"prev": 3, "size": 6}, None, {"prev": 2, "size": 4}, None]


def test_lag_offset_default_and_ignore_null() -> None:
    out = run("SELECT lag(size, 2, 0) AS a, lag(size, 1, -1, false) AS b FROM demo")
    assert [r and r.get("a") for r in out] == [0, 0, 3, 6, 2]
    assert [r and r.get("b") for r in out] == [-1, 3, 6, 2, 4]
    tail = run("SELECT lag(size, 1, -1, false) AS b FROM demo", [*ROWS, {"size": 9}])
    assert tail[-1] == {}  # the null of the previous row was recorded: lag is null


def test_partition_by_keeps_one_history_per_key() -> None:
    out = run("SELECT lag(size) OVER (PARTITION BY color) AS prev FROM demo")
    assert out == [{}, {}, {"prev": 6}, {"prev": 3}, {}]


def test_when_updates_state_only_on_matching_events() -> None:
    out = run('SELECT latest(size) OVER (WHEN color = "blue") AS l, size FROM demo')
    assert [r and r.get("l") for r in out] == [None, 6, 2, 2, 2]


def test_accumulators() -> None:
    sql = "SELECT acc_sum(size) AS s, acc_count(size) AS c, acc_avg(size) AS a, acc_min(size) AS lo, acc_max(size) AS hi FROM demo"
    out = run(sql)
    assert out[-1] == {"s": 15.0, "c": 4, "a": 3.75, "lo": 2.0, "hi": 6.0}
    assert out[0] == {"s": 3.0, "c": 1, "a": 3.0, "lo": 3.0, "hi": 3.0}


def test_changed_col_and_had_changed() -> None:
    out = run("SELECT changed_col(true, color) AS c, had_changed(true, color, size) AS h FROM demo")
    assert out == [
        {"c": "red", "h": True},
        {"c": "blue", "h": True},
        {"h": True},  # same color, new size
        {"c": "red", "h": True},
        {"c": "yellow", "h": True},
    ]
    same = run("SELECT had_changed(true, color) AS h FROM demo", [{"color": "x"}, {"color": "x"}, {}])
    assert same == [{"h": True}, {"h": False}, {"h": False}]  # a null is ignored with ignoreNull


def test_analytic_over_an_alias_of_another_analytic() -> None:
    out = run("SELECT lag(b, 1, 0) AS lb, lag(size, 1, 0) + 1 AS b FROM demo", ROWS[:3])
    assert out == [{"lb": 0, "b": 1}, {"lb": 1, "b": 4}, {"lb": 4, "b": 7}]


def test_state_is_per_rule_context() -> None:
    op = compile_filter_project(parse_select("SELECT lag(size) AS p FROM demo"))
    first, second = EvalContext(rule_id="a"), EvalContext(rule_id="b")
    op.apply({"size": 1}, first)
    assert op.apply({"size": 2}, second) == {}
    assert op.apply({"size": 3}, first) == {"p": 1}


def test_accumulator_rejects_non_numbers() -> None:
    op = compile_filter_project(parse_select("SELECT acc_sum(color) AS s FROM demo"))
    with pytest.raises(EvalError, match="acc_sum"):
        op.apply({"color": "red"}, EvalContext())


def test_changed_cols_emits_only_changed_columns_with_prefix() -> None:
    out = run('SELECT changed_cols("tt_", true, color, size) FROM demo')
    assert out == [
        {"tt_color": "red", "tt_size": 3},
        {"tt_color": "blue", "tt_size": 6},
        {"tt_size": 2},
        {"tt_color": "red", "tt_size": 4},
        {"tt_color": "yellow"},  # size is null and ignored
    ]


def test_changed_cols_with_wildcard_and_null_values() -> None:
    rows: list[dict[str, Any]] = [{"a": 1, "b": None}, {"a": 1, "b": 2}, {"a": 1.0, "b": None}]
    out = run('SELECT changed_cols("", false, * EXCEPT(b)) FROM demo', rows)
    assert out == [{"a": 1}, {}, {"a": 1.0}]  # 1 -> 1.0 is a change of type, as Go compares them
    out = run('SELECT changed_cols("c_", false, b) FROM demo', rows)
    assert out == [{}, {"c_b": 2}, {"c_b": None}]  # a first null is no change; back to null is one


def test_changed_cols_keeps_state_only_for_rows_passing_where() -> None:
    out = run('SELECT changed_cols("", true, color) FROM demo WHERE size > 2')
    assert out == [{"color": "red"}, {"color": "blue"}, None, {"color": "red"}, None]


@pytest.mark.parametrize(
    ("sql", "message"),
    [
        ('SELECT changed_cols("", true) FROM demo', "expect more than two args but got 2"),
        ("SELECT changed_cols(1, true, a) FROM demo", "Expect string type for parameter 1"),
        ('SELECT changed_cols("", "x", a) FROM demo', "Expect bool type for parameter 2"),
    ],
)
def test_changed_cols_parse_checks(sql: str, message: str) -> None:
    with pytest.raises(SqlError, match=message):
        parse_select(sql)
