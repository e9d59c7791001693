"""sprig v3's math, list and dict functions, as sprig 3.3's Go code computes them.

Integer math converts with spf13/cast (``"3"`` is 3, ``2.7`` is 2, anything else 0) and wraps like int64;
``div`` and ``mod`` by zero fail as Go's runtime does. The ``*f`` functions work in decimal as shopspring's
decimal does. ``keys`` and ``values`` come in key order (Go's map order is random).
"""

from __future__ import annotations

import math
from decimal import ROUND_HALF_UP, Decimal, InvalidOperation, localcontext
from typing import Any, Final

from runtime.formats.gotemplate.funcs import (
    Func,
    FuncError,
    deep_equal,
    is_empty,
    is_list,
    kind_of,
    strval,
    table,
    to_float64,
    to_int,
    to_int64,
    wrap64,
)
from runtime.formats.gotemplate.values import GoInt, sorted_items, sprint


def _div(a: Any, b: Any) -> int:
    x, y = to_int64(a), to_int64(b)
    if y == 0:
        raise FuncError("runtime error: integer divide by zero")
    quotient = abs(x) // abs(y)
    return wrap64(quotient if (x < 0) == (y < 0) else -quotient)


def _mod(a: Any, b: Any) -> int:
    x, y = to_int64(a), to_int64(b)
    if y == 0:
        raise FuncError("runtime error: integer divide by zero")
    remainder = abs(x) % abs(y)
    return remainder if x >= 0 else -remainder


def _mul(a: Any, *others: Any) -> int:
    value = to_int64(a)
    for other in others:
        value = wrap64(value * to_int64(other))
    return value


def _round(a: Any, places: int, *round_on: float) -> float:
    threshold = round_on[0] if round_on else 0.5
    pow10 = math.pow(10, float(places))
    digit = pow10 * to_float64(a)
    if math.isnan(digit) or math.isinf(digit):
        return digit / pow10
    fraction = math.modf(digit)[0]
    rounded = math.ceil(digit) if fraction >= threshold else math.floor(digit)
    return float(rounded) / pow10


def _decimal(value: Any) -> Decimal:
    number = to_float64(value)
    if math.isnan(number) or math.isinf(number):
        raise FuncError(f"Cannot create a Decimal from {sprint(number)}")
    return Decimal(
        repr(number)
    )  # shopspring's NewFromFloat: the shortest decimal that reads back as the float


def _decimal_op(op: str, first: Any, others: tuple[Any, ...]) -> float:
    with localcontext() as ctx:
        ctx.prec = 200
        value = _decimal(first)
        for other in others:
            operand = _decimal(other)
            if op == "+":
                value += operand
            elif op == "-":
                value -= operand
            elif op == "*":
                value *= operand
            else:
                if operand == 0:
                    raise FuncError("decimal division by 0")
                try:
                    value = (value / operand).quantize(Decimal(1).scaleb(-16), rounding=ROUND_HALF_UP)
                except InvalidOperation as exc:
                    raise FuncError(str(exc)) from None
        return float(value)


def _until_step(start: int, stop: int, step: int) -> list[Any]:
    if stop < start:
        return [GoInt(i) for i in range(start, stop, step)] if step < 0 else []
    return [GoInt(i) for i in range(start, stop, step)] if step > 0 else []


def _seq(*params: int) -> str:
    if len(params) == 1:
        end = params[0]
        step = -1 if end < 1 else 1
        numbers = _until_step(1, end + step, step)
    elif len(params) == 2:
        start, end = params
        step = -1 if end < start else 1
        numbers = _until_step(start, end + step, step)
    elif len(params) == 3:
        start, step, end = params
        increment = -1 if end < start else 1
        if end < start and step > 0:
            return ""
        numbers = _until_step(start, end + increment, step)
    else:
        return ""
    return " ".join(str(n) for n in numbers)


def _need_list(value: Any, what: str) -> list[Any]:
    if not is_list(value):
        raise FuncError(f"Cannot {what} type {kind_of(value)}")
    return list(value)


def _first(value: Any) -> Any:
    items = _need_list(value, "find first on")
    return items[0] if items else None


def _last(value: Any) -> Any:
    items = _need_list(value, "find last on")
    return items[-1] if items else None


def _uniq(value: Any) -> list[Any]:
    out: list[Any] = []
    for item in _need_list(value, "find uniq on"):
        if not any(deep_equal(item, seen) for seen in out):
            out.append(item)
    return out


def _has(needle: Any, haystack: Any) -> bool:
    if haystack is None:
        return False
    return any(deep_equal(needle, item) for item in _need_list(haystack, "find has on"))


def _slice(value: Any, *indexes: Any) -> Any:
    if not is_list(value):
        raise FuncError(f"list should be type of slice or array but {kind_of(value)}")
    items = list(value)
    if not items:
        return None
    start = to_int(indexes[0]) if indexes else 0
    end = to_int(indexes[1]) if len(indexes) > 1 else len(items)
    if not 0 <= start <= end <= len(items):
        raise FuncError(f"reflect: slice index out of range [{start}:{end}] with length {len(items)}")
    return items[start:end]


def _concat(*lists: Any) -> list[Any]:
    out: list[Any] = []
    for value in lists:
        if not is_list(value):
            raise FuncError(f"Cannot concat type {kind_of(value)} as list")
        out.extend(value)
    return out


def _to_decimal(value: Any) -> int:
    """sprig's ``toDecimal``: the value's text read as an octal number (0 when it is not one)."""
    text = sprint(value)
    digits = text[1:] if text[:1] in "+-" else text
    if not digits or any(c not in "01234567" for c in digits):
        return 0
    number = int(text, 8)
    return number if -(2**63) <= number < 2**63 else 0


def _dict(*pairs: Any) -> dict[str, Any]:
    items = list(pairs) + ([""] if len(pairs) % 2 else [])
    return {strval(items[i]): items[i + 1] for i in range(0, len(items), 2)}


def _dig(*args: Any) -> Any:
    if len(args) < 3:
        raise FuncError("dig needs at least three arguments")
    current, fallback, keys = args[-1], args[-2], args[:-2]
    for i, key in enumerate(keys):
        if not isinstance(current, dict) or not isinstance(key, str):
            raise FuncError(
                f"interface conversion: interface {{}} is {kind_of(current)}, not map[string]interface {{}}"
            )
        if key not in current:
            return fallback
        current = current[key]
        if i == len(keys) - 1:
            return current
    return fallback


_FUNCS: Final = {
    # integer math (int64)
    "add": Func("any", lambda *a: wrap64(sum(to_int64(v) for v in a)), variadic=True),
    "add1": Func("any", lambda a: wrap64(to_int64(a) + 1)),
    "sub": Func("any any", lambda a, b: wrap64(to_int64(a) - to_int64(b))),
    "mul": Func("any any", _mul, variadic=True),
    "div": Func("any any", _div),
    "mod": Func("any any", _mod),
    "max": Func("any any", lambda a, *r: max([to_int64(a), *(to_int64(v) for v in r)]), variadic=True),
    "biggest": Func("any any", lambda a, *r: max([to_int64(a), *(to_int64(v) for v in r)]), variadic=True),
    "min": Func("any any", lambda a, *r: min([to_int64(a), *(to_int64(v) for v in r)]), variadic=True),
    # float math
    "maxf": Func("any any", lambda a, *r: max([to_float64(a), *(to_float64(v) for v in r)]), variadic=True),
    "minf": Func("any any", lambda a, *r: min([to_float64(a), *(to_float64(v) for v in r)]), variadic=True),
    "floor": Func("any", lambda a: float(math.floor(x)) if math.isfinite(x := to_float64(a)) else x),
    "ceil": Func("any", lambda a: float(math.ceil(x)) if math.isfinite(x := to_float64(a)) else x),
    "round": Func("any int float", _round, variadic=True),
    "addf": Func("any", lambda *a: _decimal_op("+", 0.0, a), variadic=True),
    "add1f": Func("any", lambda a: _decimal_op("+", a, (1,))),
    "subf": Func("any any", lambda a, *r: _decimal_op("-", a, r), variadic=True),
    "mulf": Func("any any", lambda a, *r: _decimal_op("*", a, r), variadic=True),
    "divf": Func("any any", lambda a, *r: _decimal_op("/", a, r), variadic=True),
    # conversions and sequences
    "int": Func("any", to_int),
    "int64": Func("any", to_int64),
    "float64": Func("any", to_float64),
    "until": Func("int", lambda n: _until_step(0, n, -1 if n < 0 else 1)),
    "untilStep": Func("int int int", _until_step),
    "seq": Func("int", _seq, variadic=True),
    # lists
    "list": Func("any", lambda *a: list(a), variadic=True),
    "tuple": Func("any", lambda *a: list(a), variadic=True),
    "first": Func("any", _first),
    "last": Func("any", _last),
    "rest": Func("any", lambda v: _need_list(v, "find rest on")[1:]),
    "initial": Func("any", lambda v: _need_list(v, "find initial on")[:-1]),
    "append": Func("any any", lambda v, x: [*_need_list(v, "push on"), x]),
    "push": Func("any any", lambda v, x: [*_need_list(v, "push on"), x]),
    "prepend": Func("any any", lambda v, x: [x, *_need_list(v, "prepend on")]),
    "reverse": Func("any", lambda v: _need_list(v, "find reverse on")[::-1]),
    "uniq": Func("any", _uniq),
    "compact": Func("any", lambda v: [x for x in _need_list(v, "compact on") if not is_empty(x)]),
    "without": Func(
        "any any",
        lambda v, *omit: [
            x for x in _need_list(v, "find without on") if not any(deep_equal(x, o) for o in omit)
        ],
        variadic=True,
    ),
    "has": Func("any any", _has),
    "slice": Func("any any", _slice, variadic=True),
    "toDecimal": Func("any", _to_decimal),
    "concat": Func("any", _concat, variadic=True),
    # dicts
    "dict": Func("any", _dict, variadic=True),
    "get": Func("map string", lambda d, k: (d or {}).get(k, "")),
    "hasKey": Func("map string", lambda d, k: k in (d or {})),
    "keys": Func("map", lambda *ds: sorted(k for d in ds for k in (d or {})), variadic=True),
    "values": Func("map", lambda d: [v for _, v in sorted_items(d or {})]),
    "pluck": Func("string map", lambda k, *ds: [d[k] for d in ds if d and k in d], variadic=True),
    "pick": Func("map string", lambda d, *ks: {k: d[k] for k in ks if d and k in d}, variadic=True),
    "omit": Func(
        "map string", lambda d, *ks: {k: v for k, v in (d or {}).items() if k not in ks}, variadic=True
    ),
    "dig": Func("any", _dig, variadic=True),
}
# sprig's must* list variants return the error the plain ones panic with: both are an error here.
_MUST: Final = ("first", "last", "rest", "initial", "append", "push", "prepend", "reverse", "uniq", "without")

DATA_FUNCS: Final = table(
    _FUNCS.items(),
    [(f"must{name[0].upper()}{name[1:]}", _FUNCS[name]) for name in (*_MUST, "has", "slice", "compact")],
)
"""By name; ``runtime.formats.gotemplate.template`` merges them into its function table."""
