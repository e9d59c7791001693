"""What a window query does with one pane: WHERE (when not pushed below the window), GROUP BY dimensions and
aggregates, HAVING, ORDER BY, projection and LIMIT (eKuiper docs sqls/query_language_elements.md), as plain
calls — no trio.

``compile_window_query`` compiles the clauses once; ``WindowQuery.evaluate`` turns a ``Pane`` into the rows of
one emission, an ``ErrorItem`` (``run Where/Having/Select/Order By error: ...``), or None when a filtering clause
removed everything (C.6: such operators forward nothing, while a bare window forwards its empty content).
"""

from __future__ import annotations

import functools
from collections.abc import Mapping
from types import MappingProxyType
from typing import Any, final

import attrs

from runtime.model import ErrorItem, Event, Row
from runtime.ops.project import FilterProject, compile_filter_project, output_key, unnest_rows
from runtime.ops.window import Pane
from runtime.sql.aggregates import GroupFn, compile_aggregate, is_aggregate
from runtime.sql.ast import (
    Call,
    Expr,
    FieldRef,
    Select,
    Wildcard,
    map_expr,
    select_exprs,
    walk,
)
from runtime.sql.expr import EvalContext, EvalError, Fn, compile_expr
from runtime.sql.functions import lookup
from runtime.sql.functions.hits import (
    AGG_HIT_FUNCTIONS,
    HIT_FUNCTIONS,
    calls_any,
    record_agg_hit,
    recording_hits,
)

ROW_NUMBER = "$$row_number"  # synthetic column of row_number(): the row's 1-based position after HAVING
_TYPE_NAMES: Mapping[type, str] = MappingProxyType({bool: "bool", int: "int", float: "float", str: "string"})


def has_aggregate(exprs: list[Expr]) -> bool:
    """Whether any expression calls an aggregate function (which makes the query one row per group)."""
    for expr in exprs:
        for node in walk(expr):
            if isinstance(node, Call):
                fdef = lookup(node.name)
                if fdef is not None and fdef.kind == "aggregate":
                    return True
    return False


@final
class WindowQuery:
    """The post-window clauses of one query. Build with ``compile_window_query``."""

    def __init__(
        self,
        *,
        where: Fn | None,
        dims: list[Fn],
        aggregate: bool,
        aggregates: list[tuple[str, GroupFn]],
        row_number: bool,
        having: Fn | None,
        order: list[tuple[Fn, bool]],
        limit: int | None,
        project: FilterProject,
        agg_hits: bool = False,
        pane_having: bool = False,
    ) -> None:
        self._where = where
        self._agg_hits = agg_hits  # the query reads last_agg_hit_*(): each group passing HAVING is a hit
        self._dims = dims
        self._aggregate = aggregate or bool(dims)
        # eKuiper's HAVING over an ungrouped window: aggregates there (but not in SELECT) judge the whole
        # pane, and a passing pane keeps all its rows (TestWindowRule3: HAVING last_agg_hit_count() < 7).
        self._pane_having = pane_having and not self._aggregate and having is not None
        self._aggregates = aggregates  # (synthetic column, compiled call), computed once per group
        self._row_number = row_number
        self._synthetic = [name for name, _ in aggregates] + ([ROW_NUMBER] if row_number else [])
        self._having = having
        self._order = order
        self._limit = limit
        self._project = project
        self.stopped_at = ""  # the clause that ended the last evaluate() early (error or nothing left), or ""

    @property
    def project(self) -> FilterProject:
        return self._project

    def evaluate(self, pane: Pane, ctx: EvalContext) -> list[Row] | ErrorItem | None:
        """The emission for ``pane``; ``ctx`` gets the window bounds, group and per-row time and meta."""
        ctx.window_start, ctx.window_end = pane.start, pane.end
        ctx.group = None
        self.stopped_at = "filter"
        events = pane.events
        if self._where is not None:
            kept: list[Event] = []
            for event in events:
                ctx.ts, ctx.meta = event.ts, event.meta
                try:
                    if self._where(event.data, ctx) is True:
                        kept.append(event)
                except EvalError as exc:
                    return ErrorItem(f"run Where error: {exc.message}")
            if not kept:
                return None
            events = kept
        self.stopped_at = "project"
        results: list[tuple[list[Any], Row]] = []
        having, group_hits = self._having, self._agg_hits
        try:
            if self._pane_having and having is not None and events:
                try:
                    passed = having(self._bind(events, pane, ctx, aggregate=True), ctx)
                except EvalError as exc:
                    self.stopped_at = "having"
                    return ErrorItem(f"run Having error: {exc.message}")
                if passed is not True:
                    self.stopped_at = "having"
                    return None
                having, group_hits = None, False
            for group in self._groups(events):
                row = self._bind(group, pane, ctx)
                if having is not None:
                    try:
                        passed = having(row, ctx)
                    except EvalError as exc:
                        self.stopped_at = "having"
                        return ErrorItem(f"run Having error: {exc.message}")
                    if passed is not True:
                        continue
                if self._row_number:
                    row = {**row, ROW_NUMBER: len(results) + 1}
                keys = [fn(row, ctx) for fn, _ in self._order]
                out = self._project.apply(row, ctx)
                if out is not None:
                    if group_hits:
                        record_agg_hit(ctx)  # after SELECT: it reads the state before this hit
                    for name in self._synthetic:
                        out.pop(name, None)  # SELECT * must not show the synthetic columns
                    if self._project.srf_key is None:
                        results.append((keys, out))
                    else:
                        results.extend((keys, r) for r in unnest_rows(out, self._project.srf_key))
        except EvalError as exc:
            return ErrorItem(exc.message)
        finally:
            ctx.group = ctx.group_ts = None
        if self._agg_hits and not group_hits:
            ctx.ts = pane.end
            record_agg_hit(ctx)  # the pane passed HAVING as a whole: one hit, after SELECT read the state
        if self._having is not None and not results:
            self.stopped_at = "having"
            return None
        if self._order:
            try:
                results.sort(key=functools.cmp_to_key(self._compare))
            except EvalError as exc:
                self.stopped_at = "order"
                return ErrorItem(f"run Order By error: {exc.message}")
        rows = [out for _, out in results]
        self.stopped_at = ""
        return rows[: self._limit] if self._limit is not None else rows

    def _groups(self, events: list[Event]) -> list[list[Event]]:
        if not self._aggregate:
            return [[event] for event in events]  # non-aggregate: one output row per input row
        if not self._dims:
            return [events] if events else []
        groups: dict[tuple[Any, ...], list[Event]] = {}
        ctx = EvalContext()
        for event in events:
            ctx.ts, ctx.meta = event.ts, event.meta
            key = tuple(_hashable(fn(event.data, ctx)) for fn in self._dims)
            groups.setdefault(key, []).append(event)
        return list(groups.values())

    def _bind(self, group: list[Event], pane: Pane, ctx: EvalContext, *, aggregate: bool = False) -> Row:
        first = group[0]
        ctx.meta = first.meta
        if not (aggregate or self._aggregate):
            ctx.group = None
            ctx.ts = first.ts
            return first.data
        rows = [event.data for event in group]
        ctx.group = rows
        ctx.group_ts = [event.ts for event in group]
        ctx.ts = pane.end  # event_time() of an aggregate row is the window's trigger time (§C.5)
        if not self._aggregates:
            return first.data
        # Non-aggregated columns take the first row's values; aggregates are its synthetic columns.
        row = dict(first.data)
        for name, fn in self._aggregates:
            row[name] = fn(rows, ctx)
        return row

    def _compare(self, a: tuple[list[Any], Row], b: tuple[list[Any], Row]) -> int:
        for (_, descending), x, y in zip(self._order, a[0], b[0], strict=True):
            c = _cmp(x, y)
            if c:
                return -c if descending and x is not None and y is not None else c
        return 0


def _cmp(x: Any, y: Any) -> int:
    if x is None or y is None:
        return (x is None) - (y is None)  # nulls last
    numeric = (int, float)
    if (
        isinstance(x, numeric)
        and isinstance(y, numeric)
        and not isinstance(x, bool)
        and not isinstance(y, bool)
    ):
        return (x > y) - (x < y)
    if type(x) is not type(y) or not isinstance(x, str | bool):
        names = sorted(
            (_TYPE_NAMES.get(type(x), type(x).__name__), _TYPE_NAMES.get(type(y), type(y).__name__))
        )
        raise EvalError(f"incompatible types for comparison: {names[0]} and {names[1]}")
    return int(x > y) - int(x < y)


def _hashable(value: Any) -> Any:
    if isinstance(value, dict | list):
        return repr(value)
    return (type(value).__name__, value)  # 1 and 1.0 and True stay distinct group keys


def compile_window_query(
    select: Select, *, where_after_window: bool, send_nil_field: bool = False
) -> WindowQuery:
    """Compile the clauses of a window query; the window call itself is already removed from GROUP BY.

    Args:
      select: the query with only the dimensions left in ``group_by``.
      where_after_window: WHERE runs on the pane (count and sliding windows) instead of per event before it.

    Raises:
      PlanError, SqlError: an expression cannot be compiled.
    """
    aggregate = has_aggregate([f.expr for f in select.fields])
    pane_having = select.having is not None and has_aggregate([select.having])
    row_number = any(isinstance(e, Call) and e.name == "row_number" for e in walk(select.fields))
    agg_hits = calls_any((e for _, e in select_exprs(select)), AGG_HIT_FUNCTIONS)
    where_hits = reads_hits(select.where, select)
    select, aggregates = _lift_aggregates(select)
    aliases = {f.alias: f.expr for f in select.fields if f.alias and not isinstance(f.expr, Wildcard)}

    def resolve(ref: FieldRef) -> Fn | None:
        expr = aliases.get(ref.name)
        return compile_expr(expr) if expr is not None else None

    where = None
    if where_after_window and select.where is not None:
        where = compile_expr(select.where, resolve=resolve)
        if where_hits:
            where = recording_hits(where)
    bare = attrs.evolve(select, where=None, group_by=(), having=None, order_by=(), limit=None)
    return WindowQuery(
        where=where,
        dims=[compile_expr(e) for e in select.group_by],
        aggregate=aggregate,
        aggregates=aggregates,
        row_number=row_number,
        having=compile_expr(select.having, resolve=resolve) if select.having is not None else None,
        order=[(compile_expr(o.expr, resolve=resolve), o.descending) for o in select.order_by],
        limit=select.limit,
        # A WHERE reading last_hit_*() records the hits itself; otherwise each output row is one.
        project=compile_filter_project(bare, send_nil_field=send_nil_field, record_hits=not where_hits),
        agg_hits=agg_hits,
        pane_having=pane_having,
    )


def reads_hits(expr: Expr | None, select: Select) -> bool:
    """Whether ``expr`` calls ``last_hit_*()``, also through a SELECT alias (``WHERE lc < 2``)."""
    if expr is None:
        return False
    aliases = {f.alias: f.expr for f in select.fields if f.alias and not isinstance(f.expr, Wildcard)}
    used = [aliases[n.name] for n in walk(expr) if isinstance(n, FieldRef) and n.name in aliases]
    return calls_any([expr, *used], HIT_FUNCTIONS)


def _lift_aggregates(select: Select) -> tuple[Select, list[tuple[str, GroupFn]]]:
    """Replace each distinct aggregate call in SELECT, HAVING and ORDER BY by a synthetic column.

    A field whose output key came from the call (``count(*)`` -> ``count``) gets that key as its alias, so
    the rewrite does not change what the sink sees.
    """
    slots: dict[Call, str] = {}
    # Aggregate arguments may name SELECT aliases of per-row expressions (``last_value(et, true)``).
    plain = {
        f.alias: f.expr
        for f in select.fields
        if f.alias and not isinstance(f.expr, Wildcard) and not has_aggregate([f.expr])
    }

    def resolve(ref: FieldRef) -> Fn | None:
        expr = plain.get(ref.name)
        return compile_expr(expr) if expr is not None else None

    def lift(expr: Expr) -> Expr:
        if isinstance(expr, Call) and expr.name == "row_number":
            return FieldRef(None, ROW_NUMBER)
        if isinstance(expr, Call) and is_aggregate(expr.name):
            return FieldRef(None, slots.setdefault(expr, f"$$agg_{len(slots)}"))
        return expr

    fields = []
    unnamed = 0
    for field in select.fields:
        key = output_key(field, unnamed)
        if key is None and not isinstance(field.expr, Wildcard):
            unnamed += 1
        new = map_expr(field, lift)
        if new != field and not field.alias and key is not None:
            new = attrs.evolve(new, alias=key)
        fields.append(new)
    having = map_expr(select.having, lift) if select.having is not None else None
    order = tuple(attrs.evolve(item, expr=map_expr(item.expr, lift)) for item in select.order_by)
    lifted = attrs.evolve(select, fields=tuple(fields), having=having, order_by=order)
    return lifted, [(name, compile_aggregate(call, resolve)) for call, name in slots.items()]
