"""The built-in function registry (SURFACE.md §D): name -> kind, arity, parse-time checks, implementation.

Adding a function is adding one ``FunctionDef`` to ``_scalar_defs`` (or to the aggregate/analytic/window
lists, whose evaluation the window and analytic operators will own). Names are case-insensitive.
"""

from __future__ import annotations

import base64
import datetime
import hashlib
import math
import random
import re
import uuid
from collections.abc import Callable, Iterable, Mapping, Sequence
from types import MappingProxyType
from typing import Any
from typing import Literal as TypingLiteral

import attrs
import orjson

from runtime.sql.ast import Call, Expr, FieldRef, Literal, NestedRef, TimeUnit, Wildcard
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
        (arity, placement checks) but evaluated by the operators that own them.
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


def lookup(name: str) -> FunctionDef | None:
    return _REGISTRY.get(name.lower())


def function_names() -> list[str]:
    return sorted(_REGISTRY)


# ------------------------------------------------------------------------------------------------ helpers


def _num(value: Any) -> int | float:
    if type(value) is int or type(value) is float:
        return value
    raise EvalError(f"only float64 & int type are supported, got {go_str(value)}")


def _int(value: Any, what: str = "argument") -> int:
    if type(value) is int:
        return value
    raise EvalError(f"{what} should be int")


def _text(value: Any) -> str:
    return value if isinstance(value, str) else go_str(value)


def _go_round(x: float) -> float:
    return math.copysign(math.floor(abs(x) + 0.5), x)  # Go math.Round: half away from zero


def _round(a: Sequence[Any], ctx: EvalContext) -> float:
    x = float(_num(a[0]))
    if len(a) == 1:
        return _go_round(x)
    scale = 10.0 ** _int(a[1], "second argument")
    return _go_round(x * scale) / scale


def _log(a: Sequence[Any], ctx: EvalContext) -> float:
    if len(a) == 1:
        x = float(_num(a[0]))
        if x <= 0:
            raise EvalError("log of a non-positive number")
        return math.log10(x)
    base, x = float(_num(a[0])), float(_num(a[1]))
    if base <= 0 or x <= 0 or base == 1:
        raise EvalError("log of a non-positive number or base")
    return math.log(x, base)


def _ln(a: Sequence[Any], ctx: EvalContext) -> float:
    x = float(_num(a[0]))
    if x <= 0:
        raise EvalError("ln of a non-positive number")
    return math.log(x)


def _sqrt(a: Sequence[Any], ctx: EvalContext) -> float:
    x = float(_num(a[0]))
    if x < 0:
        raise EvalError("sqrt of a negative number")
    return math.sqrt(x)


def _mod(a: Sequence[Any], ctx: EvalContext) -> float:
    x, y = float(_num(a[0])), float(_num(a[1]))
    if y == 0:
        raise EvalError("divided by zero")
    return math.fmod(x, y)


def _sign(a: Sequence[Any], ctx: EvalContext) -> int:
    x = _num(a[0])
    return (x > 0) - (x < 0)


def _substring(a: Sequence[Any], ctx: EvalContext) -> str:
    # Byte offsets, end exclusive (the code's behaviour, not the doc's "length": SURFACE.md §D.2).
    data = _text(a[0]).encode()
    start = _int(a[1], "start")
    end = _int(a[2], "end") if len(a) > 2 else len(data)
    if start < 0 or end < 0:
        raise EvalError("start and end index of substring cannot be negative")
    if start > end:
        raise EvalError(f"start index {start} is larger than end index {end}")
    return data[start:end].decode(errors="replace")


def _split_value(a: Sequence[Any], ctx: EvalContext) -> str:
    parts = _text(a[0]).split(_text(a[1]))
    i = _int(a[2], "third argument")
    if not -len(parts) <= i < len(parts):
        raise EvalError(f"the index {i} is out of range")
    return parts[i]


def _go_replacement(repl: str) -> str:
    # Go's ${1} / $1 group references -> Python's \g<1>.
    return re.sub(r"\$\{?(\w+)\}?", r"\\g<\1>", repl.replace("\\", "\\\\"))


def _cast(a: Sequence[Any], ctx: EvalContext) -> Any:
    value, target = a[0], str(a[1]).lower()
    try:
        if target == "bigint":
            if isinstance(value, str):
                return int(float(value)) if "." in value or "e" in value.lower() else int(value)
            return int(value)
        if target == "float":
            return float(value)
        if target == "string":
            return _text(value)
        if target == "boolean":
            if isinstance(value, str):
                return value.strip().lower() in ("true", "1", "t")
            return bool(value)
        if target == "datetime":
            if isinstance(value, int | float) and not isinstance(value, bool):
                return datetime.datetime.fromtimestamp(value / 1000, tz=datetime.UTC)
            if isinstance(value, str):
                return datetime.datetime.fromisoformat(value)
            if isinstance(value, datetime.datetime):
                return value
        if target == "bytea":
            if isinstance(value, bytes):
                return value
            if isinstance(value, str):
                return base64.b64decode(value, validate=True)
    except (ValueError, TypeError, OverflowError) as exc:
        raise EvalError(f"cannot convert {go_str(value)} to {target}: {exc}") from None
    raise EvalError(f"cannot convert {go_str(value)} to {target}")


_CAST_TYPES = ("bigint", "float", "string", "boolean", "datetime", "bytea")


def _check_cast(call: Call) -> str | None:
    target = call.args[1] if len(call.args) == 2 else None
    if isinstance(target, Literal) and str(target.value).lower() not in _CAST_TYPES:
        return f"Expect one of {', '.join(_CAST_TYPES)} type for parameter 2 of cast"
    return None


def _to_json(a: Sequence[Any], ctx: EvalContext) -> str:
    return orjson.dumps(a[0], default=go_str).decode()


def _parse_json(a: Sequence[Any], ctx: EvalContext) -> Any:
    try:
        return orjson.loads(_text(a[0]))
    except orjson.JSONDecodeError as exc:
        raise EvalError(f"fail to parse json: {exc}") from None


def _digest(algorithm: str) -> Impl:
    def impl(a: Sequence[Any], ctx: EvalContext) -> str:
        return hashlib.new(algorithm, _text(a[0]).encode()).hexdigest()

    return impl


def _concat(a: Sequence[Any], ctx: EvalContext) -> str:
    return "".join("" if v is None else _text(v) for v in a)


def _length(a: Sequence[Any], ctx: EvalContext) -> int:
    v = a[0]
    if v is None:
        return 0
    if isinstance(v, str | list | dict):
        return len(v)
    return len(_text(v))


def _compile_meta(call: Call, compile_sub: Callable[[Expr], Fn]) -> Fn:
    # The argument names a metadata key; it is never evaluated against the row.
    arg = call.args[0]
    if isinstance(arg, Wildcard):
        return lambda row, ctx: ctx.meta
    path: list[str] = []
    node: Expr = arg
    while isinstance(node, NestedRef):
        path.append(node.key)
        node = node.base
    if not isinstance(node, FieldRef):
        raise EvalError("the argument of meta must be a metadata key")
    path.append(node.name)
    path.reverse()

    def meta(row: dict[str, Any], ctx: EvalContext) -> Any:
        value: Any = ctx.meta
        for key in path:
            if not isinstance(value, dict):
                return None
            value = value.get(key)
        return value

    return meta


def _check_meta(call: Call) -> str | None:
    arg = call.args[0] if call.args else None
    while isinstance(arg, NestedRef):
        arg = arg.base
    if not isinstance(arg, FieldRef | Wildcard):
        return "validate function meta error: Expect meta reference type for parameter 1"
    return None


def _int_literal_param(position: int) -> Check:
    def check(call: Call) -> str | None:
        if len(call.args) > position - 1:
            arg = call.args[position - 1]
            if isinstance(arg, Literal) and type(arg.value) is not int:
                return f"validate function {call.name} error: Expect int type for parameter {position}"
        return None

    return check


def _check_lag(call: Call) -> str | None:
    if not 1 <= len(call.args) <= 4:
        return f"validate function lag error: expect one two or three args but got {len(call.args)}"
    if len(call.args) > 1 and not (isinstance(call.args[1], Literal) and type(call.args[1].value) is int):
        return "validate function lag error: Expect int type for parameter 2"  # the offset must be literal
    return None


def _window_check(name: str, arities: tuple[int, ...], timed: bool) -> Check:
    def check(call: Call) -> str | None:
        n = len(call.args)
        if n not in arities:
            expect = " or ".join(str(a) for a in arities)
            return f"The arguments for {name} should be {expect}."
        if timed and not isinstance(call.args[0], TimeUnit):
            return (
                f"The 1st argument for {name} is expecting timer literal expression. "
                "One value of [dd|hh|mi|ss|ms]."
            )
        rest = call.args[1:] if timed else call.args
        for arg in rest:
            if not (isinstance(arg, Literal) and type(arg.value) is int):
                return f"The arguments for {name} should be integer literals."
        if name == "countwindow" and n == 2:
            first, second = (arg.value for arg in rest if isinstance(arg, Literal))
            if second > first:
                return f"The second parameter value {second} should be less than the first parameter {first}."
        return None

    return check


def _scalar(name: str, lo: int, hi: int | None, impl: Impl, *, nulls: bool = True) -> FunctionDef:
    return FunctionDef(name=name, min_args=lo, max_args=hi, impl=impl, null_passthrough=nulls)


def _math1(name: str, op: Callable[[float], float]) -> FunctionDef:
    return _scalar(name, 1, 1, lambda a, ctx: op(float(_num(a[0]))))


def _str1(name: str, op: Callable[[str], Any]) -> FunctionDef:
    return _scalar(name, 1, 1, lambda a, ctx: op(_text(a[0])))


def _pad(left: bool) -> Impl:
    def impl(a: Sequence[Any], ctx: EvalContext) -> str:
        pad = " " * _int(a[1], "second argument")  # a count of spaces, not a target width (§D.2)
        return pad + _text(a[0]) if left else _text(a[0]) + pad

    return impl


def _scalar_defs() -> Iterable[FunctionDef]:
    def abs_(a: Sequence[Any], ctx: EvalContext) -> int | float:
        return abs(_num(a[0]))

    yield _scalar("abs", 1, 1, abs_)
    yield _math1("ceil", lambda x: float(math.ceil(x)))
    yield _math1("ceiling", lambda x: float(math.ceil(x)))
    yield _math1("floor", lambda x: float(math.floor(x)))
    yield _scalar("round", 1, 2, _round)
    yield _scalar("sqrt", 1, 1, _sqrt)
    yield _scalar("power", 2, 2, lambda a, ctx: math.pow(_num(a[0]), _num(a[1])))
    yield _scalar("pow", 2, 2, lambda a, ctx: math.pow(_num(a[0]), _num(a[1])))
    yield _scalar("mod", 2, 2, _mod)
    yield _scalar("sign", 1, 1, _sign)
    yield _math1("exp", math.exp)
    yield _scalar("ln", 1, 1, _ln)
    yield _scalar("log", 1, 2, _log)
    for name in ("sin", "cos", "tan", "sinh", "cosh", "tanh", "atan", "radians", "degrees"):
        yield _math1(name, getattr(math, name))
    yield _scalar("pi", 0, 0, lambda a, ctx: math.pi)
    yield _scalar("rand", 0, 0, lambda a, ctx: random.random())
    yield _scalar("concat", 1, None, _concat, nulls=False)
    yield _str1("lower", str.lower)
    yield _str1("upper", str.upper)
    yield _scalar("length", 1, 1, _length, nulls=False)
    yield _scalar(
        "numbytes", 1, 1, lambda a, ctx: 0 if a[0] is None else len(_text(a[0]).encode()), nulls=False
    )
    yield _str1("trim", str.strip)
    yield _str1("ltrim", str.lstrip)
    yield _str1("rtrim", str.rstrip)
    yield _str1("reverse", lambda s: s[::-1])
    yield _scalar("substring", 2, 3, _substring)
    yield _scalar(
        "indexof",
        2,
        2,
        lambda a, ctx: (
            -1 if a[0] is None or a[1] is None else _text(a[0]).encode().find(_text(a[1]).encode())
        ),
        nulls=False,
    )
    yield _scalar(
        "startswith", 2, 2, lambda a, ctx: None not in a and _text(a[0]).startswith(_text(a[1])), nulls=False
    )
    yield _scalar(
        "endswith", 2, 2, lambda a, ctx: None not in a and _text(a[0]).endswith(_text(a[1])), nulls=False
    )
    yield _scalar("lpad", 2, 2, _pad(left=True))
    yield _scalar("rpad", 2, 2, _pad(left=False))
    yield _scalar("split_value", 3, 3, _split_value)
    yield _scalar(
        "regexp_matches",
        2,
        2,
        lambda a, ctx: None not in a and re.search(_text(a[1]), _text(a[0])) is not None,
        nulls=False,
    )
    yield _scalar(
        "regexp_replace",
        3,
        3,
        lambda a, ctx: re.sub(_text(a[1]), _go_replacement(_text(a[2])), _text(a[0])),
    )
    yield attrs.evolve(_scalar("cast", 2, 2, _cast), check=_check_cast)
    yield _scalar("to_json", 1, 1, _to_json, nulls=False)
    yield _scalar("parse_json", 1, 1, _parse_json)
    for algorithm in ("md5", "sha1", "sha256", "sha384", "sha512"):
        yield _scalar(algorithm, 1, 1, _digest(algorithm))
    yield _scalar("isnull", 1, 1, lambda a, ctx: a[0] is None, nulls=False)
    yield _scalar(
        "coalesce", 1, None, lambda a, ctx: next((v for v in a if v is not None), None), nulls=False
    )
    yield _scalar("newuuid", 0, 0, lambda a, ctx: str(uuid.uuid4()))
    yield _scalar("tstamp", 0, 0, lambda a, ctx: ctx.now_ms())
    yield _scalar("rule_id", 0, 0, lambda a, ctx: ctx.rule_id)
    yield _scalar("event_time", 0, 0, lambda a, ctx: ctx.ts)
    yield _scalar("window_start", 0, 0, lambda a, ctx: ctx.window_start)
    yield _scalar("window_end", 0, 0, lambda a, ctx: ctx.window_end)
    yield FunctionDef("meta", min_args=1, max_args=1, compile=_compile_meta, check=_check_meta)
    yield attrs.evolve(
        _scalar("bitand", 2, 2, lambda a, ctx: _int(a[0]) & _int(a[1])), check=_int_literal_param(1)
    )
    yield attrs.evolve(
        _scalar("bitor", 2, 2, lambda a, ctx: _int(a[0]) | _int(a[1])), check=_int_literal_param(1)
    )
    yield attrs.evolve(
        _scalar("bitxor", 2, 2, lambda a, ctx: _int(a[0]) ^ _int(a[1])), check=_int_literal_param(1)
    )
    yield _scalar("bitnot", 1, 1, lambda a, ctx: ~_int(a[0]))


def _other_defs() -> Iterable[FunctionDef]:
    # Recognised now (arity and placement are checked at parse time); evaluated by later operators.
    for name in ("count", "sum", "avg", "max", "min", "collect", "merge_agg", "median"):
        yield FunctionDef(name, kind="aggregate", min_args=1, max_args=1)
    for name in ("stddev", "stddevs", "var", "vars"):
        yield FunctionDef(name, kind="aggregate", min_args=1, max_args=1)
    for name in ("deduplicate", "last_value", "percentile_cont", "percentile_disc"):
        yield FunctionDef(name, kind="aggregate", min_args=2, max_args=2)
    yield FunctionDef("lag", kind="analytic", check=_check_lag)
    yield FunctionDef("latest", kind="analytic", min_args=1, max_args=2)
    yield FunctionDef("changed_col", kind="analytic", min_args=2, max_args=2)
    yield FunctionDef("had_changed", kind="analytic", min_args=2)
    for name in ("acc_sum", "acc_min", "acc_max", "acc_count", "acc_avg"):
        yield FunctionDef(name, kind="analytic", min_args=1, max_args=3)
    yield FunctionDef("changed_cols", kind="multi", min_args=3)
    yield FunctionDef("row_number", kind="window_func", min_args=0, max_args=0)
    yield FunctionDef("unnest", kind="srf", min_args=1, max_args=1)
    windows = {
        "tumblingwindow": ((2,), True),
        "hoppingwindow": ((3,), True),
        "slidingwindow": ((2, 3), True),
        "sessionwindow": ((3,), True),
        "countwindow": ((1, 2), False),
    }
    for name, (arities, timed) in windows.items():
        yield FunctionDef(name, kind="window", check=_window_check(name, arities, timed))
    yield FunctionDef("statewindow", kind="window", min_args=1, max_args=2)


def _build() -> Mapping[str, FunctionDef]:
    table = {fdef.name: fdef for fdef in (*_scalar_defs(), *_other_defs())}
    return MappingProxyType(table)


# Read-only after import (no module-level mutable state); extended by adding entries above.
_REGISTRY: Mapping[str, FunctionDef] = _build()
