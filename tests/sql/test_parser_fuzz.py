"""Parser fuzzing: random token soups and mutated conformance statements never crash the parser.

Whatever the text, ``parse_statements``, ``parse_select`` and ``parse_ddl`` either return or raise the
parser's ``SqlError`` carrying a 1-based line and column inside the text (plus a caret excerpt); any other
exception is a parser bug. Seeds are every statement of ``cases.json`` ``parser_cases`` (valid and invalid),
mutated at token level (delete, insert, swap, duplicate, truncate) and character level; token soups and
absurdly deep nesting (expressions, field types) complete the inputs.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from runtime.errors import SqlError
from runtime.sql.ast import Select
from runtime.sql.expr import EvalContext, compile_expr
from runtime.sql.parser import MAX_NESTING, parse_ddl, parse_select, parse_statements

pytestmark = pytest.mark.slow  # a long property or fuzz run

CASES_FILE = Path(__file__).resolve().parents[1] / "conformance" / "cases.json"
PARSER_CASES: list[dict[str, Any]] = json.loads(CASES_FILE.read_text())["parser_cases"]
SEEDS: list[str] = [case["sql"] for case in PARSER_CASES]
VALID_SEEDS: list[str] = [case["sql"] for case in PARSER_CASES if case["result"] == "ok"]

_TOKEN = re.compile(
    r"""\s+|`[^`]*`?|"(?:\\.|[^"\\])*"?|'(?:\\.|[^'\\])*'?|\d+(?:\.\d*)?|\w+|->|!=|<=|>=|/\*|\*/|--|."""
)


def tokens(text: str) -> list[str]:
    return _TOKEN.findall(text)


SEED_TOKENS = [tokens(seed) for seed in SEEDS]
VOCABULARY = sorted({tok for toks in SEED_TOKENS for tok in toks} - {""})
EXTRA = [
    *"`\"'\\()[]{},;:.*+-/%&|^=<>!?#@$~",
    "->",
    "/*",
    "*/",
    "--",
    "\n",
    "\t",
    "\r",
    "\x00",
    "ü",
    "中文",
    "\u2028",
    "1e",
    "1e+",
    ".5",
    "-.",
    "9" * 40,
    "0x1F",
    "NOT",
    "BETWEEN",
    "LIKE",
    "IN",
    "CASE",
    "WHEN",
    "THEN",
    "ELSE",
    "END",
    "OVER",
    "PARTITION",
    "FILTER",
    "EXCEPT",
    "REPLACE",
    "INVISIBLE",
    "LIMIT",
    "DEFAULT",
    "STRUCT",
    "ARRAY",
    "TUMBLINGWINDOW",
    "ss",
    "meta",
    "count",
    "*",
    "a.*",
    '"\\x"',
    "'\\1'",
]
ALL_TOKENS = VOCABULARY + EXTRA
token = st.sampled_from(ALL_TOKENS)

ENTRY_POINTS: list[Callable[[str], Any]] = [parse_statements, parse_select, parse_ddl]


def check(text: str) -> None:
    """Every entry point returns or raises a positioned SqlError."""
    lines = text.split("\n")
    for parse in ENTRY_POINTS:
        try:
            parse(text)
        except SqlError as exc:
            where = f"{parse.__name__}({text!r}) -> {exc.message!r} at {exc.line}:{exc.column}"
            assert 1 <= exc.line <= len(lines), where
            assert 1 <= exc.column <= len(lines[exc.line - 1]) + 1, where
            assert exc.context.endswith("^"), where


@st.composite
def mutated(draw: st.DrawFn) -> str:
    toks = list(draw(st.sampled_from(SEED_TOKENS)))
    for _ in range(draw(st.integers(1, 4))):
        action = draw(st.sampled_from(["delete", "insert", "swap", "duplicate", "truncate", "char"]))
        if action == "insert" or not toks:
            toks.insert(draw(st.integers(0, len(toks))), draw(token))
            continue
        i = draw(st.integers(0, len(toks) - 1))
        if action == "delete":
            del toks[i]
        elif action == "swap":
            j = draw(st.integers(0, len(toks) - 1))
            toks[i], toks[j] = toks[j], toks[i]
        elif action == "duplicate":
            toks.insert(i, toks[i])
        elif action == "truncate":
            text = "".join(toks)
            return text[: draw(st.integers(0, len(text)))]
        else:  # replace one character of a token by a random one
            tok = toks[i]
            k = draw(st.integers(0, len(tok)))
            toks[i] = tok[:k] + draw(st.characters(codec="utf-8")) + tok[k + 1 :]
    return "".join(toks)


token_soup = st.lists(token, max_size=25).map(lambda toks: " ".join(toks))
glued_soup = st.lists(token, max_size=25).map("".join)  # no spaces: tokens run into each other


WRAPPERS = [
    ("(", ")"),
    ("abs(", ")"),
    ("CASE WHEN true THEN ", " END"),
    ("a + ", ""),
    ("", "[0]"),
    ("", "->k"),
]
TYPE_WRAPPERS = [("ARRAY(", ")"), ("STRUCT(b ", ")")]


@st.composite
def deeply_nested(draw: st.DrawFn) -> str:
    """Nesting far beyond any real rule: must be refused with a SqlError, not a RecursionError."""
    depth = draw(st.integers(50, 1500))
    if draw(st.booleans()):
        opening, closing = draw(st.sampled_from(TYPE_WRAPPERS))
        return f'CREATE STREAM s (a {opening * depth}BIGINT{closing * depth}) WITH (DATASOURCE="x")'
    opening, closing = draw(st.sampled_from(WRAPPERS))
    return f"SELECT {opening * depth}a{closing * depth} FROM s"


def test_nesting_limit_keeps_compiled_expressions_within_the_stack() -> None:
    # the deepest accepted expression still compiles and evaluates; one level more is a positioned SqlError
    deepest = "SELECT " + "abs(" * (MAX_NESTING - 1) + "a" + ")" * (MAX_NESTING - 1) + " FROM s"
    expr = parse_select(deepest).fields[0].expr
    assert compile_expr(expr)({"a": -2}, EvalContext()) == 2
    with pytest.raises(SqlError, match="nested too deeply") as info:
        parse_select("SELECT " + "abs(" * MAX_NESTING + "a" + ")" * MAX_NESTING + " FROM s")
    assert (info.value.line, info.value.column) == (1, 1)


def test_seeds_parse_or_fail_cleanly() -> None:
    for seed in SEEDS:
        check(seed)
    assert len(VALID_SEEDS) > 200
    for seed in VALID_SEEDS:  # eKuiper parses these: so must we (a SELECT also with its semantic checks)
        statements = parse_statements(seed)
        assert statements, seed
        if len(statements) == 1 and isinstance(statements[0], Select):
            parse_select(seed)


@settings(max_examples=1200, deadline=None, derandomize=True, suppress_health_check=[HealthCheck.too_slow])
@given(text=mutated())
@example(text="SELECT a FROM b WHERE")
@example(text="")
@example(text="\n\n")
def test_mutated_statements(text: str) -> None:
    check(text)


@settings(max_examples=600, deadline=None, derandomize=True, suppress_health_check=[HealthCheck.too_slow])
@given(text=st.one_of(token_soup, glued_soup, token_soup.map(lambda s: "SELECT " + s), deeply_nested()))
def test_token_soup(text: str) -> None:
    check(text)
