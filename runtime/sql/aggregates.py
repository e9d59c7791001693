"""Aggregate functions (eKuiper docs sqls/functions/aggregate_functions.md): compiled closures over the rows
of one group.

The window query computes every aggregate call of a query once per group (``compile_aggregate``) and hands
the values to SELECT/HAVING/ORDER BY as synthetic columns, so per-row expression compilation never sees an
aggregate. An aggregate evaluates its first argument over every row of the group and folds the values; extra
arguments (``deduplicate``'s ``all``, ``percentile_*``'s ``p``) are evaluated once, on the group's first row.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Callable, Mapping, Sequence
from types import MappingProxyType
from typing import Any

from runtime.model import Row
from runtime.sql.ast import Call, FieldRef, Wildcard
from runtime.sql.expr import EvalContext, EvalError, Fn, RefResolver, compile_expr
from runtime.sql.values import typed

GroupFn = Callable[[list[Row], EvalContext], Any]
"""A compiled aggregate: (the group's rows, context) -> value."""

Fold = Callable[[list[Any], list[Any], list[Row]], Any]
"""(values of the first argument per row, the other arguments, the group's rows) -> result."""


def _numbers(values: list[Any], name: str) -> list[int | float]:
    out: list[int | float] = []
    for v in values:
        if v is None:
            continue
        if isinstance(v, bool) or not isinstance(v, int | float):
            raise EvalError(f"call func {name} error: requires number but found {typed(v)}")
        out.append(v)
    return out


def _count(values: list[Any], extra: list[Any], rows: list[Row]) -> int:
    return sum(1 for v in values if v is not None)


def _sum(values: list[Any], extra: list[Any], rows: list[Row]) -> Any:
    nums = _numbers(values, "sum")
    if not nums:
        return None
    if type(nums[0]) is int:
        return sum(int(v) for v in nums)
    return float(sum(nums))


def _avg(values: list[Any], extra: list[Any], rows: list[Row]) -> Any:
    nums = _numbers(values, "avg")
    if not nums:
        return None
    if all(type(v) is int for v in nums):
        total = sum(int(v) for v in nums)
        return int(total / len(nums))  # Go integer division truncates toward zero
    return float(sum(nums)) / len(nums)


def _extreme(pick: Callable[[Any, Any], bool]) -> Fold:
    def fold(values: list[Any], extra: list[Any], rows: list[Row]) -> Any:
        best: Any = None
        for v in values:
            if v is None:
                continue
            if best is None:
                best = v
                continue
            if isinstance(v, str) != isinstance(best, str):
                raise EvalError(f"incompatible types for comparison: {typed(best)} and {typed(v)}")
            if pick(v, best):
                best = v
        return best

    return fold


def _collect(values: list[Any], extra: list[Any], rows: list[Row]) -> list[Any]:
    return list(values)


def _merge_agg(values: list[Any], extra: list[Any], rows: list[Row]) -> Any:
    merged: Row = {}
    found = False
    for v in values:
        if isinstance(v, dict):
            merged.update(v)
            found = True
    return merged if found else None


def _deduplicate(values: list[Any], extra: list[Any], rows: list[Row]) -> Any:
    if extra and extra[0] is True:
        seen: list[Any] = []
        out: list[Row] = []
        for v, row in zip(values, rows, strict=True):
            if v not in seen:
                seen.append(v)
                out.append(row)
        return out
    if not values:
        return None
    newest = values[-1]
    return None if newest in values[:-1] else rows[-1]


def _last_value(values: list[Any], extra: list[Any], rows: list[Row]) -> Any:
    ignore_null = bool(extra and extra[0] is True)
    for v in reversed(values):
        if v is not None or not ignore_null:
            return v
    return None


def _median(values: list[Any], extra: list[Any], rows: list[Row]) -> Any:
    nums = _numbers(values, "median")
    return float(statistics.median(nums)) if nums else None


def _spread(sample: bool, root: bool) -> Fold:
    def fold(values: list[Any], extra: list[Any], rows: list[Row]) -> Any:
        nums = _numbers(values, "stddev")
        if len(nums) < (2 if sample else 1):
            return None if not nums else 0.0
        var = statistics.variance(nums) if sample else statistics.pvariance(nums)
        return math.sqrt(var) if root else float(var)

    return fold


def _percentile(continuous: bool) -> Fold:
    def fold(values: list[Any], extra: list[Any], rows: list[Row]) -> Any:
        nums = sorted(_numbers(values, "percentile"))
        p = extra[0] if extra else None
        if not nums or not isinstance(p, int | float) or not 0 <= p <= 1:
            return None
        if not continuous:
            index = max(math.ceil(p * len(nums)) - 1, 0)
            return nums[index]
        pos = p * (len(nums) - 1)
        lo = math.floor(pos)
        hi = min(lo + 1, len(nums) - 1)
        return float(nums[lo] + (nums[hi] - nums[lo]) * (pos - lo))

    return fold


FOLDS: Mapping[str, Fold] = MappingProxyType(
    {
        "count": _count,
        "sum": _sum,
        "avg": _avg,
        "max": _extreme(lambda a, b: a > b),
        "min": _extreme(lambda a, b: a < b),
        "collect": _collect,
        "merge_agg": _merge_agg,
        "deduplicate": _deduplicate,
        "last_value": _last_value,
        "median": _median,
        "stddev": _spread(sample=False, root=True),
        "stddevs": _spread(sample=True, root=True),
        "var": _spread(sample=False, root=False),
        "vars": _spread(sample=True, root=False),
        "percentile_cont": _percentile(continuous=True),
        "percentile_disc": _percentile(continuous=False),
    }
)


def is_aggregate(name: str) -> bool:
    return name in FOLDS


def compile_aggregate(call: Call, resolve: RefResolver | None = None) -> GroupFn:
    """Compile an aggregate call into ``fn(group_rows, ctx) -> value``.

    Args:
      resolve: inlines SELECT aliases in the arguments (``last_value(et, true)`` with ``event_time() AS et``).

    Raises at evaluation:
      EvalError: a value has the wrong type (``call func sum error: ...``).
    """
    fold = FOLDS[call.name]
    if not call.args:
        return lambda rows, ctx: None
    first = compile_expr(call.args[0], resolve=resolve)
    star = isinstance(call.args[0], Wildcard)
    # An argument that is more than a column may read the row's event time (event_time(), an alias of it).
    per_row_ts = not isinstance(call.args[0], Wildcard | FieldRef) or (
        resolve is not None and isinstance(call.args[0], FieldRef) and resolve(call.args[0]) is not None
    )
    extras: Sequence[Fn] = [compile_expr(arg, resolve=resolve) for arg in call.args[1:]]
    name = call.name

    def aggregate(group: list[Row], ctx: EvalContext) -> Any:
        if star:
            values = list(group)
        elif per_row_ts and ctx.group_ts is not None:
            group_ts, saved = ctx.group_ts, ctx.ts
            values = []
            try:
                for r, ts in zip(group, group_ts, strict=True):
                    ctx.ts = ts
                    values.append(first(r, ctx))
            finally:
                ctx.ts = saved
        else:
            values = [first(r, ctx) for r in group]
        extra = [fn(group[0] if group else {}, ctx) for fn in extras]
        try:
            return fold(values, extra, group)
        except (TypeError, ValueError, statistics.StatisticsError) as exc:
            raise EvalError(f"call func {name} error: {exc}") from None

    return aggregate
