"""Compiling an expression AST once into a Python closure ``fn(row, ctx) -> value``.

Every node becomes a closure over its children's closures, so evaluating a row walks no AST and looks
nothing up by name. Value semantics (null propagation, Go-style type errors) come from
``runtime.sql.values``; functions from ``runtime.sql.functions``.
"""

from __future__ import annotations

import operator
import re
from collections.abc import Callable
from typing import Any

from runtime.errors import PlanError
from runtime.model import JoinedRow, Row
from runtime.sql import functions
from runtime.sql.ast import (
    Between,
    BinaryOp,
    Call,
    Case,
    Expr,
    FieldRef,
    In,
    Index,
    Like,
    ListExpr,
    Literal,
    NestedRef,
    Slice,
    TimeUnit,
    Wildcard,
)
from runtime.sql.values import (
    BINARY,
    COMPARISON,
    go_str,
    invalid_operation,
    loose_equal,
    typed,
)
from runtime.sql.values import (
    EvalContext as EvalContext,
)
from runtime.sql.values import (
    EvalError as EvalError,
)
from runtime.sql.values import (
    Fn as Fn,
)

RefResolver = Callable[[FieldRef], Fn | None]
"""Hook for names that are not plain columns (select aliases): returns a closure, or None for a column."""

# Exceptions a function implementation may raise on bad input; they become ``call func x error: ...``.
_FUNCTION_FAILURES = (EvalError, ValueError, TypeError, ArithmeticError, LookupError, OSError, re.error)


# Comparisons of two ints or two floats: the plain operator (it returns a bool for them).
_SAME_TYPE_TESTS: dict[str, Callable[[Any, Any], bool]] = {
    "=": operator.eq,
    "!=": operator.ne,
    "<": operator.lt,
    "<=": operator.le,
    ">": operator.gt,
    ">=": operator.ge,
}

CallHook = Callable[[Call], Fn | None]
"""Hook for calls compiled elsewhere (analytic calls the projection evaluates before WHERE), or None."""


def compile_expr(expr: Expr, *, resolve: RefResolver | None = None, calls: CallHook | None = None) -> Fn:
    """Compile ``expr`` into a closure evaluated per row.

    Args:
      expr: a validated expression (function names and arity were checked by the parser).
      resolve: called for each unqualified field reference first; lets the projection inline aliases.
      calls: called for each function call first; a closure it returns replaces the call's compilation.

    Raises:
      PlanError: the expression uses something this compiler cannot evaluate per row (an aggregate or
        analytic function outside the operators that own them).
    """
    return _Compiler(resolve, calls).compile(expr)


class _Compiler:
    __slots__ = ("_calls", "_resolve")

    def __init__(self, resolve: RefResolver | None, calls: CallHook | None = None) -> None:
        self._resolve = resolve
        self._calls = calls

    def compile(self, expr: Expr) -> Fn:
        method: Callable[[Any], Fn] | None = getattr(self, "_" + type(expr).__name__.lower(), None)
        if method is None:
            raise PlanError(f"expression {expr_text(expr)} is not supported here")
        return method(expr)

    def _literal(self, e: Literal) -> Fn:
        value = e.value
        return lambda row, ctx: value

    def _timeunit(self, e: TimeUnit) -> Fn:
        unit = e.unit
        return lambda row, ctx: unit

    def _fieldref(self, e: FieldRef) -> Fn:
        if self._resolve is not None and e.stream is None:
            resolved = self._resolve(e)
            if resolved is not None:
                return resolved
        name = e.name
        if e.stream is not None:
            return _qualified(e.stream, name)
        return lambda row, ctx: row.get(name)

    def _nestedref(self, e: NestedRef) -> Fn:
        base, key = self.compile(e.base), e.key

        def nested(row: Row, ctx: EvalContext) -> Any:
            value = base(row, ctx)
            return value.get(key) if isinstance(value, dict) else None  # a->b on a non-map is null

        return nested

    def _index(self, e: Index) -> Fn:
        base, index = self.compile(e.base), self.compile(e.index)

        def at(row: Row, ctx: EvalContext) -> Any:
            value, i = base(row, ctx), index(row, ctx)
            if value is None or i is None:
                return None
            if isinstance(value, dict):
                return value.get(i) if isinstance(i, str) else None
            if not isinstance(value, list):
                return None
            if type(i) is not int:
                raise EvalError(f"invalid index {typed(i)}")
            n = len(value)
            if not -n <= i < n:
                raise EvalError(f"out of index: {i} of {n}")
            return value[i]

        return at

    def _slice(self, e: Slice) -> Fn:
        base = self.compile(e.base)
        start = self.compile(e.start) if e.start is not None else None
        end = self.compile(e.end) if e.end is not None else None

        def sliced(row: Row, ctx: EvalContext) -> Any:
            value = base(row, ctx)
            if not isinstance(value, list | str):
                return None
            n = len(value)
            lo = _bound(start(row, ctx) if start else 0, n)
            hi = _bound(end(row, ctx) if end else n, n)
            if start is not None and lo >= n:
                raise EvalError(f"start index {lo} out of range of length {n}")
            if hi > n:
                raise EvalError(f"end index {hi} out of range of length {n}")
            if lo > hi:
                raise EvalError(f"start index {lo} must be less than end index {hi}")
            return value[lo:hi]

        return sliced

    def _binaryop(self, e: BinaryOp) -> Fn:
        left, right = self.compile(e.left), self.compile(e.right)
        if e.op in ("AND", "OR"):
            return _logical(e.op, left, right)
        op = BINARY[e.op]
        test = _SAME_TYPE_TESTS.get(e.op)
        if test is not None and isinstance(e.right, Literal) and _is_number(e.right.value):
            return _compare_number(left, e.right.value, test, op)
        return lambda row, ctx: op(left(row, ctx), right(row, ctx))

    def _listexpr(self, e: ListExpr) -> Fn:
        items = [self.compile(item) for item in e.items]
        return lambda row, ctx: [item(row, ctx) for item in items]

    def _in(self, e: In) -> Fn:
        value, target, negated = self.compile(e.expr), self.compile(e.target), e.negated

        def member(row: Row, ctx: EvalContext) -> bool:
            v, items = value(row, ctx), target(row, ctx)
            if not isinstance(items, list) or not items:
                return negated  # empty or null set: IN false, NOT IN true
            if v is None:
                return False
            return any(loose_equal(v, item) for item in items) != negated

        return member

    def _between(self, e: Between) -> Fn:
        value, low, high, negated = self.compile(e.expr), self.compile(e.low), self.compile(e.high), e.negated
        ge, le = COMPARISON[">="], COMPARISON["<="]

        def between(row: Row, ctx: EvalContext) -> bool:
            v, lo, hi = value(row, ctx), low(row, ctx), high(row, ctx)
            if v is None or lo is None or hi is None:
                return False
            return (ge(v, lo) and le(v, hi)) != negated

        return between

    def _like(self, e: Like) -> Fn:
        value, pattern, negated = self.compile(e.expr), self.compile(e.pattern), e.negated
        cache: dict[str, re.Pattern[str]] = {}  # per call site; patterns are almost always literals

        def like(row: Row, ctx: EvalContext) -> bool:
            v, p = value(row, ctx), pattern(row, ctx)
            if v is None or p is None:
                return False
            if not isinstance(v, str) or not isinstance(p, str):
                raise EvalError(f"invalid LIKE operation {typed(v)} LIKE {typed(p)}")
            regex = cache.get(p)
            if regex is None:
                regex = cache[p] = like_regex(p)
            return (regex.fullmatch(v) is not None) != negated

        return like

    def _case(self, e: Case) -> Fn:
        subject = self.compile(e.value) if e.value is not None else None
        whens = [(self.compile(cond), self.compile(result)) for cond, result in e.whens]
        otherwise = self.compile(e.else_) if e.else_ is not None else None
        equal = COMPARISON["="]

        def case(row: Row, ctx: EvalContext) -> Any:
            v = subject(row, ctx) if subject is not None else None
            for cond, result in whens:
                c = cond(row, ctx)
                if equal(v, c) if subject is not None else c is True:
                    return result(row, ctx)
            return otherwise(row, ctx) if otherwise is not None else None

        return case

    def _call(self, e: Call) -> Fn:
        if self._calls is not None:
            hooked = self._calls(e)
            if hooked is not None:
                return hooked
        fdef = functions.lookup(e.name)
        if fdef is None:
            raise PlanError(f"function {e.name} not found")
        if fdef.compile is not None:
            return fdef.compile(e, self.compile)
        if fdef.kind != "scalar" or fdef.impl is None:
            raise PlanError(f"{fdef.kind} function {e.name} is not supported in this query yet")
        if e.over is not None or e.filter is not None:
            raise PlanError(f"OVER/FILTER after function {e.name} is not supported yet")
        args = tuple(self.compile(arg) for arg in e.args)
        impl, name, nulls = fdef.impl, e.name, fdef.null_passthrough

        def call(row: Row, ctx: EvalContext) -> Any:
            values = [arg(row, ctx) for arg in args]
            if nulls and any(v is None or v == [] or v == {} for v in values):
                return None  # nil -> nil: an empty array/object counts as null here (§D)
            try:
                return impl(values, ctx)
            except _FUNCTION_FAILURES as exc:
                raise EvalError(f"call func {name} error: {exc}") from None

        return call

    def _wildcard(self, e: Wildcard) -> Fn:
        # `*` as a function argument (count(*), changed_cols(..., *)): the whole row.
        return lambda row, ctx: row


def _is_number(value: Any) -> bool:
    """An int or float literal (not bool; ints within int64, so that ``float`` of it cannot overflow)."""
    return type(value) is float or (type(value) is int and -(2**63) <= value < 2**63)


def _compare_number(
    left: Fn, lit: int | float, test: Callable[[Any, Any], bool], op: Callable[[Any, Any], Any]
) -> Fn:
    """``x > 20``: what ``op`` (the general comparison) does for a number, without its type dispatch.

    Two ints or two floats compare as they are; an int and a float as floats (Go's conversion); anything else
    (null, bool, string) takes ``op``.
    """
    lit_float = float(lit)
    lit_is_int = type(lit) is int

    def compare_number(row: Row, ctx: EvalContext) -> Any:
        value = left(row, ctx)
        kind = type(value)
        if kind is float:
            return test(value, lit_float)
        if kind is int:
            return test(value, lit) if lit_is_int else test(float(value), lit_float)
        return op(value, lit)

    return compare_number


def _qualified(stream: str, name: str) -> Fn:
    # ``stream.col``: in a join row, the column of that source only (null when the row has no such part, as
    # for the missing side of an outer join); a single-source row is that source's own row.
    def qualified(row: Row, ctx: EvalContext) -> Any:
        if type(row) is JoinedRow:
            part = row.tables.get(stream)
            return part.get(name) if part is not None else None
        return row.get(name)

    return qualified


def _logical(op: str, left: Fn, right: Fn) -> Fn:
    # AND stops at a false (or null) left side, OR at a true one: the right side is then not evaluated.
    stop = op == "OR"

    def logical(row: Row, ctx: EvalContext) -> bool:
        a = left(row, ctx)
        if a is None or a is False or a is True:
            if (a is True) == stop:
                return stop
            b = right(row, ctx)
            if b is None or isinstance(b, bool):
                return b is True
            raise invalid_operation(a, op, b)
        raise invalid_operation(a, op, right(row, ctx))

    return logical


def _bound(value: Any, n: int) -> int:
    if type(value) is not int:
        raise EvalError(f"slice index must be an integer, got {typed(value)}")
    return value + n if value < 0 else value


def like_regex(pattern: str) -> re.Pattern[str]:
    """SQL LIKE -> regex: ``%`` any run, ``_`` one char, ``\\`` escapes the next char."""
    out: list[str] = []
    chars = iter(pattern)
    for ch in chars:
        if ch == "\\":
            out.append(re.escape(next(chars, "\\")))
        elif ch == "%":
            out.append(".*")
        elif ch == "_":
            out.append(".")
        else:
            out.append(re.escape(ch))
    return re.compile("".join(out), re.DOTALL)


def expr_text(expr: Expr, default_stream: str = "$$default") -> str:
    """An expression printed the way eKuiper's Go ``String()`` does, for ``run Select error`` messages."""

    def text(e: Expr) -> str:
        if isinstance(e, BinaryOp):
            return f"binaryExpr:{{ {text(e.left)} {e.op} {text(e.right)} }}"
        if isinstance(e, Call):
            return f"Call:{{ name:{e.name}, args:[{', '.join(text(a) for a in e.args)}] }}"
        if isinstance(e, FieldRef):
            return f"{e.stream or default_stream}.{e.name}"
        if isinstance(e, Literal):
            return go_str(e.value)
        if isinstance(e, NestedRef):
            return f"{text(e.base)}->{e.key}"
        if isinstance(e, Index):
            return f"{text(e.base)}[{text(e.index)}]"
        if isinstance(e, Wildcard):
            return "*"
        if isinstance(e, TimeUnit):
            return e.unit
        return type(e).__name__

    return text(expr)
