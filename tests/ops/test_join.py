"""The pure join code by plain calls: join kinds, the joined-row shape, ON with aliases, tables, event-time order."""

from __future__ import annotations

from typing import Any

import pytest

from runtime.errors import PlanError
from runtime.model import Event, JoinedRow, Row
from runtime.ops.join import (
    LookupTable,
    ScanTable,
    TableSet,
    compile_join,
    emitter,
    make_table,
    merge,
    source_row,
)
from runtime.ops.project import compile_filter_project
from runtime.ops.window import Watermark
from runtime.sql.expr import EvalContext, EvalError, compile_expr
from runtime.sql.parser import parse_select

A = [{"id": 1, "x": "a1"}, {"id": 2, "x": "a2"}]
B = [{"id": 2, "y": "b2"}, {"id": 3, "y": "b3"}]


def _parts(**rows: list[Row]) -> dict[str, list[JoinedRow]]:
    return {ref: [source_row(ref, r) for r in part] for ref, part in rows.items()}


def _join(sql: str, **rows: list[Row]) -> list[JoinedRow]:
    return compile_join(parse_select(sql)).join(_parts(**rows), EvalContext())


@pytest.mark.parametrize(
    ("kind", "expected"),
    [
        ("INNER", [{"id": 2, "x": "a2", "y": "b2"}]),
        ("LEFT", [{"id": 1, "x": "a1"}, {"id": 2, "x": "a2", "y": "b2"}]),
        ("RIGHT", [{"id": 2, "x": "a2", "y": "b2"}, {"id": 3, "y": "b3"}]),
        ("FULL", [{"id": 1, "x": "a1"}, {"id": 2, "x": "a2", "y": "b2"}, {"id": 3, "y": "b3"}]),
    ],
)
def test_join_kinds(kind: str, expected: list[Row]) -> None:
    rows = _join(f"SELECT * FROM a {kind} JOIN b ON a.id = b.id", a=A, b=B)
    assert rows == expected


def test_cross_join_is_the_cartesian_product_left_major() -> None:
    rows = _join("SELECT * FROM a CROSS JOIN b", a=A, b=B)
    assert [(r.tables["a"]["id"], r.tables["b"]["id"]) for r in rows] == [(1, 2), (1, 3), (2, 2), (2, 3)]


def test_merged_row_left_wins_and_keeps_each_part() -> None:
    row = merge(source_row("a", {"id": 1, "size": 3}), source_row("b", {"id": 9, "size": 6, "name": "n"}))
    assert row == {"id": 1, "size": 3, "name": "n"}  # what * and unqualified names see
    assert row.tables == {"a": {"id": 1, "size": 3}, "b": {"id": 9, "size": 6, "name": "n"}}
    assert emitter(row) is None and emitter(source_row("a", {})) == "a" and emitter({"a": 1}) is None


def test_qualified_and_unqualified_references_on_a_joined_row() -> None:
    row = merge(source_row("a", {"ts": 1}), source_row("b", {"ts": 2, "only_b": True}))
    ctx = EvalContext()
    select = parse_select(
        "SELECT a.ts AS p, b.ts AS q, ts, only_b, c.ts AS r FROM a INNER JOIN b ON a.ts = b.ts"
    )
    out = compile_filter_project(select).apply(row, ctx)
    # c is not a source, so c.ts means the nested key ts of column c (null here).
    assert out == {"p": 1, "q": 2, "ts": 1, "only_b": True}
    # a qualified name on a single-source row reads that row; another source's name reads nothing
    assert (
        compile_expr(parse_select("SELECT b.ts FROM a INNER JOIN b").fields[0].expr)(
            source_row("a", {"ts": 5}), ctx
        )
        is None
    )


def test_stream_wildcard_selects_one_side() -> None:
    row = merge(source_row("a", {"id": 1, "x": "a1"}), source_row("b", {"id": 2, "y": "b2"}))
    select = parse_select("SELECT b.*, a.x FROM a INNER JOIN b ON a.id = b.id")
    assert compile_filter_project(select).apply(row, EvalContext()) == {"id": 2, "y": "b2", "x": "a1"}


def test_on_may_use_select_aliases() -> None:
    sql = "SELECT a.id AS left_id, b.id AS right_id FROM a INNER JOIN b ON left_id = right_id"
    assert [r.tables["b"]["y"] for r in _join(sql, a=A, b=B)] == ["b2"]


def test_on_error_fails_the_whole_join() -> None:
    with pytest.raises(EvalError, match=r"run Join error: invalid operation int64\(1\) = string\(1\)"):
        _join("SELECT * FROM a INNER JOIN b ON a.id = b.id", a=[{"id": 1}], b=[{"id": "1"}])


def test_three_sources_join_left_to_right() -> None:
    sql = "SELECT * FROM a INNER JOIN b ON a.id = b.id LEFT JOIN c ON b.id = c.id"
    rows = _join(sql, a=A, b=B, c=[{"id": 2, "z": "c2"}, {"id": 2, "z": "c2bis"}])
    assert [r.get("z") for r in rows] == ["c2", "c2bis"]


def test_join_events_groups_a_window_by_source_and_keeps_the_left_time() -> None:
    plan = compile_join(parse_select("SELECT * FROM a INNER JOIN b ON a.id = b.id"))
    events = [
        Event(source_row("b", {"id": 2, "y": "b2"}), 5, {"from": "b"}),
        Event(source_row("a", {"id": 2, "x": "a2"}), 7, {"from": "a"}),
        Event(source_row("a", {"id": 4}), 8),
    ]
    (joined,) = plan.join_events(events, EvalContext())
    assert joined.data == {"id": 2, "x": "a2", "y": "b2"}
    assert (joined.ts, joined.meta) == (7, {"from": "a"})


def test_join_events_reads_scan_tables() -> None:
    plan = compile_join(parse_select("SELECT * FROM a INNER JOIN t ON a.id = t.id"))
    table = ScanTable(None)
    tables = TableSet({"t": table})
    tables.update("t", [source_row("t", {"id": 1, "name": "one"})])
    (joined,) = plan.join_events([Event(source_row("a", {"id": 1}), 3)], EvalContext(), tables)
    assert joined.data == {"id": 1, "name": "one"} and tables.rows_seen == 1


def test_scan_table_retains_the_latest_rows_or_the_last_snapshot() -> None:
    retained = ScanTable(2)
    retained.update([source_row("t", {"n": i}) for i in range(3)])
    retained.update([source_row("t", {"n": 3})])
    assert [r["n"] for r in retained.rows()] == [2, 3]
    snapshot = ScanTable(None, snapshot=True)
    snapshot.update([source_row("t", {"n": 0}), source_row("t", {"n": 1})])
    snapshot.update([source_row("t", {"n": 2})])
    assert [r["n"] for r in snapshot.rows()] == [2]


@pytest.mark.parametrize(
    ("args", "kind", "size"),
    [
        (("scan", "", 0, "file"), ScanTable, 3),  # a file table holds the whole file
        (("scan", "", 0, "memory"), ScanTable, 1),  # others: the default retain size
        (("scan", "", 2, "memory"), ScanTable, 2),
        (("lookup", "id", 0, "memory"), LookupTable, 3),
    ],
)
def test_make_table_from_options(args: tuple[str, str, int, str], kind: type, size: int) -> None:
    table = make_table(*args)
    assert isinstance(table, kind)
    table.update([source_row("t", {"id": i}) for i in range(3)])
    assert len(table) == size


def test_lookup_table_upserts_deletes_and_probes_by_key() -> None:
    table = LookupTable("id")
    table.update(
        [source_row("lk", r) for r in ({"id": 1, "v": "a"}, {"id": 1, "v": "b"}, {"id": 2}, {"v": "no key"})]
    )
    assert table.find(1) == [{"id": 1, "v": "b"}] and len(table) == 2
    table.update([source_row("lk", {"id": 2, "rowkind": "delete"})])
    assert table.find(2) == [] and table.find(None) == []


def test_lookup_join_probes_with_the_key_equality_and_checks_the_rest_of_on() -> None:
    select = parse_select("SELECT * FROM s LEFT JOIN lk ON lk.id = s.k AND lk.v != 'skip'")
    plan = compile_join(select, {"lk": "id"})
    lookup = LookupTable("id")
    lookup.update([source_row("lk", {"id": 1, "v": "one"}), source_row("lk", {"id": 2, "v": "skip"})])
    rows = plan.join(_parts(s=[{"k": 1}, {"k": 2}, {"k": 3}]), EvalContext(), {"lk": lookup})
    assert rows == [{"k": 1, "id": 1, "v": "one"}, {"k": 2}, {"k": 3}]


@pytest.mark.parametrize(
    ("sql", "message"),
    [
        ("SELECT * FROM s INNER JOIN lk ON lk.v = s.k", "needs an equality on its key"),
        ("SELECT * FROM s INNER JOIN lk ON lk.id = lk.v", "needs an equality on its key"),
        ("SELECT * FROM s FULL JOIN lk ON lk.id = s.k", "only INNER and LEFT"),
        ("SELECT * FROM lk INNER JOIN s ON lk.id = s.k", "cannot be the first source"),
    ],
)
def test_lookup_join_plan_errors(sql: str, message: str) -> None:
    with pytest.raises(PlanError, match=message):
        compile_join(parse_select(sql), {"lk": "id"})


def test_watermark_over_several_streams_waits_for_the_slowest() -> None:
    mark = Watermark(0, ["a", "b"])

    def push(stream: str, ts: int) -> list[Any]:
        return [e.ts for e in mark.push(Event({}, ts), stream)]

    assert push("a", 10) == []  # b has not reported yet: no watermark
    assert push("a", 20) == []
    assert push("b", 15) == [10, 15]  # min(20, 15)
    assert push("b", 5) == []  # late for the watermark 15: dropped
    assert mark.dropped == 1
    assert push("b", 30) == [20]
