"""What every function family module shares: ``FunctionDef``, arity checking and argument coercions.

The family modules (``math``, ``strings``, ``collections``, ...) each yield ``FunctionDef`` values; the
package ``__init__`` collects them into the read-only registry.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import Any
from typing import Literal as TypingLiteral

import attrs

from runtime.sql.ast import Call, Expr, Literal
from runtime.sql.values import EvalContext, EvalError, Fn, go_str

FuncKind = TypingLiteral["scalar", "aggregate", "analytic", "window", "window_func", "srf", "multi"]
Impl = Callable[[Sequence[Any], EvalContext], Any]
CompileHook = Callable[[Call, Callable[[Expr], Fn]], Fn]
Check = Callable[[Call], str | None]


@attrs.frozen
class FunctionDef:
    """One registered function.

    Attributes:
      kind: ``scalar`` functions are compiled by ``runtime.sql.expr``; the other kinds are recognised
        (arity, placement checks) but evaluated by the operators that own them (analytic functions carry
        a ``compile`` hook that keeps their state in the ``EvalContext``).
      min_args, max_args: arity; ``max_args`` None means unbounded.
      impl: ``impl(args, ctx)`` for scalars, called with evaluated arguments.
      null_passthrough: any null (or empty array/object) argument makes the result null without calling
        ``impl`` ("nil -> nil" in §D); functions with their own null rule set it False.
      compile: replaces argument evaluation entirely (``meta(key)`` reads a name, not a value).
      check: extra parse-time validation returning an error message, or None when fine.
    """

    name: str
    kind: FuncKind = "scalar"
    min_args: int = 0
    max_args: int | None = None
    impl: Impl | None = None
    null_passthrough: bool = True
    compile: CompileHook | None = None
    check: Check | None = None


def arity_error(fdef: FunctionDef, found: int) -> str | None:
    """eKuiper's ``validate function count error: ...`` text when ``found`` arguments are not allowed."""
    lo, hi = fdef.min_args, fdef.max_args
    if lo <= found and (hi is None or found <= hi):
        return None
    if hi == lo:
        expect = f"Expect {lo} arguments but found {found}."
    elif hi is None:
        expect = f"Expect at least {lo} arguments but found {found}."
    else:
        expect = f"Expect {lo} to {hi} arguments but found {found}."
    return f"validate function {fdef.name} error: {expect}"


# ------------------------------------------------------------------------------------------------ coercions


def num(value: Any) -> int | float:
    if type(value) is int or type(value) is float:
        return value
    raise EvalError(f"only float64 & int type are supported, got {go_str(value)}")


def as_int(value: Any, what: str = "argument") -> int:
    if type(value) is int:
        return value
    if type(value) is float and value == int(value):
        return int(value)  # JSON may carry an integral float where eKuiper's cast.ToInt accepts it
    raise EvalError(f"{what} should be int")


def text(value: Any) -> str:
    return value if isinstance(value, str) else go_str(value)


def go_round(x: float) -> float:
    return math.copysign(math.floor(abs(x) + 0.5), x)  # Go math.Round: half away from zero


# ------------------------------------------------------------------------------------------------ builders


def scalar(name: str, lo: int, hi: int | None, impl: Impl, *, nulls: bool = True) -> FunctionDef:
    return FunctionDef(name=name, min_args=lo, max_args=hi, impl=impl, null_passthrough=nulls)


def math1(name: str, op: Callable[[float], float]) -> FunctionDef:
    return scalar(name, 1, 1, lambda a, ctx: op(float(num(a[0]))))


def str1(name: str, op: Callable[[str], Any]) -> FunctionDef:
    return scalar(name, 1, 1, lambda a, ctx: op(text(a[0])))


def with_check(fdef: FunctionDef, check: Check) -> FunctionDef:
    return attrs.evolve(fdef, check=check)


def int_literal_param(position: int) -> Check:
    """Reject a non-int literal at ``position`` at parse time (``bitand(1.0, 2)``)."""

    def check(call: Call) -> str | None:
        if len(call.args) > position - 1:
            arg = call.args[position - 1]
            if isinstance(arg, Literal) and type(arg.value) is not int:
                return f"validate function {call.name} error: Expect int type for parameter {position}"
        return None

    return check
