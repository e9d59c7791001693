"""``dedup_trigger`` by plain calls: eKuiper's histogram cases (``dedup_trigger_node_test.go``), the holding
queue, and the plan rewrite of the SELECT field."""

from __future__ import annotations

from typing import Any

import pytest

from runtime.errors import PlanError
from runtime.model import Event
from runtime.ops.dedup import DedupSpec, DedupTrigger, Histogram, dedup_ranges, extract_dedup
from runtime.sql.ast import FieldRef
from runtime.sql.expr import EvalError
from runtime.sql.parser import parse_select

# (args start, end, now, expire), histogram after, ranges: stateful, in order.
NO_EXPIRY = [
    ((100, 200, 150, 1000), [(100, 200)], [("100", "200")]),
    ((50, 70, 160, 1000), [(50, 70), (100, 200)], [("50", "70")]),
    ((250, 270, 170, 1000), [(50, 70), (100, 200), (250, 270)], [("250", "270")]),
    ((80, 260, 180, 1000), [(50, 70), (80, 270)], [("80", "100"), ("200", "250")]),
    ((280, 290, 190, 1000), [(50, 70), (80, 270), (280, 290)], [("280", "290")]),
    ((30, 40, 200, 1000), [(30, 40), (50, 70), (80, 270), (280, 290)], [("30", "40")]),
    ((60, 275, 210, 1000), [(30, 40), (50, 275), (280, 290)], [("70", "80"), ("270", "275")]),
    ((35, 285, 220, 1000), [(30, 290)], [("40", "50"), ("275", "280")]),
    ((25, 300, 230, 1000), [(25, 300)], [("25", "30"), ("290", "300")]),
]
WITH_EXPIRY = [
    ((100, 200, 150, 100), [(100, 200)], [("100", "200")]),
    ((50, 70, 160, 100), [(60, 70), (100, 200)], [("60", "70")]),
    ((250, 270, 170, 100), [(60, 70), (100, 200), (250, 270)], [("250", "270")]),
    ((80, 260, 180, 100), [(80, 270)], [("80", "100"), ("200", "250")]),
    ((280, 290, 190, 100), [(80, 270), (280, 290)], [("280", "290")]),
    ((30, 40, 200, 100), [(80, 270), (280, 290)], None),  # wholly expired: nothing, state kept
    ((60, 275, 210, 100), [(80, 275), (280, 290)], [("270", "275")]),
    ((35, 285, 220, 100), [(80, 290)], [("275", "280")]),
    ((25, 300, 230, 100), [(80, 300)], [("290", "300")]),
]


@pytest.mark.parametrize("cases", [NO_EXPIRY, WITH_EXPIRY], ids=["no-expiry", "expiry"])
def test_histogram_cases_of_ekuiper(cases: list[Any]) -> None:
    hg: Histogram = []
    for (start, end, now, expire), after, expected in cases:
        ranges, hg = dedup_ranges(hg, start, end, now, expire)
        want = None if expected is None else [{"start_key": s, "end_key": e} for s, e in expected]
        assert (ranges, hg) == (want, after), (start, end, now)


def test_an_already_sent_range_yields_nothing() -> None:
    ranges, hg = dedup_ranges([(100, 200)], 120, 180, 150, 1000)
    assert (ranges, hg) == (None, [(100, 200)])


SPEC = DedupSpec("ranges", "begin", "finish", "ts", 99999)


def _event(begin: Any, finish: Any, ts: Any, rule_id: str) -> Event:
    return Event({"begin": begin, "finish": finish, "ts": ts, "ruleId": rule_id}, 0)


def test_rows_wait_for_their_end_and_leave_in_end_order() -> None:
    trigger = DedupTrigger(SPEC)
    assert trigger.add(_event(100, 200, 150, "test")) == ([], 50)
    assert trigger.add(_event(110, 210, 160, "test")) == ([], 40)
    released, wait = trigger.add(_event(90, 180, 180, "new"))
    assert [e.data["ranges"] for e in released] == [[{"start_key": "90", "end_key": "180"}]]
    assert wait == 20 and trigger.held == 2
    released, wait = trigger.add(_event(1700, 1800, 1800, "new"))
    assert [(e.data["begin"], e.data["ranges"]) for e in released] == [
        (100, [{"start_key": "180", "end_key": "200"}]),
        (110, [{"start_key": "200", "end_key": "210"}]),
        (1700, [{"start_key": "1700", "end_key": "1800"}]),
    ]
    assert wait is None and trigger.held == 0


def test_the_timer_releases_the_earliest_end() -> None:
    trigger = DedupTrigger(SPEC)
    trigger.add(_event(100, 200, 150, "a"))
    trigger.add(_event(100, 300, 150, "b"))
    released, wait = trigger.fire()
    assert [e.data["ruleId"] for e in released] == ["a"] and wait == 100
    released, wait = trigger.fire()
    assert [e.data["ranges"] for e in released] == [[{"start_key": "200", "end_key": "300"}]]
    assert wait is None


def test_equal_ends_leave_in_arrival_order_across_many_held_rows() -> None:
    trigger = DedupTrigger(SPEC)
    ends = [(i * 7919) % 500 + 1000 for i in range(2000)]  # scrambled, with repeats
    for i, end in enumerate(ends):
        assert trigger.add(_event(end - 10, end, 0, str(i)))[0] == []
    assert trigger.held == 2000
    order: list[tuple[int, int]] = []
    while trigger.held:
        released, _ = trigger.fire()
        order.extend((e.data["finish"], int(e.data["ruleId"])) for e in released)
    assert order == sorted((end, i) for i, end in enumerate(ends))  # by end, then arrival


@pytest.mark.parametrize(
    ("event", "message"),
    [
        (Event({"begin": 1, "ts": 1}, 0), "dedup_trigger finish is missing"),
        (_event("x", 2, 1, "r"), "dedup_trigger start time x is not int64"),
        (_event(5, 2, 1, "r"), "dedup_trigger start time 5 is greater than end time 2"),
        (_event(1, 2, None, "r"), "dedup_trigger now time <nil> is not int64"),
        (_event(float("-inf"), 2, 1, "r"), "dedup_trigger start time -Inf is not int64"),
        (_event(1, float("inf"), 1, "r"), r"dedup_trigger end time \+Inf is not int64"),
        (_event(1, 2, float("nan"), "r"), "dedup_trigger now time NaN is not int64"),
    ],
)
def test_bad_rows_are_errors(event: Event, message: str) -> None:
    with pytest.raises(EvalError, match=message):
        DedupTrigger(SPEC).add(event)


def test_the_select_field_becomes_a_column_reference() -> None:
    extracted = extract_dedup(parse_select("SELECT a, dedup_trigger(b, e, n, 10) AS r FROM s"))
    assert extracted is not None
    spec, select = extracted
    assert spec == DedupSpec("r", "b", "e", "n", 10)
    assert select.fields[1].expr == FieldRef(None, "r") and select.fields[1].alias == "r"
    unnamed = extract_dedup(parse_select("SELECT dedup_trigger(b, e, n, 10) FROM s"))
    assert unnamed is not None and unnamed[0].column == "dedup_trigger"
    assert extract_dedup(parse_select("SELECT a FROM s")) is None


@pytest.mark.parametrize(
    ("sql", "message"),
    [
        ("SELECT dedup_trigger(b, e, n, 1), dedup_trigger(b, e, n, 2) AS x FROM s", "only one dedup_trigger"),
        ("SELECT unnest(a), dedup_trigger(b, e, n, 1) FROM s", "unnest\\(\\) cannot be combined"),
        ("SELECT lag(a), dedup_trigger(b, e, n, 1) FROM s", "lag\\(\\) cannot be combined"),
    ],
)
def test_unsupported_combinations_are_refused(sql: str, message: str) -> None:
    with pytest.raises(PlanError, match=message):
        extract_dedup(parse_select(sql))
