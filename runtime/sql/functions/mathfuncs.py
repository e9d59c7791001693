"""Math and bit functions (eKuiper docs sqls/functions/mathematical_functions.md): ints stay int where eKuiper
keeps int64, else float64."""

from __future__ import annotations

import math
import random
import string
from collections.abc import Iterable, Sequence
from typing import Any

from runtime.sql.functions.base import (
    FunctionDef,
    as_int,
    go_round,
    int_literal_param,
    math1,
    num,
    scalar,
    text,
    with_check,
)
from runtime.sql.values import EvalContext, EvalError


def _round(a: Sequence[Any], ctx: EvalContext) -> float:
    x = float(num(a[0]))
    if len(a) == 1:
        return go_round(x)
    scale = 10.0 ** as_int(a[1], "second argument")
    return go_round(x * scale) / scale


def _log(a: Sequence[Any], ctx: EvalContext) -> float:
    if len(a) == 1:
        x = float(num(a[0]))
        if x <= 0:
            raise EvalError("log of a non-positive number")
        return math.log10(x)
    base, x = float(num(a[0])), float(num(a[1]))
    if base <= 0 or x <= 0 or base == 1:
        raise EvalError("log of a non-positive number or base")
    return math.log(x, base)


def _ln(a: Sequence[Any], ctx: EvalContext) -> float:
    x = float(num(a[0]))
    if x <= 0:
        raise EvalError("ln of a non-positive number")
    return math.log(x)


def _sqrt(a: Sequence[Any], ctx: EvalContext) -> float:
    x = float(num(a[0]))
    if x < 0:
        raise EvalError("sqrt of a negative number")
    return math.sqrt(x)


def _mod(a: Sequence[Any], ctx: EvalContext) -> float:
    x, y = float(num(a[0])), float(num(a[1]))
    if y == 0:
        raise EvalError("divided by zero")
    return math.fmod(x, y)


def _sign(a: Sequence[Any], ctx: EvalContext) -> int:
    x = num(a[0])
    return (x > 0) - (x < 0)


def _inverse_trig(op: Any) -> Any:
    # Go returns NaN outside [-1, 1]; eKuiper turns NaN into null.
    def impl(a: Sequence[Any], ctx: EvalContext) -> float | None:
        x = float(num(a[0]))
        try:
            return float(op(x))
        except ValueError:
            return None

    return impl


def _cot(a: Sequence[Any], ctx: EvalContext) -> float:
    x = float(num(a[0]))
    if x == 0:
        raise EvalError("out-of-range error")
    return 1 / math.tan(x)


_DIGITS = string.digits + string.ascii_uppercase


def _conv(a: Sequence[Any], ctx: EvalContext) -> str | None:
    from_base, to_base = as_int(a[1], "second argument"), as_int(a[2], "third argument")
    if not (2 <= abs(from_base) <= 36 and 2 <= abs(to_base) <= 36):
        return None
    try:
        n = int(text(a[0]), abs(from_base))
    except ValueError:
        return None
    negative = n < 0 and to_base < 0  # a negative target base prints a signed number (MySQL CONV)
    if n < 0 and to_base > 0:
        n &= (1 << 64) - 1  # otherwise the unsigned 64-bit two's complement
    n = abs(n)
    base, digits = abs(to_base), []
    while True:
        n, r = divmod(n, base)
        digits.append(_DIGITS[r])
        if n == 0:
            break
    return ("-" if negative else "") + "".join(reversed(digits))


def _trunc(a: Sequence[Any], ctx: EvalContext) -> float:
    # DOC≠CODE (§D.3): eKuiper's trunc rounds half away from zero to d decimals.
    scale = 10.0 ** as_int(a[1], "second argument")
    return go_round(float(num(a[0])) * scale) / scale


def _chr(a: Sequence[Any], ctx: EvalContext) -> int:
    v = a[0]
    if type(v) is int:
        return v
    if type(v) is float:
        return int(v)
    if isinstance(v, str) and len(v) == 1:
        return ord(v)
    raise EvalError(f"expect int or single char string, got {text(v)}")


def _hex2dec(a: Sequence[Any], ctx: EvalContext) -> int:
    s = text(a[0])
    return int(s[2:] if s[:2].lower() == "0x" else s, 16)


def _dec2hex(a: Sequence[Any], ctx: EvalContext) -> str:
    n = as_int(a[0])
    return ("-0x" if n < 0 else "0x") + format(abs(n), "x")


def _bit(name: str, op: Any) -> FunctionDef:
    impl = scalar(name, 2, 2, lambda a, ctx: op(as_int(a[0]), as_int(a[1])))
    return with_check(impl, int_literal_param(1))


def math_defs() -> Iterable[FunctionDef]:
    def abs_(a: Sequence[Any], ctx: EvalContext) -> int | float:
        return abs(num(a[0]))

    yield scalar("abs", 1, 1, abs_)
    yield math1("ceil", lambda x: float(math.ceil(x)))
    yield math1("ceiling", lambda x: float(math.ceil(x)))
    yield math1("floor", lambda x: float(math.floor(x)))
    yield scalar("round", 1, 2, _round)
    yield scalar("trunc", 2, 2, _trunc)
    yield scalar("sqrt", 1, 1, _sqrt)
    yield scalar("power", 2, 2, lambda a, ctx: math.pow(num(a[0]), num(a[1])))
    yield scalar("pow", 2, 2, lambda a, ctx: math.pow(num(a[0]), num(a[1])))
    yield scalar("mod", 2, 2, _mod)
    yield scalar("sign", 1, 1, _sign)
    yield math1("exp", math.exp)
    yield scalar("ln", 1, 1, _ln)
    yield scalar("log", 1, 2, _log)
    for name in ("sin", "cos", "tan", "sinh", "cosh", "tanh", "atan", "radians", "degrees"):
        yield math1(name, getattr(math, name))
    yield scalar("acos", 1, 1, _inverse_trig(math.acos))
    yield scalar("asin", 1, 1, _inverse_trig(math.asin))
    yield scalar("atan2", 2, 2, lambda a, ctx: math.atan2(float(num(a[0])), float(num(a[1]))))
    yield scalar("cot", 1, 1, _cot)
    yield scalar("pi", 0, 0, lambda a, ctx: math.pi)
    yield scalar("rand", 0, 0, lambda a, ctx: random.random())
    yield scalar("conv", 3, 3, _conv)
    yield scalar("chr", 1, 1, _chr)
    yield scalar("hex2dec", 1, 1, _hex2dec)
    yield scalar("dec2hex", 1, 1, _dec2hex)
    yield _bit("bitand", lambda x, y: x & y)
    yield _bit("bitor", lambda x, y: x | y)
    yield _bit("bitxor", lambda x, y: x ^ y)
    yield with_check(scalar("bitnot", 1, 1, lambda a, ctx: ~as_int(a[0])), int_literal_param(1))
