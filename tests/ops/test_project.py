"""The fused WHERE + SELECT operator of non-window rules, on real rows (eKuiper docs
sqls/query_language_elements.md; sqls/data_types.md and the operators of sqls/query_language_elements.md)."""

from __future__ import annotations

from typing import Any

import pytest

from runtime.errors import PlanError, SqlError
from runtime.ops.project import FilterProject, compile_filter_project
from runtime.sql.expr import EvalContext, EvalError
from runtime.sql.parser import parse_select


def _op(sql: str, **kwargs: bool) -> FilterProject:
    return compile_filter_project(parse_select(sql), **kwargs)


def _apply(sql: str, row: dict[str, Any], **kwargs: bool) -> dict[str, Any] | None:
    return _op(sql, **kwargs).apply(row, EvalContext(rule_id="r1", meta={"topic": "mock"}, ts=42))


@pytest.mark.parametrize(
    ("row", "expected"),
    [
        ({"temperature": 25, "id": 1}, {"t2": 50, "id": 1}),
        ({"temperature": 20.5, "id": "a"}, {"t2": 41.0, "id": "a"}),
        ({"temperature": 20, "id": 1}, None),  # WHERE is strict
        ({"id": 1}, None),  # comparison with null is false
    ],
)
def test_filter_and_project(row: dict[str, Any], expected: dict[str, Any] | None) -> None:
    assert _apply("SELECT temperature * 2 AS t2, id FROM s WHERE temperature > 20", row) == expected


@pytest.mark.parametrize(
    ("sql", "row", "expected"),
    [
        ("SELECT demo.ts, a->b, children[0], upper(color), 1 + 1, size * 2 FROM demo",
         {"ts": 1, "a": {"b": 2}, "children": [3], "color": "red", "size": 4},
         {"ts": 1, "b": 2, "children": 3, "upper": "RED", "kuiper_field_0": 2, "kuiper_field_1": 8}),
        ("SELECT size * 5 FROM demo", {"color": "red"}, {}),  # null results are omitted
        ("SELECT * FROM demo", {"a": 1, "b": None}, {"a": 1}),
        ("SELECT *, a + 1 AS c FROM demo", {"a": 1, "b": 2}, {"a": 1, "b": 2, "c": 2}),
        ("SELECT * EXCEPT(b) REPLACE(a * 10 AS a) FROM demo", {"a": 1, "b": 2, "c": 3}, {"a": 10, "c": 3}),
        ("SELECT demo.* FROM demo", {"a": 1}, {"a": 1}),
        ("SELECT meta(topic) AS t, rule_id() AS r, event_time() AS e FROM demo", {}, {"t": "mock", "r": "r1", "e": 42}),
    ],
)  # fmt: skip
def test_output_keys(sql: str, row: dict[str, Any], expected: dict[str, Any]) -> None:
    assert _apply(sql, row) == expected


def test_send_nil_field_keeps_nulls() -> None:
    assert _apply("SELECT size * 5 AS s, color FROM demo", {"color": None}, send_nil_field=True) == {
        "s": None,
        "color": None,
    }


@pytest.mark.parametrize(
    ("sql", "row", "expected"),
    [
        ("SELECT a + 1 AS b, size AS a FROM demo", {"size": 3}, {"b": 4, "a": 3}),
        ("SELECT size + 1 AS size, size + 1 AS b FROM demo", {"size": 3}, {"size": 4, "b": 5}),
        ("SELECT lower(color) AS lc FROM demo WHERE lc = 'red'", {"color": "RED"}, {"lc": "red"}),
        ("SELECT lower(color) AS lc FROM demo WHERE lc = 'red'", {"color": "blue"}, None),
        ("SELECT size * 2 AS d INVISIBLE, d + 1 AS e FROM demo", {"size": 3}, {"e": 7}),
    ],
)
def test_alias_references(sql: str, row: dict[str, Any], expected: dict[str, Any] | None) -> None:
    assert _apply(sql, row) == expected


def test_cyclic_aliases_are_rejected() -> None:
    with pytest.raises(SqlError, match="select fields have cycled alias"):
        _op("SELECT b + 1 AS a, a + 1 AS b FROM demo")


def test_where_error_message() -> None:
    with pytest.raises(EvalError) as info:
        _apply("SELECT color FROM demo WHERE size >= 3", {"size": "string"})
    assert info.value.message == "run Where error: invalid operation string(string) >= int64(3)"


@pytest.mark.parametrize(
    ("sql", "message"),
    [
        ("SELECT size * 5 FROM ldemo",
         "run Select error: expr: binaryExpr:{ ldemo.size * 5 } meet error, err:invalid operation string(string) * int64(5)"),
        ("SELECT size * 5 as c FROM ldemo",
         "run Select error: alias: c expr: binaryExpr:{ ldemo.size * 5 } meet error, err:invalid operation string(string) * int64(5)"),
    ],
)  # fmt: skip
def test_select_error_message(sql: str, message: str) -> None:
    with pytest.raises(EvalError) as info:
        _apply(sql, {"size": "string"})
    assert info.value.message == message


def test_errors_are_per_row() -> None:
    op = _op("SELECT size * 5 AS c FROM ldemo")
    ctx = EvalContext(rule_id="r")
    results: list[Any] = []
    for row in ({"size": 3}, {"size": "x"}, {"size": 2}, {}):
        try:
            results.append(op.apply(row, ctx))
        except EvalError:
            results.append("error")
    assert results == [{"c": 15}, "error", {"c": 10}, {}]


def test_input_row_is_not_mutated() -> None:
    row = {"a": 1}
    out = _apply("SELECT *, 2 AS b FROM demo", row)
    assert out == {"a": 1, "b": 2} and row == {"a": 1} and out is not row


def test_window_queries_need_another_operator() -> None:
    with pytest.raises(PlanError):
        _op("SELECT count(*) FROM demo GROUP BY TUMBLINGWINDOW(ss, 1)")


def test_output_keys_attribute() -> None:
    assert _op("SELECT a, b AS x, *, 1 FROM demo").output_keys == ("a", "x", "*", "kuiper_field_0")
