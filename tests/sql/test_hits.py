"""``last_hit_*()`` and ``last_agg_hit_*()`` by plain calls: which clause records a hit, and that every read
sees the state before the current hit."""

from __future__ import annotations

from typing import Any

from runtime.model import Event
from runtime.ops.project import compile_filter_project
from runtime.ops.window import Pane
from runtime.plan.window import plan_window
from runtime.sql.expr import EvalContext
from runtime.sql.functions.hits import AGG_HIT_COUNT, AGG_HIT_TIME, HIT_COUNT, HIT_TIME, record_hit
from runtime.sql.parser import parse_select

SIZES = [3, 6, 2, 4, 1]


def run(sql: str) -> list[dict[str, Any] | None]:
    op = compile_filter_project(parse_select(sql))
    ctx = EvalContext()
    out = []
    for i, size in enumerate(SIZES):
        ctx.ts = 1000 * (i + 1)
        out.append(op.apply({"size": size}, ctx))
    return out


def test_state_starts_at_zero_and_records_count_and_time() -> None:
    ctx = EvalContext(ts=42)
    assert ctx.state.get(HIT_COUNT, 0) == 0
    record_hit(ctx)
    record_hit(ctx)
    assert (ctx.state[HIT_COUNT], ctx.state[HIT_TIME]) == (2, 42)


def test_select_reads_the_state_before_each_row_passing_where() -> None:
    out = run("SELECT size, last_hit_count() AS c, last_hit_time() AS t FROM demo WHERE size > 2")
    assert out == [
        {"size": 3, "c": 0, "t": 0},
        {"size": 6, "c": 1, "t": 1000},
        None,
        {"size": 4, "c": 2, "t": 2000},
        None,
    ]


def test_where_counts_only_the_rows_it_passes() -> None:
    out = run("SELECT size FROM demo WHERE last_hit_count() < 2")
    assert out == [{"size": 3}, {"size": 6}, None, None, None]


def test_where_through_an_alias_counts_once_per_hit() -> None:
    out = run("SELECT size, last_hit_count() AS lc FROM demo WHERE size < 5 AND lc < 2")
    assert out == [{"size": 3, "lc": 0}, None, {"size": 2, "lc": 1}, None, None]


def test_window_trigger_records_a_hit_when_it_fires() -> None:
    plan = plan_window(
        parse_select(
            "SELECT count(*) FROM s GROUP BY SlidingWindow(ss, 2) OVER (WHEN ts - last_hit_time() > 1000)"
        )
    )
    assert plan is not None and plan.trigger is not None
    ctx = EvalContext()
    fired = []
    for ts in (5000, 5800, 6100, 6500, 7200):
        ctx.ts = ts
        fired.append(plan.trigger({"ts": ts}, ctx))
    assert fired == [True, False, True, False, True]
    assert ctx.state[HIT_TIME] == 7200


def test_last_agg_hit_counts_groups_passing_having() -> None:
    plan = plan_window(
        parse_select(
            "SELECT count(*) AS n, last_agg_hit_count() AS lc, last_agg_hit_time() AS lt FROM s "
            "GROUP BY TumblingWindow(ss, 1) HAVING lc < 2"
        )
    )
    assert plan is not None
    ctx = EvalContext()
    emitted = []
    for end in (1000, 2000, 3000):
        pane = Pane(end - 1000, end, [Event({"a": 1}, end - 10)])
        emitted.append(plan.query.evaluate(pane, ctx))
    assert emitted == [[{"n": 1, "lc": 0, "lt": 0}], [{"n": 1, "lc": 1, "lt": 1000}], None]
    assert ctx.state[AGG_HIT_COUNT] == 2


def test_aggregate_arguments_see_aliases_and_each_row_event_time() -> None:
    plan = plan_window(
        parse_select(
            "SELECT event_time() AS et, last_value(et, true) AS last FROM s GROUP BY TumblingWindow(ss, 1)"
        )
    )
    assert plan is not None
    pane = Pane(0, 1000, [Event({"a": 1}, 100), Event({"a": 2}, 700)])
    assert plan.query.evaluate(pane, EvalContext()) == [{"et": 1000, "last": 700}]


def test_having_aggregate_without_select_aggregate_judges_the_whole_pane() -> None:
    # eKuiper: only SELECT aggregates make one row per group; HAVING over an ungrouped window keeps every row.
    plan = plan_window(
        parse_select(
            "SELECT a FROM s GROUP BY TumblingWindow(ss, 1) HAVING count(*) > 1 AND last_agg_hit_count() < 2"
        )
    )
    assert plan is not None
    ctx = EvalContext()

    def pane(end: int, *values: int) -> Pane:
        return Pane(end - 1000, end, [Event({"a": v}, end - 10) for v in values])

    assert plan.query.evaluate(pane(1000, 1, 2), ctx) == [{"a": 1}, {"a": 2}]
    assert plan.query.evaluate(pane(2000, 3), ctx) is None  # count(*) = 1
    assert plan.query.evaluate(pane(3000, 4, 5), ctx) == [{"a": 4}, {"a": 5}]
    assert plan.query.evaluate(pane(4000, 6, 7), ctx) is None  # two hits so far
    assert (ctx.state[AGG_HIT_COUNT], ctx.state[AGG_HIT_TIME]) == (2, 3000)


def test_pane_having_on_an_empty_pane_emits_nothing() -> None:
    plan = plan_window(parse_select("SELECT a FROM s GROUP BY TumblingWindow(ss, 1) HAVING count(*) > 0"))
    assert plan is not None
    assert plan.query.evaluate(Pane(0, 1000, []), EvalContext()) is None
