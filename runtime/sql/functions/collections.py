"""Array and object functions (eKuiper docs sqls/functions/array_functions.md and object_functions.md), with
eKuiper's own null rules and error texts.

None of these use the generic nil -> nil shortcut: each decides what a null argument means (``array_concat``
skips it, ``array_contains`` answers false, ``object_size`` counts 0), as eKuiper's tables show.
"""

from __future__ import annotations

import functools
import random
from collections.abc import Callable, Iterable, Sequence
from typing import Any

from runtime.sql.functions.base import FunctionDef, arity_error, scalar, text
from runtime.sql.values import EvalContext, EvalError, go_str, go_type, loose_equal

Lookup = Callable[[str], FunctionDef | None]
"""Finds a registered function by name (the registry's ``lookup``)."""

_ARRAY = "should be array of interface{}"
_ORDINALS = ("first", "second", "third")


def _array(value: Any, position: int = 0) -> list[Any]:
    if not isinstance(value, list):
        raise EvalError(f"{_ORDINALS[position]} argument {_ARRAY}")
    return value


def _eq(a: Any, b: Any) -> bool:
    # Go's reflect.DeepEqual on decoded JSON: null equals null, numbers compare by value and kind.
    if a is None or b is None:
        return a is None and b is None
    return loose_equal(a, b) if not isinstance(a, dict | list) else bool(a == b)


def _dedup(items: Iterable[Any]) -> list[Any]:
    out: list[Any] = []
    for item in items:
        if isinstance(item, dict) or not any(_eq(item, seen) for seen in out):
            out.append(item)  # maps are never deduplicated (they are not comparable in Go)
    return out


def _position(last: bool) -> Callable[[Sequence[Any], EvalContext], int]:
    def impl(a: Sequence[Any], ctx: EvalContext) -> int:
        if a[0] is None:
            return -1
        arr = _array(a[0])
        order = range(len(arr) - 1, -1, -1) if last else range(len(arr))
        return next((i for i in order if _eq(arr[i], a[1])), -1)

    return impl


def _element_at(a: Sequence[Any], ctx: EvalContext) -> Any:
    container, key = a[0], a[1]
    if isinstance(container, dict):
        if not isinstance(key, str):
            raise EvalError("second argument should be string")
        return container.get(key)
    if not isinstance(container, list):
        raise EvalError("first argument should be []interface{} or map[string]interface{}")
    if type(key) is not int:
        raise EvalError("second argument should be int")
    if not -len(container) <= key < len(container):
        raise EvalError("index out of range")
    return container[key]


def _extreme(pick_max: bool) -> Callable[[Sequence[Any], EvalContext], Any]:
    # Compared in the type of the first non-null element; a float in an int array is truncated first.
    def impl(a: Sequence[Any], ctx: EvalContext) -> Any:
        values = [v for v in _array(a[0]) if v is not None]
        if not values:
            return None
        kind = type(values[0])
        if kind is bool or kind not in (int, float, str):
            raise EvalError(f"unsupported type {go_type(values[0])}")
        best = values[0]
        for v in values[1:]:
            if kind is int:
                if type(v) is float:
                    v = int(v)
                elif type(v) is not int:
                    raise EvalError(f"requires int64 but found {go_type(v)}({go_str(v)})")
            elif kind is float:
                if type(v) not in (int, float):
                    raise EvalError(f"requires float64 but found {go_type(v)}({go_str(v)})")
                v = float(v)
            elif type(v) is not str:
                raise EvalError(f"requires string but found {go_type(v)}({go_str(v)})")
            if (v > best) if pick_max else (v < best):
                best = v
        return best

    return impl


def _sequence(a: Sequence[Any], ctx: EvalContext) -> list[int]:
    for i, v in enumerate(a):
        if type(v) is not int:
            raise EvalError(f"{_ORDINALS[i]} argument should be int")
    start, stop = a[0], a[1]
    step = a[2] if len(a) > 2 else (1 if stop >= start else -1)
    if step == 0:
        raise EvalError("invalid step: should not be zero")
    return list(range(start, stop + (1 if step > 0 else -1), step))


def _flatten(a: Sequence[Any], ctx: EvalContext) -> list[Any]:
    out: list[Any] = []
    for item in _array(a[0]):
        out.extend(item if isinstance(item, list) else [item])
    return out


def _array_map(lookup: Lookup, a: Sequence[Any], ctx: EvalContext) -> list[Any]:
    if not isinstance(a[0], str):
        raise EvalError("first argument should be string")
    items = _array(a[1], 1)
    fdef = lookup(a[0])
    if fdef is None or fdef.kind != "scalar" or fdef.impl is None:
        raise EvalError("first argument should be a scalar function.")
    if arity_error(fdef, 1):
        raise EvalError(f"validate {a[0]} arguments failed")
    impl, nulls = fdef.impl, fdef.null_passthrough
    return [None if nulls and v is None else impl([v], ctx) for v in items]


def _array_join(a: Sequence[Any], ctx: EvalContext) -> str:
    items = _array(a[0])
    for i, v in enumerate(a[1:], 1):
        if not isinstance(v, str):
            raise EvalError(f"{_ORDINALS[i]} argument should be string")
    delimiter: str = a[1]
    replacement: str | None = a[2] if len(a) > 2 else None
    parts = [text(v) if v is not None else replacement for v in items]
    return delimiter.join(p for p in parts if p is not None)


def _array_sort(a: Sequence[Any], ctx: EvalContext) -> list[Any]:
    def key(v: Any) -> tuple[int, Any]:
        if isinstance(v, int | float) and not isinstance(v, bool):
            return (0, v)
        return (1, text(v))  # numbers before strings, as eKuiper sorts mixed arrays

    return sorted(_array(a[0]), key=key)


def _set_op(name: str) -> Callable[[Sequence[Any], EvalContext], Any]:
    def impl(a: Sequence[Any], ctx: EvalContext) -> Any:
        if name == "except" and a[0] is None:
            return None
        first = _array(a[0])
        if name == "union" and a[1] is None:
            return _dedup(first)
        second = _array(a[1], 1)
        if name == "intersect":
            return _dedup(v for v in first if any(_eq(v, w) for w in second))
        if name == "union":
            return _dedup([*first, *second])
        return _dedup(v for v in first if not any(_eq(v, w) for w in second))

    return impl


def _contains_any(a: Sequence[Any], ctx: EvalContext) -> bool:
    if a[0] is None:
        return False
    first, second = _array(a[0]), _array(a[1], 1)
    return any(_eq(v, w) for v in first for w in second)


def _kv_to_obj(a: Sequence[Any], ctx: EvalContext) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for item in _array(a[0]):
        if not (isinstance(item, dict) and isinstance(item.get("key"), str) and "value" in item):
            raise EvalError("array item should be key-value pair")
        out[item["key"]] = item["value"]
    return out


def _map(value: Any, message: str = "the argument should be map[string]interface{}") -> dict[str, Any]:
    if not isinstance(value, dict):
        raise EvalError(message)
    return value


def _object(a: Sequence[Any], ctx: EvalContext) -> dict[str, Any]:
    keys, values = a[0], a[1]
    if not isinstance(keys, list):
        raise EvalError("first argument should be []string")
    if not isinstance(values, list):
        raise EvalError("second argument should be []interface{}")
    if not all(isinstance(k, str) for k in keys):
        raise EvalError("first argument should be []string")
    if len(keys) != len(values):
        raise EvalError("the length of the arguments should be same")
    return dict(zip(keys, values, strict=True))


def _zip(a: Sequence[Any], ctx: EvalContext) -> dict[str, Any]:
    pairs = a[0]
    if not isinstance(pairs, list):
        raise EvalError("each argument should be [][2]interface{}")
    out: dict[str, Any] = {}
    for pair in pairs:
        if pair is None:
            continue
        if not isinstance(pair, list) or len(pair) != 2:
            raise EvalError("each argument should be [][2]interface{}")
        if not isinstance(pair[0], str):
            raise EvalError("the first element in the list item should be string")
        out[pair[0]] = pair[1]
    return out


def _object_construct(a: Sequence[Any], ctx: EvalContext) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in zip(a[::2], a[1::2], strict=False):
        if key is None:
            continue  # pairs with a null key are skipped; null values stay (DOC≠CODE, §D.8)
        if not isinstance(key, str):
            raise EvalError(f"key {go_str(key)} is not a string")
        out[key] = value
    return out


def _key_list(args: Sequence[Any]) -> list[str]:
    keys: list[str] = []
    for arg in args:
        for k in arg if isinstance(arg, list) else [arg]:
            if isinstance(k, str):
                keys.append(k)  # non-string keys are ignored, as eKuiper does
    return keys


def _erase(a: Sequence[Any], ctx: EvalContext) -> Any:
    if len(a) != 2:
        raise EvalError(f"the argument number should be 2, got {len(a)}")
    obj = _map(a[0], "first argument should be map[string]interface{}")
    drop = set(_key_list(a[1:]))
    return {k: v for k, v in obj.items() if k not in drop}


def _object_pick(a: Sequence[Any], ctx: EvalContext) -> Any:
    if a[0] is None:
        return None
    obj = _map(a[0], "first argument should be map[string]interface{}")
    out: dict[str, Any] = {}
    for key in _key_list(a[1:]):
        *parents, leaf = key.split(".")
        source: Any = obj
        target = out
        for part in parents:
            source = source.get(part)
            if not isinstance(source, dict):
                break
            target = target.setdefault(part, {})
        else:
            if isinstance(source, dict) and leaf in source:
                target[leaf] = source[leaf]
    return out


def _object_concat(a: Sequence[Any], ctx: EvalContext) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for i, obj in enumerate(a):
        if obj is not None:
            out.update(_map(obj, f"the {i}th argument should be map[string]interface{{}}"))
    return out


def _nonnull(fn: Callable[[Sequence[Any], EvalContext], Any]) -> Callable[[Sequence[Any], EvalContext], Any]:
    def impl(a: Sequence[Any], ctx: EvalContext) -> Any:
        return None if a[0] is None else fn(a, ctx)

    return impl


def collection_defs(lookup: Lookup) -> Iterable[FunctionDef]:
    """The collection functions; ``lookup`` finds the scalar function ``array_map`` applies (the registry)."""

    def own(
        name: str, lo: int, hi: int | None, impl: Callable[[Sequence[Any], EvalContext], Any]
    ) -> FunctionDef:
        return scalar(name, lo, hi, impl, nulls=False)

    def size(a: Sequence[Any], ctx: EvalContext) -> int:
        return 0 if a[0] is None else len(_array(a[0]))

    yield own("cardinality", 1, 1, size)
    yield own("array_cardinality", 1, 1, lambda a, ctx: len([v for v in _array(a[0]) if v is not None]))
    yield own("array_create", 0, None, lambda a, ctx: [v for v in a if v is not None] or None)
    yield own("array_position", 2, 2, _position(last=False))
    yield own("array_last_position", 2, 2, _position(last=True))
    yield own("element_at", 2, 2, _nonnull(_element_at))
    yield own(
        "array_contains", 2, 2, lambda a, ctx: a[0] is not None and any(_eq(v, a[1]) for v in _array(a[0]))
    )
    yield own("array_contains_any", 2, 2, _contains_any)
    yield own("array_remove", 2, 2, _nonnull(lambda a, ctx: [v for v in _array(a[0]) if not _eq(v, a[1])]))
    yield own("array_intersect", 2, 2, _set_op("intersect"))
    yield own("array_union", 2, 2, _set_op("union"))
    yield own("array_except", 2, 2, _set_op("except"))
    yield own("array_max", 1, 1, _nonnull(_extreme(pick_max=True)))
    yield own("array_min", 1, 1, _nonnull(_extreme(pick_max=False)))
    yield own("array_distinct", 1, 1, _nonnull(lambda a, ctx: _dedup(_array(a[0]))))
    yield own("array_flatten", 1, 1, _nonnull(_flatten))
    yield own("array_shuffle", 1, 1, _nonnull(lambda a, ctx: random.sample(_array(a[0]), len(a[0]))))
    yield own("array_sort", 1, 1, _nonnull(_array_sort))
    yield own(
        "array_concat",
        1,
        None,
        lambda a, ctx: [v for i, arr in enumerate(a) if arr is not None for v in _array(arr, min(i, 2))],
    )
    yield own("array_join", 2, 3, _nonnull(_array_join))
    yield own("array_map", 2, 2, functools.partial(_array_map, lookup))
    yield own("repeat", 2, 2, lambda a, ctx: [a[0]] * _repeat_count(a[1]))
    yield own("sequence", 2, 3, _sequence)
    yield own("kvpair_array_to_obj", 1, 1, _nonnull(_kv_to_obj))
    yield own(
        "obj_to_kvpair_array",
        1,
        1,
        _nonnull(lambda a, ctx: [{"key": k, "value": v} for k, v in _map(a[0]).items()]),
    )
    yield own("keys", 1, 1, _nonnull(lambda a, ctx: list(_map(a[0]))))
    yield own("values", 1, 1, _nonnull(lambda a, ctx: list(_map(a[0]).values())))
    yield own(
        "items",
        1,
        1,
        _nonnull(
            lambda a, ctx: [
                [k, v] for k, v in _map(a[0], "first argument should be map[string]interface{}").items()
            ]
        ),
    )
    yield own("object", 2, 2, _object)
    yield own("zip", 1, 1, _zip)
    yield own("object_construct", 0, None, _object_construct)
    yield own("object_concat", 1, None, _object_concat)
    yield own("object_pick", 2, None, _object_pick)
    yield own("erase", 2, None, _nonnull(_erase))
    yield own("object_size", 1, 1, lambda a, ctx: 0 if a[0] is None else len(_map(a[0])))


def _repeat_count(value: Any) -> int:
    if type(value) is not int:
        raise EvalError("second argument should be int")
    return max(value, 0)
