"""Property tests: random expressions through the real parser and compiler against a reference evaluator.

Hypothesis builds expression trees over ints (including int64 edges), floats (including huge ones, so
arithmetic reaches ±Inf and NaN), strings with LIKE metacharacters, booleans, nulls and missing fields;
each tree is printed as SQL, parsed with ``parse_select`` and compiled with ``compile_expr``, and its value
on a random row must equal what the small evaluator below computes from eKuiper docs sqls/data_types.md and
the operators of sqls/query_language_elements.md:

* ``int op int`` is Go int64 arithmetic (wraps around, ``/`` truncates, ``%`` takes the dividend's sign);
  a float operand makes it float64 arithmetic (``%`` is Go's ``math.Mod``); ``/`` or ``%`` by zero is
  ``divided by zero``; null in arithmetic gives null; other operand types are ``invalid operation``.
* ``& | ^`` on two ints, or on two booleans as and/or/xor.
* comparisons with null are false; numbers compare numerically (an int against a float as float64, as Go
  converts it), strings lexicographically, booleans only with ``=``/``!=``.
* AND/OR: null counts as false, the result is a boolean, a false (true) left side stops AND (OR).
* IN: null left side is false; members match numerically or by equal type. BETWEEN: null anywhere is false,
  otherwise ``x >= lo AND x <= hi``. LIKE: null is false, ``%``/``_``/``\\`` escapes, strings only.
* CASE: simple compares with ``=``, searched takes the first WHEN that is true; no match and no ELSE is null.

Errors are compared by message, rendered with Go's ``%T(%v)`` by the reference's own formatter.
A second property checks that minimal parenthesisation (§C.1 precedence, left associativity) parses to the
same tree as the fully parenthesised text.
"""

from __future__ import annotations

import math
import re
from decimal import Decimal
from typing import Any

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from runtime.sql.expr import EvalContext, EvalError, compile_expr
from runtime.sql.parser import parse_select

pytestmark = pytest.mark.slow  # a long property or fuzz run

INT64_MIN, INT64_MAX = -(2**63), 2**63 - 1
FIELDS = ("x", "y", "z", "n", "missing")  # n is always null, missing is never in the row

SETTINGS = settings(
    max_examples=1500,
    deadline=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.too_slow],
)

# ------------------------------------------------------------------------------------------------ values

small_ints = st.integers(-6, 6)
edge_ints = st.sampled_from([2**53, 2**53 + 1, -(2**53) - 1, 2**62, INT64_MAX, INT64_MIN, INT64_MIN + 1])
ints = st.one_of(small_ints, edge_ints, st.integers(INT64_MIN, INT64_MAX))
edge_floats = st.sampled_from([0.0, -0.0, 0.5, -2.5, 3.0, 1e308, -1e308, 2.0**53, 1e-300, 1e21, 1e-5, 1e6])
floats = st.one_of(edge_floats, st.floats(allow_nan=False, allow_infinity=False, width=64))
strings = st.text(alphabet="ab%_\\", max_size=4)
bools = st.booleans()
# edge values get their own branches, so that e.g. 2**53 + 1 meets 2.0**53 often enough
values = st.one_of(small_ints, edge_ints, ints, edge_floats, floats, strings, bools, st.none())

# ------------------------------------------------------------------------------------------------ trees
# ("lit", v) | ("field", name) | ("bin", op, l, r) | ("in", e, items, negated)
# | ("between", e, lo, hi, negated) | ("like", e, pattern, negated) | ("case", subject, whens, else)

ARITH = ("+", "-", "*", "/", "%", "&", "|", "^")
COMPARE = ("=", "!=", "<", "<=", ">", ">=")

literals = st.one_of(small_ints, edge_ints, ints, edge_floats, floats, strings, bools).map(
    lambda v: ("lit", v)
)
fields = st.sampled_from(FIELDS).map(lambda name: ("field", name))
leaves = st.one_of(literals, literals, fields, fields, fields)


def _extend(children: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    predicates = st.one_of(
        st.tuples(st.just("bin"), st.sampled_from(COMPARE), children, children),
        st.tuples(st.just("bin"), st.sampled_from(("AND", "OR")), children, children),
        st.tuples(st.just("in"), children, st.lists(children, min_size=1, max_size=3), st.booleans()),
        st.tuples(st.just("between"), children, children, children, st.booleans()),
        st.tuples(st.just("like"), children, children, st.booleans()),
        bools.map(lambda v: ("lit", v)),
        fields,
    )
    return st.one_of(
        st.tuples(st.just("bin"), st.sampled_from(ARITH), children, children),
        predicates,
        st.tuples(
            st.just("case"),
            st.none(),
            st.lists(st.tuples(predicates, children), min_size=1, max_size=2),
            st.none() | children,
        ),
        st.tuples(
            st.just("case"),
            children,
            st.lists(st.tuples(children, children), min_size=1, max_size=2),
            st.none() | children,
        ),
    )


trees = st.recursive(leaves, _extend, max_leaves=8)
rows = st.fixed_dictionaries({"x": values, "y": values, "z": values, "n": st.none()})

# ------------------------------------------------------------------------------------------------ SQL text


def sql_literal(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'
    return repr(value)  # ints and floats (repr round-trips, exponents included)


def to_sql(tree: Any) -> str:
    """Fully parenthesised SQL for a tree."""
    kind = tree[0]
    if kind == "lit":
        return sql_literal(tree[1])
    if kind == "field":
        return str(tree[1])
    if kind == "bin":
        return f"({to_sql(tree[2])} {tree[1]} {to_sql(tree[3])})"
    if kind == "in":
        items = ", ".join(to_sql(item) for item in tree[2])
        return f"({to_sql(tree[1])} {'NOT ' if tree[3] else ''}IN ({items}))"
    if kind == "between":
        neg = "NOT " if tree[4] else ""
        return f"({to_sql(tree[1])} {neg}BETWEEN {to_sql(tree[2])} AND {to_sql(tree[3])})"
    if kind == "like":
        return f"({to_sql(tree[1])} {'NOT ' if tree[3] else ''}LIKE {to_sql(tree[2])})"
    _, subject, whens, otherwise = tree
    parts = ["CASE"] + ([to_sql(subject)] if subject is not None else [])
    for cond, result in whens:
        parts += ["WHEN", to_sql(cond), "THEN", to_sql(result)]
    if otherwise is not None:
        parts += ["ELSE", to_sql(otherwise)]
    return " ".join([*parts, "END"])


PRECEDENCE = {"OR": 1, "AND": 2, **dict.fromkeys(COMPARE, 3), "+": 4, "-": 4, "|": 4, "^": 4}
PRECEDENCE.update(dict.fromkeys(("*", "/", "%", "&"), 5))
PREDICATE_LEVEL = 3  # IN / BETWEEN / LIKE bind like comparisons


def _level(tree: Any) -> int:
    if tree[0] == "bin":
        return PRECEDENCE[tree[1]]
    if tree[0] in ("in", "between", "like"):
        return PREDICATE_LEVEL
    return 9  # literals, fields, CASE ... END: atoms


def to_min_sql(tree: Any) -> str:
    """SQL with only the parentheses precedence and left associativity need."""
    kind = tree[0]
    if kind in ("lit", "field"):
        return to_sql(tree)

    def operand(child: Any, *, tighter_than: int, right: bool = False) -> str:
        text = to_min_sql(child)
        level = _level(child)
        if level < tighter_than or (right and level == tighter_than):
            return f"({text})"
        return text

    if kind == "bin":
        level = PRECEDENCE[tree[1]]
        left = operand(tree[2], tighter_than=level)
        return f"{left} {tree[1]} {operand(tree[3], tighter_than=level, right=True)}"
    level = PREDICATE_LEVEL
    if kind == "in":
        items = ", ".join(to_min_sql(item) for item in tree[2])
        return f"{operand(tree[1], tighter_than=level)} {'NOT ' if tree[3] else ''}IN ({items})"
    if kind == "between":
        neg = "NOT " if tree[4] else ""
        # bounds: anything looser than arithmetic (comparisons, AND) would be ambiguous with the AND keyword
        low = operand(tree[2], tighter_than=level, right=True)
        high = operand(tree[3], tighter_than=level, right=True)
        return f"{operand(tree[1], tighter_than=level)} {neg}BETWEEN {low} AND {high}"
    if kind == "like":
        pattern = operand(tree[2], tighter_than=level, right=True)
        return f"{operand(tree[1], tighter_than=level)} {'NOT ' if tree[3] else ''}LIKE {pattern}"
    _, subject, whens, otherwise = tree
    parts = ["CASE"] + ([to_min_sql(subject)] if subject is not None else [])
    for cond, result in whens:
        parts += ["WHEN", to_min_sql(cond), "THEN", to_min_sql(result)]
    if otherwise is not None:
        parts += ["ELSE", to_min_sql(otherwise)]
    return " ".join([*parts, "END"])


# ------------------------------------------------------------------------------------------------ reference


class RefError(Exception):
    """The reference's runtime error; ``message`` None when only the fact of an error is specified."""

    def __init__(self, message: str | None) -> None:
        super().__init__(message)
        self.message = message


def go_float(x: float) -> str:
    """Go's ``%v`` for a float64 (``%g``, shortest digits): exponent form below 1e-4 and from 1e6."""
    if math.isnan(x):
        return "NaN"
    if math.isinf(x):
        return "+Inf" if x > 0 else "-Inf"
    if x == 0:
        return "-0" if math.copysign(1.0, x) < 0 else "0"
    sign, digit_tuple, exponent = Decimal(repr(x)).as_tuple()
    assert isinstance(exponent, int)
    digits = "".join(map(str, digit_tuple)).rstrip("0")
    exponent += len("".join(map(str, digit_tuple))) - len(digits)
    e10 = len(digits) - 1 + exponent
    prefix = "-" if sign else ""
    if e10 < -4 or e10 >= 6:
        mantissa = digits[0] + ("." + digits[1:] if len(digits) > 1 else "")
        return f"{prefix}{mantissa}e{'+' if e10 >= 0 else '-'}{abs(e10):02d}"
    if exponent >= 0:
        return prefix + digits + "0" * exponent
    point = len(digits) + exponent
    if point > 0:
        return f"{prefix}{digits[:point]}.{digits[point:]}"
    return f"{prefix}0.{'0' * -point}{digits}"


def go_typed(v: Any) -> str:
    """``fmt.Sprintf("%T(%v)", v)`` for the scalar kinds generated here."""
    if v is None:
        return "<nil>(<nil>)"
    if isinstance(v, bool):
        return f"bool({'true' if v else 'false'})"
    if isinstance(v, int):
        return f"int64({v})"
    if isinstance(v, float):
        return f"float64({go_float(v)})"
    return f"string({v})"


def invalid(a: Any, op: str, b: Any) -> RefError:
    return RefError(f"invalid operation {go_typed(a)} {op} {go_typed(b)}")


def is_int(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def is_num(v: Any) -> bool:
    return is_int(v) or isinstance(v, float)


def wrap64(n: int) -> int:
    return (n - INT64_MIN) % 2**64 + INT64_MIN


def go_int_div(a: int, b: int) -> int:
    quotient = abs(a) // abs(b)
    return quotient if (a < 0) == (b < 0) else -quotient


def go_math_mod(x: float, y: float) -> float:
    if math.isnan(x) or math.isnan(y) or math.isinf(x):
        return math.nan
    if math.isinf(y):
        return x
    return math.fmod(x, y)


def arithmetic(op: str, a: Any, b: Any) -> Any:
    if a is None or b is None:
        return None
    if op in ("&", "|", "^"):
        if is_int(a) and is_int(b):
            return {"&": a & b, "|": a | b, "^": a ^ b}[op]
        if isinstance(a, bool) and isinstance(b, bool):
            return {"&": a and b, "|": a or b, "^": a != b}[op]
        raise invalid(a, op, b)
    if not (is_num(a) and is_num(b)):
        raise invalid(a, op, b)
    if op in ("/", "%") and b == 0:
        raise RefError("divided by zero")
    if is_int(a) and is_int(b):
        if op == "/":
            return wrap64(go_int_div(a, b))
        if op == "%":
            return wrap64(a - b * go_int_div(a, b))
        return wrap64({"+": a + b, "-": a - b, "*": a * b}[op])
    x, y = float(a), float(b)
    if op == "%":
        return go_math_mod(x, y)
    if op == "/":
        return x / y
    return {"+": x + y, "-": x - y, "*": x * y}[op]


def compare(op: str, a: Any, b: Any) -> bool:
    if a is None or b is None:
        return False
    if is_num(a) and is_num(b):
        if not (is_int(a) and is_int(b)):
            a, b = float(a), float(b)  # Go converts the int operand to float64
    elif isinstance(a, str) and isinstance(b, str):
        pass
    elif isinstance(a, bool) and isinstance(b, bool) and op in ("=", "!="):
        pass
    else:
        raise invalid(a, op, b)
    return bool(
        {
            "=": a == b,
            "!=": a != b,
            "<": a < b,
            "<=": a <= b,
            ">": a > b,
            ">=": a >= b,
        }[op]
    )


def member_equal(a: Any, b: Any) -> bool:
    if a is None or b is None:
        return False
    if is_num(a) and is_num(b):
        return compare("=", a, b)
    return type(a) is type(b) and a == b


def like_match(text: str, pattern: str) -> bool:
    """SQL LIKE by dynamic programming over pattern tokens (no regex)."""
    tokens: list[tuple[str, str]] = []  # ("any", "") for %, ("one", "") for _, ("lit", c)
    i = 0
    while i < len(pattern):
        ch = pattern[i]
        if ch == "\\":
            tokens.append(("lit", pattern[i + 1] if i + 1 < len(pattern) else "\\"))
            i += 2
            continue
        tokens.append(("any", "") if ch == "%" else ("one", "") if ch == "_" else ("lit", ch))
        i += 1
    # reach[j]: the first j characters of text can be matched by the tokens seen so far
    reach = [True] + [False] * len(text)
    for kind, ch in tokens:
        if kind == "any":
            for j in range(1, len(text) + 1):
                reach[j] = reach[j] or reach[j - 1]
        else:
            reach = [False] + [reach[j] and (kind == "one" or text[j] == ch) for j in range(len(text))]
    return reach[len(text)]


def evaluate(tree: Any, row: dict[str, Any]) -> Any:
    kind = tree[0]
    if kind == "lit":
        return tree[1]
    if kind == "field":
        return row.get(tree[1])
    if kind == "bin":
        op = tree[1]
        if op in ("AND", "OR"):
            a = evaluate(tree[2], row)
            if a is not None and not isinstance(a, bool):
                raise invalid(a, op, evaluate(tree[3], row))
            if op == "AND" and a is not True:
                return False
            if op == "OR" and a is True:
                return True
            b = evaluate(tree[3], row)
            if b is not None and not isinstance(b, bool):
                raise invalid(a, op, b)
            return b is True
        a, b = evaluate(tree[2], row), evaluate(tree[3], row)
        return compare(op, a, b) if op in COMPARE else arithmetic(op, a, b)
    if kind == "in":
        v = evaluate(tree[1], row)
        items = [evaluate(item, row) for item in tree[2]]
        if v is None:
            return False
        return any(member_equal(v, item) for item in items) != tree[3]
    if kind == "between":
        v, low, high = (evaluate(t, row) for t in tree[1:4])
        if v is None or low is None or high is None:
            return False
        return (compare(">=", v, low) and compare("<=", v, high)) != tree[4]
    if kind == "like":
        v, pattern = evaluate(tree[1], row), evaluate(tree[2], row)
        if v is None or pattern is None:
            return False
        if not isinstance(v, str) or not isinstance(pattern, str):
            raise RefError(f"invalid LIKE operation {go_typed(v)} LIKE {go_typed(pattern)}")
        return like_match(v, pattern) != tree[3]
    _, subject, whens, otherwise = tree
    value = evaluate(subject, row) if subject is not None else None
    for cond, result in whens:
        c = evaluate(cond, row)
        if compare("=", value, c) if subject is not None else c is True:
            return evaluate(result, row)
    return evaluate(otherwise, row) if otherwise is not None else None


# ------------------------------------------------------------------------------------------------ properties


def _parse(text: str) -> Any:
    return parse_select(f"SELECT {text} AS r FROM demo").fields[0].expr


def _same(actual: Any, expected: Any) -> bool:
    if type(actual) is not type(expected):
        return False
    if isinstance(expected, float) and math.isnan(expected):
        return math.isnan(actual)
    return bool(actual == expected)


def _outcome(fn: Any) -> tuple[str, Any]:
    try:
        return "value", fn()
    except (EvalError, RefError) as exc:
        return "error", exc.message


INF_MOD = ("bin", "%", ("bin", "*", ("lit", 1e308), ("lit", 10)), ("field", "x"))


@SETTINGS
@given(tree=trees, row=rows)
@example(tree=INF_MOD, row={"x": 3, "y": None, "z": None, "n": None})  # Go: Mod(+Inf, 3) = NaN
@example(tree=("bin", "+", ("field", "x"), ("lit", 1)), row={"x": INT64_MAX, "y": 0, "z": 0, "n": None})
def test_compiled_expressions_match_the_reference(tree: Any, row: dict[str, Any]) -> None:
    text = to_sql(tree)
    fn = compile_expr(_parse(text))
    got = _outcome(lambda: fn(row, EvalContext()))
    want = _outcome(lambda: evaluate(tree, row))
    detail = f"{text}\nrow={row}\ngot={got!r}\nwant={want!r}"
    assert got[0] == want[0], detail
    if want[0] == "value":
        assert _same(got[1], want[1]), detail
    elif want[1] is not None:
        assert got[1] == want[1], detail


X, Y, Z = ("field", "x"), ("field", "y"), ("field", "z")
flat_trees = st.one_of(
    st.sampled_from([*ARITH, *COMPARE, "AND", "OR"]).map(lambda op: ("bin", op, X, Y)),
    st.booleans().map(lambda negated: ("in", X, [Y, Z], negated)),
    st.booleans().map(lambda negated: ("between", X, Y, Z, negated)),
    st.booleans().map(lambda negated: ("like", X, Y, negated)),
    st.just(("case", X, [(Y, ("lit", 1))], ("lit", 2))),
)


POOL: list[Any] = [0, -1, 7, 2**53, 2**53 + 1, INT64_MAX, INT64_MIN, 0.0, -0.0, 7.0, 2.0**53, 2.0**63]
POOL += [1e308, -0.5, "", "a", "a%", "_", True, False, None]
pool = st.sampled_from(POOL)
pool_rows = st.fixed_dictionaries({"x": pool, "y": pool, "z": pool, "n": st.none()})


@settings(max_examples=1500, deadline=None, derandomize=True)
@given(tree=flat_trees, row=pool_rows)
@example(tree=("bin", "=", X, Y), row={"x": 2**53 + 1, "y": 2.0**53, "z": 0, "n": None})  # Go: true
@example(tree=("bin", "+", X, Y), row={"x": -0.0, "y": "a", "z": 0, "n": None})  # float64(-0) + string(a)
@example(tree=("bin", "AND", X, Y), row={"x": 1, "y": None, "z": 0, "n": None})  # ... AND <nil>(<nil>)
def test_each_operator_on_all_value_pairs(tree: Any, row: dict[str, Any]) -> None:
    """One operator over a small pool of edge values: every pair of kinds meets (2**53 + 1 and 2.0**53...)."""
    test_compiled_expressions_match_the_reference.hypothesis.inner_test(tree, row)  # type: ignore[attr-defined]


@settings(max_examples=600, deadline=None, derandomize=True)
@given(tree=trees)
def test_minimal_parentheses_parse_like_full_ones(tree: Any) -> None:
    assert _parse(to_min_sql(tree)) == _parse(to_sql(tree)), to_min_sql(tree)


def test_reference_helpers_agree_with_go() -> None:
    # spot checks of the reference itself, from Go's fmt and arithmetic
    assert [go_float(v) for v in (1e21, 1e6, 123456.5, 1e-5, 1e-4, -0.0, 2.5, math.inf, 1.5e300)] == [
        "1e+21",
        "1e+06",
        "123456.5",
        "1e-05",
        "0.0001",
        "-0",
        "2.5",
        "+Inf",
        "1.5e+300",
    ]
    assert arithmetic("/", INT64_MIN, -1) == INT64_MIN
    assert arithmetic("%", -7, 2) == -1
    assert arithmetic("+", INT64_MAX, 1) == INT64_MIN
    assert like_match("a%b", "a\\%_") is True and like_match("axb", "a\\%b") is False
    assert re.fullmatch(r"invalid operation string\(a\) \+ int64\(1\)", invalid("a", "+", 1).message or "")
