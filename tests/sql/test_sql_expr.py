"""Expression semantics (eKuiper docs sqls/data_types.md and the operators of sqls/query_language_elements.md)
and the starter functions, through parse + compile on real rows."""

from __future__ import annotations

import hashlib
import math
import re
from typing import Any

import pytest

from runtime.errors import PlanError
from runtime.sql.expr import EvalContext, EvalError, compile_expr, like_regex
from runtime.sql.parser import parse_select
from runtime.sql.values import COMPARISON

ROW: dict[str, Any] = {
    "i": 7,
    "j": 2,
    "z": 0,
    "f": 2.5,
    "s": "abc",
    "t": "abd",
    "b": True,
    "n": None,
    "m": {"k": {"x": 1}, "arr": [1, 2]},
    "arr": [10, 20, 30],
    "word": "string",
}


def ev(text: str, row: dict[str, Any] | None = None, ctx: EvalContext | None = None) -> Any:
    expr = parse_select(f"SELECT {text} FROM demo").fields[0].expr
    return compile_expr(expr)(ROW if row is None else row, ctx or EvalContext(rule_id="r1"))


@pytest.mark.parametrize(
    ("text", "value"),
    [
        ("i + j", 9),
        ("i / j", 3),
        ("-7 / 2", -3),  # Go truncates toward zero
        ("-7 % 2", -1),
        ("3 / 6", 0),
        ("i / 2.0", 3.5),
        ("i * f", 17.5),
        ("f - 0.5", 2.0),
        ("i % 4", 3),
        ("1 + 2 * 3", 7),
        ("(1 + 2) * 3", 9),
        ("i = 7.0", True),
        ("s < t", True),
        ("s = 'abc'", True),
        ("b = true", True),
        ("i & 3", 3),
        ("i | 8", 15),
        ("true ^ true", False),
        ("n + 1", None),
        ("n * f", None),
        ("n > 1", False),
        ("n = n", False),
        ("1 < n", False),
        ("m->k->x", 1),
        ("m.k.x", 1),
        ("m->arr[1]", 2),
        ("s->k", None),  # nested access on a non-map is null
        ("missing->k", None),
        ("arr[-1]", 30),
        ("arr[0:2]", [10, 20]),
        ("arr[1:]", [20, 30]),
        ("i IN (1, 7)", True),
        ("i NOT IN (1, 2)", True),
        ("n IN (1, 2)", False),
        ("i IN arr", False),
        ("i BETWEEN 1 AND 7", True),
        ("n BETWEEN 1 AND 7", False),
        ("s LIKE 'a_c'", True),
        ("s LIKE 'a%'", True),
        ("s NOT LIKE 'b%'", True),
        ("CASE i WHEN 7 THEN 'seven' ELSE 'other' END", "seven"),
        ("CASE WHEN i > 10 THEN 'big' END", None),
        ("n > 1 OR i = 7", True),
        ("i = 7 AND s = 'abc'", True),
    ],
)
def test_values(text: str, value: Any) -> None:
    result = ev(text)
    assert result == value and type(result) is type(value)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("word + 3", "invalid operation string(string) + int64(3)"),
        ("s + t", "invalid operation string(abc) + string(abd)"),
        ("word >= 3", "invalid operation string(string) >= int64(3)"),
        ("f * s", "invalid operation float64(2.5) * string(abc)"),
        ("b + 1", "invalid operation bool(true) + int64(1)"),
        ("b > false", "invalid operation bool(true) > bool(false)"),
        ("i / z", "divided by zero"),
        ("i % 0", "divided by zero"),
        ("f / 0.0", "divided by zero"),
        ("i AND b", "invalid operation int64(7) AND bool(true)"),
        ("b AND i", "invalid operation bool(true) AND int64(7)"),
        ("arr[5]", "out of index: 5 of 3"),
        ("sqrt(-1)", "call func sqrt error: sqrt of a negative number"),
    ],
)
def test_type_errors(text: str, message: str) -> None:
    with pytest.raises(EvalError) as info:
        ev(text)
    assert info.value.message.startswith(message)


def test_and_or_short_circuit() -> None:
    # The right side would raise (string * int); short-circuit must not evaluate it.
    assert ev("i > 100 AND word * 2 > 1") is False
    assert ev("i = 7 OR word * 2 > 1") is True


@pytest.mark.parametrize(
    ("text", "value"),
    [
        ("abs(-3)", 3),
        ("abs(-2.5)", 2.5),
        ("ceil(1.2)", 2.0),
        ("ceiling(1.2)", 2.0),
        ("floor(1.8)", 1.0),
        ("round(10.2)", 10.0),
        ("round(42.4382, 2)", 42.44),
        ("round(-2.5)", -3.0),
        ("sqrt(16)", 4.0),
        ("power(2, 3)", 8.0),
        ("pow(2, 0.5)", math.sqrt(2)),
        ("mod(10, 3)", 1.0),
        ("sign(-4)", -1),
        ("exp(0)", 1.0),
        ("ln(1)", 0.0),
        ("log(100)", 2.0),
        ("log(2, 8)", 3.0),
        ("pi()", math.pi),
        ("concat(s, '-', i, n)", "abc-7"),
        ("lower('AbC')", "abc"),
        ("upper(s)", "ABC"),
        ("length('héllo')", 5),
        ("length(arr)", 3),
        ("length(n)", 0),
        ("numbytes('héllo')", 6),
        ("trim('  x ')", "x"),
        ("ltrim('  x ')", "x "),
        ("rtrim('  x ')", "  x"),
        ("substring('NYCNicks', 3, 5)", "Ni"),
        ("substring('NYCNicks', 3)", "Nicks"),
        ("indexof(s, 'c')", 2),
        ("indexof(n, 'c')", -1),
        ("startswith(s, 'ab')", True),
        ("endswith(n, 'ab')", False),
        ("reverse(s)", "cba"),
        ("lpad(s, 2)", "  abc"),
        ("rpad(s, 1)", "abc "),
        ("split_value('a/b/c', '/', 1)", "b"),
        ("split_value('a/b/c', '/', -1)", "c"),
        ("regexp_matches(s, 'b.')", True),
        ("regexp_replace('a1b22', '[0-9]+', 'N')", "aNbN"),
        ("regexp_replace('ab', '(a)(b)', '$2$1')", "ba"),
        ("cast(1.7, 'bigint')", 1),
        ("cast('12', 'float')", 12.0),
        ("cast(12, 'string')", "12"),
        ("cast('true', 'boolean')", True),
        ("to_json(m)", '{"k":{"x":1},"arr":[1,2]}'),
        ("parse_json('{\"a\": [1]}')->a", [1]),
        ("parse_json('null')", None),
        ("md5('a')", hashlib.md5(b"a").hexdigest()),
        ("sha1('a')", hashlib.sha1(b"a").hexdigest()),
        ("sha256('a')", hashlib.sha256(b"a").hexdigest()),
        ("isnull(n)", True),
        ("isNull(arr)", False),
        ("coalesce(n, n, 3)", 3),
        ("abs(n)", None),
        ("upper(n)", None),
        ("rule_id()", "r1"),
    ],
)
def test_functions(text: str, value: Any) -> None:
    result = ev(text)
    assert result == value and type(result) is type(value)


def test_context_functions() -> None:
    ctx = EvalContext(rule_id="r9", meta={"topic": "mock", "h": {"x": 1}}, ts=1234)
    assert ev("meta(topic)", ctx=ctx) == "mock"
    assert ev("meta(h->x)", ctx=ctx) == 1
    assert ev("meta(*)", ctx=ctx) == {"topic": "mock", "h": {"x": 1}}
    assert ev("meta(nothing)", ctx=ctx) is None
    assert ev("event_time()", ctx=ctx) == 1234
    assert ev("tstamp()", ctx=ctx) == 1234  # no clock given: the event time
    assert ev("rule_id()", ctx=ctx) == "r9"


def test_random_functions() -> None:
    assert 0.0 <= ev("rand()") < 1.0
    first, second = ev("newuuid()"), ev("newuuid()")
    assert len(first) == 36 and first != second


def test_function_runtime_error_is_prefixed() -> None:
    with pytest.raises(EvalError, match="^call func split_value error: the index 5 is out of range$"):
        ev("split_value('a/b', '/', 5)")
    with pytest.raises(EvalError, match="^call func parse_json error: fail to parse json"):
        ev("parse_json('{')")


def test_aggregates_are_not_compiled_per_row() -> None:
    with pytest.raises(PlanError, match="aggregate function count"):
        ev("count(*)")


def test_like_escapes() -> None:
    assert like_regex("100\\%").fullmatch("100%")
    assert not like_regex("100\\%").fullmatch("1000")


@pytest.mark.parametrize("op", ["=", "!=", "<", "<=", ">", ">="])
@pytest.mark.parametrize("literal", ["50", "50.0", "2.5", "9007199254740992", "9007199254740992.0"])
@pytest.mark.parametrize("value", [None, True, 50, 50.0, 2.5, 3, 2**53 + 1, 2.0**53, "50", -7.25])
def test_comparison_with_a_number_literal_matches_the_general_comparison(
    op: str, literal: str, value: Any
) -> None:
    # `x > 50` takes a shortcut for numbers (no type dispatch); it must agree with the general comparison.
    lit = float(literal) if "." in literal else int(literal)
    try:
        expected: Any = COMPARISON[op](value, lit)
    except EvalError as exc:
        with pytest.raises(EvalError, match=re.escape(exc.message)):
            ev(f"x {op} {literal}", {"x": value})
        return
    assert ev(f"x {op} {literal}", {"x": value}) is expected
