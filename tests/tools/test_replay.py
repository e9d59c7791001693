"""``runtime.tools.replay`` and ``oort replay``: the real engine path on a mock clock, deterministic emissions."""

from __future__ import annotations

import json
import tomllib
from pathlib import Path
from typing import Any

import pytest
import trio
import trio.testing

from runtime.cli import main
from runtime.config import RuleOptions
from runtime.metrics import RuleMetrics
from runtime.plan.catalog import Catalog
from runtime.plan.planner import plan_rule
from runtime.plan.ruledef import parse_rule
from runtime.rule.operators.window import window_node_names
from runtime.sql.ast import StreamDef
from runtime.sql.parser import parse_ddl
from runtime.tools.replay import (
    _Feed,
    default_clock_start,
    emission_json,
    replay,
    replay_registry,
    split_ddl,
)
from tests.conformance._harness import HERE, load

DDL = 'CREATE STREAM demo (color STRING, size BIGINT, ts BIGINT) WITH (DATASOURCE="demo", TYPE="mock", FORMAT="json");'
T0 = 1541152486000
EVENTS = [
    {"stream": "demo", "ts": T0 + 13, "data": {"color": "red", "size": 3}},
    {"stream": "demo", "ts": T0 + 822, "data": {"color": "blue", "size": "x"}},
    {"stream": "demo", "ts": T0 + 1632, "data": {"color": "blue", "size": 2}},
    {"stream": "demo", "ts": T0 + 2442, "data": {"color": "yellow", "size": 4}},
]
LIMIT_S = 600.0  # virtual seconds (autojump clock)


async def test_non_window_rule_emits_per_event_with_error_rows(
    autojump_clock: trio.testing.MockClock,
) -> None:
    rule = {"sql": "SELECT color, meta(topic) AS t FROM demo WHERE size > 2", "options": {"sendError": True}}
    with trio.fail_after(LIMIT_S):
        out = await replay(DDL, rule, EVENTS)
    assert out == [
        [{"color": "red", "t": "mock"}],
        [{"error": "run Where error: invalid operation string(x) > int64(2)"}],
        [{"color": "yellow", "t": "mock"}],
    ]


async def test_window_timer_fires_and_run_ends_after_the_last_event(
    autojump_clock: trio.testing.MockClock,
) -> None:
    rule = {
        "sql": "SELECT count(*) AS c, window_start() AS ws, window_end() AS we FROM demo GROUP BY TUMBLINGWINDOW(ss, 1)"
    }
    with trio.fail_after(LIMIT_S):
        started = trio.current_time()
        out = await replay(DDL, rule, EVENTS, T0)
        elapsed = trio.current_time() - started
    # Windows ending at +1 s and +2 s fire on their timers; the one holding the last event (+3 s) is not awaited.
    assert out == [[{"c": 2, "ws": T0, "we": T0 + 1000}], [{"c": 1, "ws": T0 + 1000, "we": T0 + 2000}]]
    assert elapsed == pytest.approx(2.442)


async def test_replay_is_deterministic(autojump_clock: trio.testing.MockClock) -> None:
    rule = {
        "sql": "SELECT collect(size) AS s FROM demo GROUP BY HOPPINGWINDOW(ss, 2, 1), color ORDER BY color"
    }
    with trio.fail_after(LIMIT_S):
        first = await replay(DDL, rule, EVENTS)
        second = await replay(DDL, rule, EVENTS)
    assert first == second == [[{"s": ["x"]}, {"s": [3]}], [{"s": ["x", 2]}, {"s": [3]}]]


def test_helpers() -> None:
    assert default_clock_start(EVENTS) == T0
    assert split_ddl(DDL + "\n" + DDL.replace("demo", "other")) == [DDL, DDL.replace("demo", "other")]
    assert emission_json([{"b": b"\x01"}]) == '[{"b":{"$bytes_b64":"AQ=="}}]'


def test_window_metric_node_names(tmp_path: Path) -> None:
    catalog = Catalog(tmp_path)
    stmt = parse_ddl(DDL)
    assert isinstance(stmt, StreamDef)
    catalog.put_stream(stmt)

    registry = replay_registry([], [])
    registry.register_sink("nop", lambda spec: None)  # type: ignore[arg-type,return-value]

    def names(sql: str) -> list[str]:
        return window_node_names(
            plan_rule(
                parse_rule({"id": "r", "sql": sql, "actions": [{"nop": {}}]}, RuleOptions()),
                catalog,
                registry,
            )
        )

    assert names("SELECT color FROM demo WHERE size > 1 GROUP BY TUMBLINGWINDOW(ss, 1)") == [
        "op_2_filter",
        "op_3_window",
        "op_4_project",
    ]
    assert names(
        "SELECT color FROM demo WHERE size > 1 GROUP BY COUNTWINDOW(2), color HAVING count(*) > 1 ORDER BY color"
    ) == [
        "op_2_window",
        "op_3_filter",
        "op_4_aggregate",
        "op_5_having",
        "op_6_order",
        "op_7_project",
    ]


def test_cli_replay_prints_one_json_array_per_emission(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "ddl.sql").write_text(DDL + "\n")
    (tmp_path / "rule.json").write_text(json.dumps({"sql": "SELECT color FROM demo GROUP BY COUNTWINDOW(2)"}))
    (tmp_path / "events.jsonl").write_text("".join(json.dumps(e) + "\n" for e in EVENTS))
    args = ["replay", "--ddl", str(tmp_path / "ddl.sql"), "--rule", str(tmp_path / "rule.json")]
    code = main([*args, "--input", str(tmp_path / "events.jsonl"), "--clock-start", str(T0)])
    assert code == 0
    lines = capsys.readouterr().out.splitlines()
    assert [json.loads(line) for line in lines] == [
        [{"color": "red"}, {"color": "blue"}],
        [{"color": "blue"}, {"color": "yellow"}],
    ]


def test_readme_replay_example_prints_what_readme_shows(capsys: pytest.CaptureFixture[str]) -> None:
    """README's replay example runs on the files it names (a memory stream: any source type reads the recording)."""
    root = Path(__file__).resolve().parents[2]
    example = root / "docs" / "examples" / "replay"
    args = ["replay", "--ddl", str(example / "ddl.sql"), "--rule", str(example / "rule.json")]
    assert main([*args, "--input", str(example / "events.jsonl")]) == 0
    printed = capsys.readouterr().out.strip()
    readme = (root / "README.md").read_text()
    shown = readme.split("<!-- replay-output -->", 1)[1].split("```")[1].strip()
    assert printed == shown
    assert json.loads(printed)[0]["avg_t"] == 22.5


def test_cli_replay_reports_bad_input(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "ddl.sql").write_text(DDL)
    (tmp_path / "rule.json").write_text(json.dumps({"sql": "SELECT color FROM nowhere"}))
    (tmp_path / "events.jsonl").write_text("")
    args = ["replay", "--ddl", str(tmp_path / "ddl.sql"), "--rule", str(tmp_path / "rule.json")]
    assert main([*args, "--input", str(tmp_path / "events.jsonl")]) == 1
    assert "fail to get stream nowhere" in capsys.readouterr().err
    assert main(["replay", "--ddl", "x"]) == 2


def _metric_cases() -> list[Any]:
    """Every passing window case that records eKuiper's operator metrics."""
    skip = set(tomllib.loads((HERE / "unsupported_rules.toml").read_text())["unsupported"])
    out = []
    for case in load("cases"):
        if case["kind"] != "rule" or case["name"] in skip or "GROUP BY" not in case["sql"].upper():
            continue
        if not any(k.startswith("op_") and "records" in k for k in case.get("expected_metrics", {})):
            continue
        out.append(pytest.param(case["name"], id=case["name"]))
    return out


@pytest.mark.parametrize("name", _metric_cases())
async def test_window_metrics_match_ekuiper(name: str, autojump_clock: trio.testing.MockClock) -> None:
    case = next(c for c in load("cases") if c["name"] == name)
    metrics = RuleMetrics()
    with trio.fail_after(LIMIT_S):
        await replay(
            "\n".join(case["ddl"]),
            {"sql": case["sql"], "options": case["options"]},
            case["input"],
            case["clock_start_ms"],
            metrics=metrics,
        )
    snapshot = metrics.snapshot()
    expected = {k: v for k, v in case["expected_metrics"].items() if k.startswith("op_") and "records" in k}
    assert expected
    assert {k: snapshot[k] for k in expected} == expected


async def test_the_feed_hands_out_one_run_per_stream_and_timestamp_in_recorded_order() -> None:
    """Virtual time moves once per distinct timestamp: consecutive events of one stream at one ts are one run
    (one batch, one clock jump); every source of a stream (a self-join has two) gets every run; the streams
    take turns in the recorded order; an event without a stream goes to every stream."""
    events = [
        {"stream": "a", "ts": 1, "data": {"n": 0}},
        {"stream": "a", "ts": 1, "data": {"n": 1}},
        {"stream": "b", "ts": 1, "data": {"n": 2}},
        {"stream": "a", "ts": 2, "data": {"n": 3}},
        {"ts": 3, "data": {"n": 4}},
        {"stream": "a", "data": {"n": 99}},  # no ts: a file table's row, never sent by a mock source
        {"stream": "zzz", "ts": 3, "data": {"n": 98}},  # a stream nobody reads
        {"stream": "b", "ts": 4, "effective_ts": 5, "data": {"n": 5}},
    ]
    feed = _Feed(lambda: iter(events))
    a1, a2, b = feed.register("a"), feed.register("a"), feed.register("b")
    taken: list[tuple[str, int, list[int]]] = []

    async def reader(name: str, key: int) -> None:
        while (run := await feed.take(key)) is not None:
            ts, batch = run
            taken.append((name, ts, [e["data"]["n"] for e in batch]))
            await trio.lowlevel.checkpoint()  # the turn stays taken while the batch is being sent
            feed.done()

    with trio.fail_after(5):
        async with trio.open_nursery() as nursery:
            for name, key in (("b", b), ("a2", a2), ("a1", a1)):
                nursery.start_soon(reader, name, key)
    assert taken == [
        ("a1", 1, [0, 1]),
        ("a2", 1, [0, 1]),
        ("b", 1, [2]),
        ("a1", 2, [3]),
        ("a2", 2, [3]),
        ("a1", 3, [4]),
        ("a2", 3, [4]),
        ("b", 3, [4]),
        ("b", 5, [5]),
    ]


async def test_a_recording_is_read_as_a_stream(autojump_clock: trio.testing.MockClock) -> None:
    """With an event source function and ``on_emission``, emissions come out while the input is still being
    read, and nothing is kept: memory holds the rule's state, not the recording."""
    total = 5_000
    read = 0

    def events() -> Any:
        nonlocal read
        for i in range(total):
            read += 1
            yield {"stream": "demo", "ts": T0 + i // 10, "data": {"color": "red", "size": i}}

    seen: list[tuple[int, list[Any]]] = []
    rule = {"sql": "SELECT size FROM demo WHERE size % 1000 = 0"}
    with trio.fail_after(LIMIT_S):
        kept = await replay(DDL, rule, events, on_emission=lambda rows: seen.append((read, rows)))
    assert kept == []
    assert [rows for _, rows in seen] == [[{"size": n}] for n in range(0, total, 1000)]
    # The first emission happened when only its own run and a little lookahead had been read
    # (one pass for the clock start reads one event).
    assert seen[0][0] < 50
    assert read == total + 1


async def test_same_timestamp_runs_give_the_per_event_results(autojump_clock: trio.testing.MockClock) -> None:
    """Events sharing a ts go to the rule as one batch: emissions are the same as if each came alone, for a
    stateless rule, a count window and a processing-time window whose end falls on that ts."""
    events = [
        {"stream": "demo", "ts": T0 + 1000 * (i // 3), "data": {"color": "c", "size": i}} for i in range(9)
    ]
    spread = [{**e, "ts": T0 + 1000 * (i // 3) + i % 3} for i, e in enumerate(events)]
    rules = [
        {"sql": "SELECT size FROM demo WHERE size % 2 = 0"},
        {"sql": "SELECT collect(size) AS s FROM demo GROUP BY COUNTWINDOW(2)"},
        {"sql": "SELECT collect(size) AS s FROM demo GROUP BY TUMBLINGWINDOW(ss, 1)"},
    ]
    with trio.fail_after(LIMIT_S):
        for rule in rules:
            grouped = await replay(DDL, rule, events, T0)
            one_by_one = await replay(DDL, rule, spread, T0)
            assert grouped == one_by_one, rule
    assert grouped == [[{"s": [0, 1, 2]}], [{"s": [3, 4, 5]}]]


def test_cli_replay_names_the_bad_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "ddl.sql").write_text(DDL)
    (tmp_path / "rule.json").write_text(json.dumps({"sql": "SELECT color FROM demo"}))
    first, second = json.dumps(EVENTS[0]), json.dumps(EVENTS[2])
    (tmp_path / "events.jsonl").write_text(f"{first}\n{second}\n\n{{not json\n{first}\n")
    args = ["replay", "--ddl", str(tmp_path / "ddl.sql"), "--rule", str(tmp_path / "rule.json")]
    assert main([*args, "--input", str(tmp_path / "events.jsonl")]) == 1
    captured = capsys.readouterr()
    assert "events.jsonl:4: invalid JSON" in captured.err
    # Read as a stream: what was replayed before the bad line came out (its lookahead, one event, did not).
    assert captured.out.splitlines() == ['[{"color":"red"}]']


async def test_a_crowded_timestamp_is_sent_in_bounded_batches() -> None:
    from runtime.tools.replay import RUN_LIMIT

    events = [{"stream": "a", "ts": 7, "data": {"n": i}} for i in range(2 * RUN_LIMIT + 5)]
    feed = _Feed(events)
    reader = feed.register("a")
    sizes = []
    with trio.fail_after(5):
        while (run := await feed.take(reader)) is not None:
            assert run[0] == 7
            sizes.append(len(run[1]))
            feed.done()
    assert sizes == [RUN_LIMIT, RUN_LIMIT, 5]
