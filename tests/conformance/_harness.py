"""Shared plumbing of the conformance runners: loading cases, the xfail list, value conversion, comparison.

``cases.json`` writes a datetime as ``{"$time_ms": n}`` and bytes as ``{"$bytes_b64": ...}``; Oort carries
``datetime.datetime`` (UTC) and ``bytes``, so values are converted here, at the boundary, both ways.
"""

from __future__ import annotations

import base64
import datetime
import json
import math
from pathlib import Path
from typing import Any

import pytest

HERE = Path(__file__).resolve().parent
CASES_FILE = HERE / "cases.json"
UNSUPPORTED_FILE = HERE / "unsupported.json"


SCORES: dict[str, tuple[int, int]] = {}
"""Group -> (passed, total), filled by each group's summary test; tests/conftest.py prints it after the run."""


def record_score(group: str, passed: int, total: int) -> None:
    """Remember a group's pass count for the end-of-run conformance line."""
    SCORES[group] = (passed, total)


def load(key: str) -> list[dict[str, Any]]:
    cases: list[dict[str, Any]] = json.loads(CASES_FILE.read_text())[key]
    return cases


def unsupported(group: str) -> dict[str, str]:
    """Case name -> reason, for the cases of ``group`` Oort knowingly does not pass yet."""
    table: dict[str, dict[str, str]] = json.loads(UNSUPPORTED_FILE.read_text())
    return table[group]


def params(cases: list[tuple[str, dict[str, Any]]], group: str) -> list[Any]:
    """One pytest param per case; exactly the listed ones are strict xfails (never silently skipped)."""
    known = unsupported(group)
    names = {name for name, _ in cases}
    stale = set(known) - names
    assert not stale, f"unsupported.json names unknown {group} cases: {sorted(stale)}"
    out = []
    for name, case in cases:
        marks = [pytest.mark.xfail(strict=True, reason=known[name])] if name in known else []
        out.append(pytest.param(case, id=name, marks=marks))
    return out


def from_json(value: Any) -> Any:
    """A case value -> the runtime value."""
    if isinstance(value, dict):
        if set(value) == {"$time_ms"}:
            return datetime.datetime.fromtimestamp(value["$time_ms"] / 1000, tz=datetime.UTC)
        if set(value) == {"$bytes_b64"}:
            return base64.b64decode(value["$bytes_b64"])
        return {k: from_json(v) for k, v in value.items()}
    if isinstance(value, list):
        return [from_json(v) for v in value]
    return value


def same(actual: Any, expected: Any) -> bool:
    """Deep equality that keeps eKuiper's int/float distinction; floats agree to 1e-9 relative."""
    expected = from_json(expected)
    return _same(actual, expected)


def _same(a: Any, e: Any) -> bool:
    if type(e) is float:
        return type(a) is float and (a == e or math.isclose(a, e, rel_tol=1e-9, abs_tol=1e-12))
    if isinstance(e, dict):
        return isinstance(a, dict) and a.keys() == e.keys() and all(_same(a[k], e[k]) for k in e)
    if isinstance(e, list):
        return isinstance(a, list | tuple) and len(a) == len(e) and all(map(_same, a, e))
    return type(a) is type(e) and bool(a == e)
