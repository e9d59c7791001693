"""eKuiper's parser test table (``conformance/cases.json`` ``parser_cases``) run through Oort's parser.

Every case must agree with eKuiper on ok/error; DDL cases with a semantic error must also carry eKuiper's
message. SELECT syntax errors come from lark with the offending token, line and column, which keeps the gist of
eKuiper's hand-written parser messages (``found "OVER", expected ...``) without copying them word for word.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from runtime.errors import SqlError
from runtime.sql.parser import parse_ddl, parse_statements
from tests.conformance._harness import record_score

CASES_FILE = Path(__file__).resolve().parents[1] / "conformance" / "cases.json"
SELECT_FLOOR = 289  # every case: dropping below means a regression


def _cases() -> list[dict[str, Any]]:
    cases: list[dict[str, Any]] = json.loads(CASES_FILE.read_text())["parser_cases"]
    return cases


def _is_ddl(sql: str) -> bool:
    return sql.lstrip().split(None, 1)[0].upper() in ("CREATE", "DROP", "DESCRIBE", "SHOW", "EXPLAIN")


def _run(sql: str) -> str | None:
    """None when the statement parses, else the error message."""
    try:
        if _is_ddl(sql):
            parse_ddl(sql)
        else:
            parse_statements(sql)  # eKuiper's ParseQueries: several SELECTs separated by ';'
    except SqlError as exc:
        return exc.message
    return None


DDL_CASES = [c for c in _cases() if _is_ddl(c["sql"])]

# eKuiper's own messages for syntax errors come from its hand-written parser; ours come from lark. For the
# semantic errors the message must be eKuiper's.
SYNTAX_ERRORS = (
    "expect stream options",
    "expected is with",
    "expect stream field name",
    "expected semicolon",
)


@pytest.mark.parametrize("case", DDL_CASES, ids=[c["source"].rsplit(":", 1)[-1] for c in DDL_CASES])
def test_ddl_parser_case(case: dict[str, Any]) -> None:
    error = _run(case["sql"])
    if case["result"] == "ok":
        assert error is None, error
    else:
        assert error is not None
        expected = case["error"].strip()
        if not any(marker in expected for marker in SYNTAX_ERRORS):
            assert expected in error


def test_all_parser_cases_count() -> None:
    cases = _cases()
    passed = 0
    failures = []
    for case in cases:
        ok = (_run(case["sql"]) is None) == (case["result"] == "ok")
        passed += ok
        if not ok:
            failures.append(case["sql"])
    print(f"\nparser cases: {passed}/{len(cases)} agree with eKuiper")
    record_score("parser", passed, len(cases))
    for sql in failures:
        print("  differs:", sql.replace("\n", " ")[:120])
    assert passed >= SELECT_FLOOR
