"""STATEWINDOW: the pure state machine by plain calls, then whole rules through the replay path on a mock clock."""

from __future__ import annotations

from typing import Any

import pytest
import trio
import trio.testing

from runtime.errors import SqlError
from runtime.model import Event
from runtime.ops.window import Pane, StateConditions, WindowSpec, make_window
from runtime.tools.replay import replay


def ev(ts: int, a: int, key: str = "x") -> Event:
    return Event({"a": a, "id": key}, ts, {})


def values(panes: list[Pane]) -> list[tuple[int, int, list[int]]]:
    return [(p.start, p.end, [e.data["a"] for e in p.events]) for p in panes]


def feed(conditions: StateConditions, events: list[Event]) -> list[tuple[int, int, list[int]]]:
    window = make_window(WindowSpec("state", 0), 0, None, conditions)
    out: list[Pane] = []
    for event in events:
        assert window.fire(event.ts) == []  # no timers: only events open and emit state windows
        out.extend(window.add(event))
    assert window.next_due is None
    return values(out)


def is_(n: int) -> Any:
    return lambda e: e.data["a"] == n


def test_begin_and_emit_conditions_bound_the_window_inclusively() -> None:
    events = [ev(1, 0), ev(2, 1), ev(3, 0), ev(4, 1), ev(5, 2), ev(6, 0), ev(7, 2), ev(8, 1), ev(9, 2)]
    # 0 before any begin is dropped; a begin while open is just content; 2 while closed is dropped.
    assert feed(StateConditions(is_(1), is_(2)), events) == [(2, 5, [1, 0, 1, 2]), (8, 9, [1, 2])]


def test_the_opening_event_is_not_checked_against_emit() -> None:
    both = StateConditions(lambda e: e.data["a"] > 0, lambda e: e.data["a"] > 0)
    assert feed(both, [ev(1, 1), ev(2, 1), ev(3, 1)]) == [(1, 2, [1, 1])]


def test_single_condition_cuts_at_every_true_event() -> None:
    events = [ev(1, 0), ev(2, 5), ev(3, 0), ev(4, 0), ev(5, 5), ev(6, 5), ev(7, 0)]
    # Each true event after the first emits what came before it and starts the next window with itself.
    assert feed(StateConditions(is_(5)), events) == [(2, 5, [5, 0, 0]), (5, 6, [5])]


def test_partitions_keep_separate_windows() -> None:
    partition = StateConditions(is_(1), is_(2), lambda e: e.data["id"])
    events = [ev(1, 1, "x"), ev(2, 1, "y"), ev(3, 0, "x"), ev(4, 2, "y"), ev(5, 2, "x")]
    assert feed(partition, events) == [(2, 4, [1, 2]), (1, 5, [1, 0, 2])]


DDL = 'CREATE STREAM demo (id STRING, a BIGINT) WITH (TYPE="memory", DATASOURCE="d");'
T0 = 1_700_000_000_000
EVENTS = [
    {"stream": "demo", "ts": T0 + i * 1000, "data": {"id": key, "a": a}}
    for i, (key, a) in enumerate([("x", 0), ("x", 1), ("y", 1), ("x", 0), ("y", 2), ("x", 2), ("x", 0)])
]


async def run(sql: str) -> list[list[dict[str, Any]]]:
    with trio.fail_after(60):
        return await replay(DDL, {"sql": sql}, EVENTS)


async def test_rule_with_begin_and_emit(autojump_clock: trio.testing.MockClock) -> None:
    sql = (
        "SELECT count(*) AS n, window_start() AS ws, window_end() AS we FROM demo "
        "GROUP BY STATEWINDOW(a = 1, a = 2)"
    )
    assert await run(sql) == [[{"n": 4, "ws": T0 + 1000, "we": T0 + 4000}]]


async def test_rule_partitioned_by_device(autojump_clock: trio.testing.MockClock) -> None:
    sql = (
        "SELECT id, count(*) AS n, window_start() AS ws, window_end() AS we FROM demo "
        "GROUP BY STATEWINDOW(a = 1, a = 2) OVER (PARTITION BY id)"
    )
    assert await run(sql) == [
        [{"id": "y", "n": 2, "ws": T0 + 2000, "we": T0 + 4000}],
        [{"id": "x", "n": 3, "ws": T0 + 1000, "we": T0 + 5000}],
    ]


async def test_rule_with_one_condition(autojump_clock: trio.testing.MockClock) -> None:
    sql = "SELECT collect(a) AS c FROM demo GROUP BY STATEWINDOW(a >= 1)"
    assert await run(sql) == [[{"c": [1]}], [{"c": [1, 0]}], [{"c": [2]}]]


async def test_where_runs_below_a_state_window_as_in_ekuiper(autojump_clock: trio.testing.MockClock) -> None:
    # Only x's events reach the window: it opens at x's a=1 and is emitted at x's a=2.
    sql = "SELECT a FROM demo WHERE id = 'x' GROUP BY STATEWINDOW(a = 1, a = 2)"
    assert await run(sql) == [[{"a": 1}, {"a": 0}, {"a": 2}]]


@pytest.mark.parametrize("args", ["", "a = 1, a = 2, a = 3"])
async def test_arity_is_checked_when_parsed(args: str, autojump_clock: trio.testing.MockClock) -> None:
    with pytest.raises(SqlError, match="statewindow"):
        await run(f"SELECT a FROM demo GROUP BY STATEWINDOW({args})")
