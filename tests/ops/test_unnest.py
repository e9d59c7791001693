"""Set-returning ``unnest()`` and ``row_number()`` in projections, by plain calls (eKuiper docs
sqls/query_language_elements.md)."""

from __future__ import annotations

from typing import Any

import pytest

from runtime.model import ErrorItem, Event
from runtime.ops.project import compile_filter_project, unnest_rows
from runtime.ops.window import Pane
from runtime.plan.window import plan_window
from runtime.sql.expr import EvalContext, EvalError
from runtime.sql.parser import parse_select

ROW: dict[str, Any] = {"arr": [1, 2], "objs": [{"a": 1, "b": 2}, {"a": 3}], "a": 6, "x": 1}


def expand(sql: str, row: dict[str, Any] = ROW) -> list[dict[str, Any]]:
    op = compile_filter_project(parse_select(sql))
    out = op.apply(row, EvalContext())
    assert out is not None and op.srf_key is not None
    return unnest_rows(out, op.srf_key)


@pytest.mark.parametrize(
    ("sql", "rows"),
    [
        ("SELECT unnest(arr) FROM s", [{"unnest": 1}, {"unnest": 2}]),
        ("SELECT unnest(arr) AS col, x FROM s", [{"col": 1, "x": 1}, {"col": 2, "x": 1}]),
        # object elements spread their keys, replacing same-named columns
        ("SELECT unnest(objs), a, x FROM s", [{"a": 1, "b": 2, "x": 1}, {"a": 3, "x": 1}]),
        ("SELECT unnest(arr[0:0]) FROM s", []),  # an empty array: no rows
    ],
)
def test_unnest_expands_one_row_per_element(sql: str, rows: list[dict[str, Any]]) -> None:
    assert expand(sql) == rows


def test_unnest_of_a_non_array_is_an_error() -> None:
    with pytest.raises(EvalError, match="the argument for the unnest function should be array"):
        expand("SELECT unnest(a) FROM s")
    with pytest.raises(EvalError, match="can't find the result from the unnest function"):
        expand("SELECT unnest(missing) FROM s")


def test_projection_without_srf_has_no_srf_key() -> None:
    assert compile_filter_project(parse_select("SELECT arr FROM s")).srf_key is None


def test_unnest_in_a_window_expands_within_the_emission() -> None:
    plan = plan_window(parse_select("SELECT unnest(arr) AS v, x FROM s GROUP BY COUNTWINDOW(2)"))
    assert plan is not None
    pane = Pane(0, 0, [Event({"arr": [1, 2], "x": 1}, 0), Event({"arr": [3], "x": 2}, 0)])
    assert plan.query.evaluate(pane, EvalContext()) == [
        {"v": 1, "x": 1},
        {"v": 2, "x": 1},
        {"v": 3, "x": 2},
    ]
    bad = Pane(0, 0, [Event({"arr": 5}, 0)])
    result = plan.query.evaluate(bad, EvalContext())
    assert isinstance(result, ErrorItem)
    assert result.message == "the argument for the unnest function should be array"


def test_row_number_outside_a_window_is_one() -> None:
    op = compile_filter_project(parse_select("SELECT size, row_number() FROM s"))
    ctx = EvalContext()
    assert [op.apply({"size": n}, ctx) for n in (3, 6)] == [
        {"size": 3, "row_number": 1},
        {"size": 6, "row_number": 1},
    ]
