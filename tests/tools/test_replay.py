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
from runtime.tools.replay import default_clock_start, emission_json, replay, replay_registry, split_ddl
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
