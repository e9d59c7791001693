"""Expression micro-benchmark (issue 3): rows/s of a compiled WHERE + 4-field projection, in process.

Oort: ``compile_filter_project`` of ``SELECT id, temperature, humidity, ts FROM s WHERE temperature > 50``,
applied row by row exactly as the rule operator does. Baseline: the same filter and projection written by hand
in Python (a dict comprehension behind an ``if``), the fastest a pure-Python engine could hope for.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from runtime.ops.project import compile_filter_project
from runtime.sql.parser import parse_select
from runtime.sql.values import EvalContext

SQL = "SELECT id, temperature, humidity, ts FROM s WHERE temperature > 50"


def make_rows(n: int) -> list[dict[str, Any]]:
    # Half of the rows pass the WHERE, so both branches are measured.
    return [
        {"temperature": 20.5 + (i % 2) * 40, "humidity": 51, "ts": 1700000000000 + i, "id": f"dev-{i % 100}"}
        for i in range(n)
    ]


def oort_runner() -> Callable[[list[dict[str, Any]]], int]:
    op = compile_filter_project(parse_select(SQL))
    apply = op.apply
    ctx = EvalContext(rule_id="bench")

    def run(rows: list[dict[str, Any]]) -> int:
        kept = 0
        for row in rows:
            if apply(row, ctx) is not None:
                kept += 1
        return kept

    return run


def baseline_runner() -> Callable[[list[dict[str, Any]]], int]:
    def run(rows: list[dict[str, Any]]) -> int:
        kept = 0
        for row in rows:
            t = row.get("temperature")
            if t is not None and t > 50:
                out = {
                    "id": row.get("id"),
                    "temperature": t,
                    "humidity": row.get("humidity"),
                    "ts": row.get("ts"),
                }
                if out is not None:
                    kept += 1
        return kept

    return run


def measure(run: Callable[[list[dict[str, Any]]], int], rows: list[dict[str, Any]]) -> float:
    """Rows per second for one pass over ``rows``."""
    started = time.perf_counter()
    kept = run(rows)
    elapsed = time.perf_counter() - started
    assert kept == len(rows) // 2, kept
    return len(rows) / elapsed
