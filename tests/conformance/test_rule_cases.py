"""eKuiper's rule cases (``cases.json`` kind ``rule``) run end to end through ``runtime.tools.replay`` on a mock clock.

Each case's DDL, SQL and options go through the real catalog, planner and rule runtime; the recorded events
are replayed at their ``ts`` and the emissions compared with eKuiper's (trailing empty
emissions beyond the expected ones are ignored). Cases Oort does not pass yet are listed, each with a reason,
in ``unsupported_rules.toml`` and run as strict xfails, so a fixed case turns the suite red until the list is
updated.
"""

from __future__ import annotations

import tomllib
from typing import Any

import pytest
import trio

from runtime.tools.replay import replay
from tests.conformance._harness import HERE, load, record_score, same

UNSUPPORTED_FILE = HERE / "unsupported_rules.toml"
RUN_LIMIT_S = 3600.0  # virtual seconds: the longest case spans under two minutes of mock time

CASES = [case for case in load("cases") if case["kind"] == "rule"]


def _unsupported() -> dict[str, str]:
    table: dict[str, str] = tomllib.loads(UNSUPPORTED_FILE.read_text())["unsupported"]
    return table


def _params() -> list[Any]:
    known = _unsupported()
    stale = set(known) - {case["name"] for case in CASES}
    assert not stale, f"unsupported_rules.toml names unknown cases: {sorted(stale)}"
    return [
        pytest.param(
            case,
            id=case["name"],
            marks=[pytest.mark.xfail(strict=True, reason=known[case["name"]])]
            if case["name"] in known
            else [],
        )
        for case in CASES
    ]


async def run_case(case: dict[str, Any]) -> list[list[dict[str, Any]]]:
    ddl = "\n".join(stmt if stmt.rstrip().endswith(";") else stmt + ";" for stmt in case["ddl"])
    rule = {"id": "case", "sql": case["sql"], "options": case.get("options", {})}
    with trio.fail_after(RUN_LIMIT_S):
        return await replay(ddl, rule, case["input"], case.get("clock_start_ms"))


def matches(actual: list[list[dict[str, Any]]], expected: list[list[dict[str, Any]]]) -> bool:
    """Equal emissions, allowing extra trailing empty emissions (a case lists the emissions it expects; empty
    ones after them carry no data)."""
    extra = actual[len(expected) :]
    return (
        len(actual) >= len(expected)
        and all(e == [] for e in extra)
        and same(actual[: len(expected)], expected)
    )


@pytest.mark.parametrize("case", _params())
async def test_rule_case(case: dict[str, Any], autojump_clock: trio.testing.MockClock) -> None:
    actual = await run_case(case)
    assert matches(actual, case["expected"]), f"got {actual}\nexpected {case['expected']}"


async def test_rule_cases_summary(
    autojump_clock: trio.testing.MockClock, capsys: pytest.CaptureFixture[str]
) -> None:
    """Runs every case once more and reports the score; the xfail list must match exactly what fails."""
    passed: list[str] = []
    for case in CASES:
        try:
            if matches(await run_case(case), case["expected"]):
                passed.append(case["name"])
        except Exception:  # noqa: BLE001 - a case that errors simply does not pass
            pass
    failing = {case["name"] for case in CASES} - set(passed)
    record_score("rule", len(passed), len(CASES))
    with capsys.disabled():
        print(f"\nrule cases: {len(passed)}/{len(CASES)} pass")
    assert failing == set(_unsupported())
