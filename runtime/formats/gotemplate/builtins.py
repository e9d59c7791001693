"""Go's predefined template functions: ``and or not len index slice print printf println html js urlquery
eq ne lt le gt ge`` (``call`` is missing: templates here have no function values).

``and``/``or`` short-circuit and are evaluated by the executor itself; their entries here only declare them.
Comparisons follow Go except that an integer and a float compare by value: Oort keeps JSON integers as
integers, where eKuiper's rows hold float64, so ``lt .t 30.0`` must work on ``{"t": 25}``.
"""

from __future__ import annotations

from typing import Any, Final
from urllib.parse import quote_plus

from runtime.formats.gotemplate.funcs import Func, FuncError, FuncMap, table
from runtime.formats.gotemplate.printf import sprint, sprintf, sprintln
from runtime.formats.gotemplate.values import MISSING, GoInt, is_true, type_name


def _nil(value: Any) -> bool:
    return value is None or value is MISSING


def _not(value: Any) -> bool:
    return not is_true(value)


def _len(value: Any) -> GoInt:
    if value is MISSING:
        raise FuncError("reflect: call of reflect.Value.Type on zero Value")
    if value is None:
        raise FuncError("len of nil pointer")
    if isinstance(value, str):
        return GoInt(len(value.encode()))  # Go counts bytes
    if isinstance(value, bytes | bytearray | list | tuple | dict):
        return GoInt(len(value))
    raise FuncError(f"len of type {type_name(value)}")


def _index_arg(index: Any, size: int) -> int:
    if _nil(index):
        raise FuncError("cannot index slice/array with nil")
    if isinstance(index, bool) or not isinstance(index, int):
        raise FuncError(f"cannot index slice/array with type {type_name(index)}")
    if index < 0 or index > size:
        raise FuncError(f"index out of range: {index}")
    return int(index)


def _sequence(item: Any) -> Any:
    return item.encode() if isinstance(item, str) else item


def _index(item: Any, *indexes: Any) -> Any:
    if _nil(item):
        raise FuncError("index of untyped nil")
    for index in indexes:
        if item is None:
            raise FuncError("index of nil pointer")
        if isinstance(item, str | bytes | bytearray | list | tuple):
            seq = _sequence(item)
            position = _index_arg(index, len(seq))
            if position == len(seq):
                kind = "string" if isinstance(item, str) else "slice"
                raise FuncError(f"reflect: {kind} index out of range")
            item = seq[position]
        elif isinstance(item, dict):
            if _nil(index):
                raise FuncError("value is nil; should be of type string")
            if not isinstance(index, str):
                raise FuncError(f"value has type {type_name(index)}; should be string")
            item = item.get(index)
        else:
            raise FuncError(f"can't index item of type {type_name(item)}")
    return item


def _slice(item: Any, *indexes: Any) -> Any:
    if _nil(item):
        raise FuncError("slice of untyped nil")
    if len(indexes) > 3:
        raise FuncError(f"too many slice indexes: {len(indexes)}")
    if not isinstance(item, str | bytes | bytearray | list | tuple):
        raise FuncError(f"can't slice item of type {type_name(item)}")
    if isinstance(item, str) and len(indexes) == 3:
        raise FuncError("cannot 3-index slice a string")
    seq = _sequence(item)
    bounds = [0, len(seq)]
    for i, index in enumerate(indexes[:2]):
        bounds[i] = _index_arg(index, len(seq))
    if bounds[0] > bounds[1]:
        raise FuncError(f"invalid slice index: {bounds[0]} > {bounds[1]}")
    if len(indexes) == 3 and _index_arg(indexes[2], len(seq)) < bounds[1]:
        raise FuncError(f"invalid slice index: {bounds[1]} > {indexes[2]}")
    result = seq[bounds[0] : bounds[1]]
    return result.decode("utf-8", "replace") if isinstance(item, str) else result


def _eval_args(args: tuple[Any, ...]) -> str:
    if len(args) == 1 and isinstance(args[0], str):
        return args[0]
    return sprint([None if a is MISSING else a for a in args])


_HTML: Final = str.maketrans(
    {'"': "&#34;", "'": "&#39;", "&": "&amp;", "<": "&lt;", ">": "&gt;", "\0": "\ufffd"}
)


def _html(*args: Any) -> str:
    return _eval_args(args).translate(_HTML)


_JS_SHORT: Final = {
    "\\": "\\\\",
    "'": "\\'",
    '"': '\\"',
    "<": "\\u003C",
    ">": "\\u003E",
    "&": "\\u0026",
    "=": "\\u003D",
}


def _js(*args: Any) -> str:
    out: list[str] = []
    for ch in _eval_args(args):
        code = ord(ch)
        if ch in _JS_SHORT:
            out.append(_JS_SHORT[ch])
        elif code < 0x20 or (code >= 0x80 and not ch.isprintable()):
            out.append(f"\\u{code:04X}")
        else:
            out.append(ch)
    return "".join(out)


def _urlquery(*args: Any) -> str:
    return quote_plus(_eval_args(args), safe="-_.~")


# ---- comparisons -------------------------------------------------------------------------------------

_BAD_TYPE: Final = "invalid type for comparison"
_INCOMPATIBLE: Final = "incompatible types for comparison"


def _kind(value: Any) -> str | None:
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, int | float):
        return "number"
    if isinstance(value, str):
        return "string"
    return None


def _eq(first: Any, *others: Any) -> bool:
    if not others:
        raise FuncError("missing argument for comparison")
    k1 = _kind(first)
    for other in others:
        k2 = _kind(other)
        if k1 != k2:
            if not _nil(first) and not _nil(other):
                raise FuncError(_INCOMPATIBLE)
            truth = False
        elif k1 is not None:
            truth = first == other
        elif _nil(first) or _nil(other):
            truth = _nil(first) and _nil(other)
        elif type_name(first) != type_name(other):
            raise FuncError(
                f"non-comparable types {sprintf('%s', [first])}: {type_name(first)}, "
                f"{type_name(other)}: {sprint([other])}"
            )
        else:
            raise FuncError(f"non-comparable type {sprintf('%s', [other])}: {type_name(other)}")
        if truth:
            return True
    return False


def _lt(a: Any, b: Any) -> bool:
    k1, k2 = _kind(a), _kind(b)
    if k1 is None or k2 is None:
        raise FuncError(_BAD_TYPE)
    if k1 != k2:
        raise FuncError(_INCOMPATIBLE)
    if k1 == "bool":
        raise FuncError(_BAD_TYPE)
    return bool(a < b)


def _le(a: Any, b: Any) -> bool:
    return _lt(a, b) or _eq(a, b)


BUILTINS: Final[FuncMap] = table(
    {
        "and": Func("value value", lambda *a: a[-1], variadic=True),
        "or": Func("value value", lambda *a: a[-1], variadic=True),
        "not": Func("value", _not),
        "len": Func("value", _len),
        "index": Func("value value", _index, variadic=True),
        "slice": Func("value value", _slice, variadic=True),
        "print": Func("any", lambda *a: sprint(a), variadic=True),
        "printf": Func("string any", lambda f, *a: sprintf(f, a), variadic=True),
        "println": Func("any", lambda *a: sprintln(a), variadic=True),
        "html": Func("any", _html, variadic=True),
        "js": Func("any", _js, variadic=True),
        "urlquery": Func("any", _urlquery, variadic=True),
        "eq": Func("value value", _eq, variadic=True),
        "ne": Func("value value", lambda a, b: not _eq(a, b)),
        "lt": Func("value value", _lt),
        "le": Func("value value", _le),
        "gt": Func("value value", lambda a, b: not _le(a, b)),
        "ge": Func("value value", lambda a, b: not _lt(a, b)),
    }.items()
)
"""Go's builtins by name."""
