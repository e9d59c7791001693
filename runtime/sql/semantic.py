"""Semantic passes over a parsed SELECT: resolving ``a.b`` names and eKuiper's parse-time function checks.

Run by the parser right after a SELECT is built, so every ``Select`` handed out is resolved and checked.
"""

from __future__ import annotations

from collections.abc import Callable

import attrs

from runtime.errors import SqlError
from runtime.sql import functions
from runtime.sql.ast import (
    BinaryOp,
    Call,
    Case,
    Expr,
    FieldRef,
    Literal,
    NestedRef,
    Select,
    SourceRef,
    Wildcard,
    map_expr,
    select_exprs,
    walk,
)


def check_select(select: Select) -> Select:
    """Resolve names, then check every function call; returns the resolved SELECT.

    Raises:
      SqlError: unknown function, wrong arity, a function in a clause where eKuiper forbids it, a
        non-boolean CASE WHEN, or ``x.*`` naming an unknown source.
    """
    resolved = _resolve_names(select)
    _check_calls(resolved)
    return resolved


def _call_error(call: Call, message: str) -> SqlError:
    return SqlError(message, call.line, call.column)


def _check_calls(select: Select) -> None:
    """Function existence, arity and placement rules eKuiper applies at parse time."""
    srf_in_select = 0
    for clause, top in select_exprs(select):
        for node in walk(top):
            if not isinstance(node, Call):
                continue
            fdef = functions.lookup(node.name)
            if fdef is None:
                raise _call_error(node, f"function {node.name} not found")
            message = functions.arity_error(fdef, len(node.args)) or (
                fdef.check(node) if fdef.check else None
            )
            if message:
                raise _call_error(node, message)
            if node.filter is not None and fdef.kind != "window":
                raise _call_error(node, 'found "FILTER", expected FROM.')
            if node.over is not None and fdef.kind not in ("analytic", "window", "window_func"):
                raise _call_error(node, f"Found OVER after non analytic function {node.name}")
            if clause != "select" and fdef.kind == "srf":
                raise _call_error(node, "select statement shouldn't has srf except fields")
            if clause != "select" and fdef.kind == "window_func":
                raise _call_error(node, "window functions can only be in select fields")
            if clause != "select" and fdef.kind == "multi":
                raise _call_error(node, f"function {node.name} can only be used inside the select clause")
            if clause == "group" and fdef.kind == "aggregate":
                raise _call_error(node, "Not allowed to call aggregate functions in GROUP BY clause.")
            if fdef.kind == "srf":
                if node is not top:
                    raise _call_error(node, "select clause shouldn't has nested set-returning-functions")
                srf_in_select += 1
                if srf_in_select > 1:
                    raise _call_error(node, "select clause shouldn't has multi set-returning-functions")
        if isinstance(top, Case):
            _check_case(top)


def _check_case(case: Case) -> None:
    if case.value is None:
        for cond, _ in case.whens:
            if (isinstance(cond, Literal) and not isinstance(cond.value, bool)) or (
                isinstance(cond, BinaryOp) and cond.op in "+-*/%&|^"
            ):
                raise SqlError("invalid CASE expression, WHEN expression must be a bool condition")


def _resolve_names(select: Select) -> Select:
    """``a.b`` parses as column b of source a; when a is not a FROM/JOIN name or alias it means ``a->b``."""
    known = {name for src in select.sources for name in (src.name, src.alias) if name}

    def fix(expr: Expr) -> Expr:
        if isinstance(expr, FieldRef) and expr.stream is not None and expr.stream not in known:
            return NestedRef(FieldRef(None, expr.stream), expr.name)
        if isinstance(expr, Wildcard) and expr.stream is not None and expr.stream not in known:
            raise SqlError(f"unknown stream {expr.stream} in {expr.stream}.*")
        return expr

    resolved: Select = map_expr_select(select, fix)
    return resolved


def map_expr_select(select: Select, fn: Callable[[Expr], Expr]) -> Select:
    """Apply ``map_expr`` to every expression of every clause."""
    return attrs.evolve(
        select,
        fields=map_expr(select.fields, fn),
        joins=tuple(attrs.evolve(j, on=map_expr(j.on, fn)) for j in select.joins),
        where=map_expr(select.where, fn),
        group_by=map_expr(select.group_by, fn),
        having=map_expr(select.having, fn),
        order_by=tuple(attrs.evolve(o, expr=map_expr(o.expr, fn)) for o in select.order_by),
    )


def fields_read(select: Select, source: SourceRef) -> frozenset[str] | None:
    """The names of ``source``'s columns the statement reads; None when it reads them all (a ``*``).

    What eKuiper prunes a stream's schema to (so STRICT_VALIDATION checks only these): every column reference
    unqualified or qualified by the source's name or alias, in any clause; ``meta(...)``/``mqtt(...)``
    arguments name metadata, not columns. A ``*`` anywhere (``SELECT *``, ``count(*)``) keeps every column.
    """
    names = {source.name, source.ref_name}
    nodes = list(walk(tuple(expr for _, expr in select_exprs(select))))
    metadata = {
        id(arg) for node in nodes if isinstance(node, Call) and node.name in _META for arg in node.args
    }
    read: set[str] = set()
    for node in nodes:
        if isinstance(node, Wildcard) and (node.stream is None or node.stream in names):
            return None
        if (
            isinstance(node, FieldRef)
            and (node.stream is None or node.stream in names)
            and id(node) not in metadata
        ):
            read.add(node.name)
    return frozenset(read)


_META = frozenset({"meta", "mqtt"})
