"""Window planning (``runtime.plan.window``): every window kind's SQL -> its spec, the WHERE pushed below the
window or kept after it, and the errors of GROUP BY without a window."""

from __future__ import annotations

import pytest

from runtime.errors import PlanError
from runtime.ops.window import WindowSpec
from runtime.plan.window import plan_window
from runtime.sql.parser import parse_select


@pytest.mark.parametrize(
    ("window", "spec"),
    [
        ("TUMBLINGWINDOW(ss, 10)", WindowSpec("tumbling", 10_000, unit="ss")),
        ("HOPPINGWINDOW(mi, 2, 1)", WindowSpec("hopping", 120_000, hop=60_000, unit="mi")),
        ("SLIDINGWINDOW(ms, 500)", WindowSpec("sliding", 500, unit="ms")),
        ("SLIDINGWINDOW(ss, 5, 1)", WindowSpec("sliding", 5_000, delay=1_000, unit="ss")),
        ("SESSIONWINDOW(hh, 1, 2)", WindowSpec("session", 3_600_000, timeout=7_200_000, unit="hh")),
        ("COUNTWINDOW(5)", WindowSpec("count", 5)),
        ("COUNTWINDOW(5, 2)", WindowSpec("count", 5, hop=2)),
        ("STATEWINDOW(a > 1, a > 5)", WindowSpec("state", 0)),
    ],
)
def test_each_window_kind_plans_to_its_spec(window: str, spec: WindowSpec) -> None:
    plan = plan_window(parse_select(f"SELECT count(*) AS c FROM s WHERE a > 0 GROUP BY {window}"))
    assert plan is not None
    assert plan.spec == spec


@pytest.mark.parametrize(
    ("window", "below"),
    [
        ("TUMBLINGWINDOW(ss, 1)", True),
        ("HOPPINGWINDOW(ss, 2, 1)", True),
        ("SESSIONWINDOW(ss, 2, 1)", True),
        ("STATEWINDOW(a > 1, a > 5)", True),
        ("SLIDINGWINDOW(ss, 1)", False),
        ("COUNTWINDOW(3)", False),
    ],
)
def test_where_runs_below_the_window_only_for_the_kinds_that_push_it(window: str, below: bool) -> None:
    select = parse_select(f"SELECT count(*) AS c FROM s WHERE a > 0 GROUP BY {window}")
    plan = plan_window(select)
    assert plan is not None
    assert (plan.where is not None) is below
    # in event time, or when the caller keeps WHERE after the window (joins), nothing is pushed
    for kept in (plan_window(select, event_time=True), plan_window(select, push_where=False)):
        assert kept is not None and kept.where is None


def test_group_by_needs_a_window() -> None:
    with pytest.raises(PlanError, match="group by should be used with window"):
        plan_window(parse_select("SELECT color FROM s GROUP BY color"))
    assert plan_window(parse_select("SELECT color FROM s")) is None
