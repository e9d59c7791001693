"""The fused WHERE + SELECT operator of a non-window rule: one plain call per row, no trio.

``compile_filter_project`` compiles the query once; ``FilterProject.apply`` filters and projects a row into
a new dict (input rows are shared between rules and never mutated). Output keys follow eKuiper docs
sqls/query_language_elements.md
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Final, TypeGuard, final

from runtime.errors import PlanError, SqlError
from runtime.model import Row
from runtime.sql import functions
from runtime.sql.ast import (
    Call,
    Expr,
    FieldRef,
    Index,
    NestedRef,
    Select,
    SelectField,
    Slice,
    Wildcard,
    select_exprs,
    walk,
)
from runtime.sql.expr import CallHook, EvalContext, EvalError, Fn, RefResolver, compile_expr, expr_text
from runtime.sql.functions.hits import HIT_FUNCTIONS, calls_any, record_hit
from runtime.sql.wildcard import wildcard_emit

_Emit = Callable[[Row, EvalContext, Row], None]
_PENDING: Final = object()  # an analytic slot not computed yet for this event


def _is_analytic(node: object) -> TypeGuard[Call]:
    if not isinstance(node, Call):
        return False
    fdef = functions.lookup(node.name)
    return fdef is not None and fdef.kind == "analytic"


@final
class FilterProject:
    """WHERE then SELECT for one row. Build with ``compile_filter_project``.

    ``apply(row, ctx)`` filters and projects ``row``: it returns the projected row (a new dict; ``{}`` when
    every selected value is null), or None when WHERE rejects the row, and raises EvalError
    (``run Where error: ...`` or ``run Select error: ...``; the row becomes an error row). A query of plain
    fields (no analytic functions, ``*``, ``changed_cols`` or hits) gets a loop with the fields inlined.
    """

    __slots__ = ("_analytic", "_emits", "_where", "apply", "output_keys", "srf_key")

    apply: Callable[[Row, EvalContext], Row | None]

    def __init__(
        self,
        where: Fn | None,
        emits: list[_Emit],
        output_keys: tuple[str, ...],
        analytic: tuple[Fn, ...] = (),
        *,
        hits: bool = False,
        srf_key: str | None = None,
        fields: tuple[tuple[str, Fn, str], ...] | None = None,
        send_nil: bool = False,
    ) -> None:
        self._analytic = analytic
        if hits:
            # The query reads last_hit_*(): every row passing WHERE is a hit, recorded after SELECT (the
            # fields read the state before this hit). A last emit, so rows without hits pay nothing.
            emits = [*emits, _record_hit]
        self.srf_key = srf_key  # the key holding unnest()'s array, expanded by ``unnest_rows``
        self._where = where
        self._emits = emits
        self.output_keys = output_keys  # named keys in field order ("*" stands for the merged row)
        # ``fields`` (key, compiled expression, error label) describes ``emits`` when they are all plain fields.
        plain = fields is not None and not analytic and not hits
        self.apply = _plain_apply(where, fields, send_nil) if plain and fields is not None else self._apply

    def _apply(self, row: Row, ctx: EvalContext) -> Row | None:
        """``apply`` in general (analytic functions, ``*``, spread columns, hits)."""
        if self._analytic:
            # Analytic functions see every event, before WHERE decides (§D.7); fields read the results.
            ctx.analytic = [_PENDING] * len(self._analytic)
            try:
                for read in self._analytic:
                    read(row, ctx)
            except EvalError as exc:
                raise EvalError(f"run Select error: {exc.message}") from None
        where = self._where
        if where is not None:
            try:
                passed = where(row, ctx)
            except EvalError as exc:
                raise EvalError(f"run Where error: {exc.message}") from None
            if passed is not True:
                return None
        out: Row = {}
        for emit in self._emits:
            emit(row, ctx, out)
        return out

    def __repr__(self) -> str:
        return f"<FilterProject where={self._where is not None} keys={list(self.output_keys)}>"


def _plain_apply(
    where: Fn | None, fields: tuple[tuple[str, Fn, str], ...], send_nil: bool
) -> Callable[[Row, EvalContext], Row | None]:
    """``FilterProject._apply`` for plain fields, with ``_field_emit``'s work inlined (same results, errors)."""

    def apply(row: Row, ctx: EvalContext) -> Row | None:
        if where is not None:
            try:
                passed = where(row, ctx)
            except EvalError as exc:
                raise EvalError(f"run Where error: {exc.message}") from None
            if passed is not True:
                return None
        out: Row = {}
        for key, fn, label in fields:
            try:
                value = fn(row, ctx)
            except EvalError as exc:
                raise EvalError(f"run Select error: {label}meet error, err:{exc.message}") from None
            if value is not None or send_nil:
                out[key] = value
        return out

    return apply


def _record_hit(row: Row, ctx: EvalContext, out: Row) -> None:
    record_hit(ctx)


def output_key(field: SelectField, unnamed_index: int) -> str | None:
    """The key a field is emitted under (§C.2), or None when it is ``kuiper_field_<n>`` material."""
    if field.alias:
        return field.alias
    expr: Expr = field.expr
    while isinstance(expr, Index | Slice):
        expr = expr.base  # children[0] => children
    if isinstance(expr, FieldRef):
        return expr.name
    if isinstance(expr, NestedRef):
        return expr.key
    if isinstance(expr, Call):
        return expr.name
    return None


def compile_filter_project(
    select: Select, *, send_nil_field: bool = False, record_hits: bool = True
) -> FilterProject:
    """Compile a non-window SELECT's WHERE and fields into one ``FilterProject``.

    Aliases may be referenced by other fields (in any order) and by WHERE; a reference compiles the
    aliased expression in place, so its value is computed again rather than looked up (pure functions
    give the same result; ``rand()``/``newuuid()`` behind an alias would be drawn twice). Inside its own
    definition a name that equals its alias means the column (``size + 1 AS size``).

    When the query reads ``last_hit_*()`` and ``record_hits`` is true, each row passing WHERE is a hit,
    recorded after the row is projected (window queries pass False when their WHERE records the hits).

    Raises:
      SqlError: cyclic aliases (``select fields have cycled alias``).
      PlanError: the query needs an operator this one is not (GROUP BY, windows, aggregates, joins...).
    """
    if select.group_by or select.having is not None or select.order_by or select.limit is not None:
        raise PlanError("GROUP BY, HAVING, ORDER BY and LIMIT are not supported yet")
    aliases = {f.alias: f.expr for f in select.fields if f.alias and not isinstance(f.expr, Wildcard)}
    default_stream = select.sources[0].ref_name if select.sources else "$$default"

    def resolver(chain: tuple[str, ...]) -> RefResolver:
        def resolve(ref: FieldRef) -> Fn | None:
            name = ref.name
            if name not in aliases or (chain and chain[-1] == name):
                return None  # a column (also: an alias's own name inside its definition)
            if name in chain:
                raise SqlError("select fields have cycled alias")
            return compile_expr(aliases[name], resolve=resolver((*chain, name)), calls=read_slot)

        return resolve

    # Each distinct analytic call is compiled once into a step run for every event before WHERE (§D.7);
    # its uses read the step's slot. Slots fill lazily, so a step may read another (lag(b) where b is an
    # alias over lag(size)) whatever their order in the SELECT.
    slots: dict[Call, tuple[int, str | None]] = {}
    for field in select.fields:
        for node in walk(field.expr):
            if _is_analytic(node):
                slots.setdefault(node, (len(slots), field.alias))
    for clause, top in select_exprs(select):
        if clause != "select":
            for node in walk(top):
                if _is_analytic(node):
                    slots.setdefault(node, (len(slots), None))
    steps: list[Fn] = []

    def read_slot(call: Call) -> Fn | None:
        slot = slots.get(call)
        if slot is None:
            return None
        index = slot[0]

        def read(row: Row, ctx: EvalContext) -> Any:
            value = ctx.analytic[index]
            if value is _PENDING:
                value = ctx.analytic[index] = steps[index](row, ctx)
            return value

        return read

    def step_for(call: Call, alias: str | None) -> Fn:
        # Inside ``lag(a) AS a`` the name a is the column, as in any alias definition.
        chain = (alias,) if alias else ()
        return compile_expr(
            call, resolve=resolver(chain), calls=lambda c: None if c == call else read_slot(c)
        )

    steps.extend(step_for(call, alias) for call, (_, alias) in slots.items())
    analytic = tuple(fn for call in slots if (fn := read_slot(call)) is not None)

    where = (
        compile_expr(select.where, resolve=resolver(()), calls=read_slot)
        if select.where is not None
        else None
    )
    emits: list[_Emit] = []
    keys: list[str] = []
    fields: list[tuple[str, Fn, str]] | None = []  # while every emit is a plain field
    unnamed = 0
    srf_key: str | None = None
    for field in select.fields:
        if isinstance(field.expr, Wildcard):
            emits.append(_wildcard_emit(field.expr, send_nil_field, resolver, read_slot))
            keys.append("*")
            fields = None
            continue
        key = output_key(field, unnamed)
        if key is None:
            key = f"kuiper_field_{unnamed}"
            unnamed += 1
        fn = compile_expr(
            field.expr, resolve=resolver((field.alias,) if field.alias else ()), calls=read_slot
        )
        label = (
            f"alias: {field.alias} " if field.alias else ""
        ) + f"expr: {expr_text(field.expr, default_stream)} "
        kind = _call_kind(field.expr)
        if kind == "srf":
            srf_key = key
        if field.invisible:
            continue
        if kind == "multi":
            emits.append(_spread_emit(fn, label))  # changed_cols(): its columns go into the row
            keys.append("*")
            fields = None
        else:
            emits.append(_field_emit(key, fn, label, send_nil_field))
            keys.append(key)
            if fields is not None:
                fields.append((key, fn, label))
    hits = record_hits and calls_any((e for _, e in select_exprs(select)), HIT_FUNCTIONS)
    return FilterProject(
        where,
        emits,
        tuple(keys),
        analytic,
        hits=hits,
        srf_key=srf_key,
        fields=tuple(fields) if fields is not None else None,
        send_nil=send_nil_field,
    )


def _call_kind(expr: Expr) -> str | None:
    if not isinstance(expr, Call):
        return None
    fdef = functions.lookup(expr.name)
    return fdef.kind if fdef is not None else None


def unnest_rows(row: Row, key: str) -> list[Row]:
    """The rows of the set-returning ``unnest()`` held under ``key`` (§C.4): one per array element.

    An object element spreads its keys into the row (replacing same-named columns and the unnest column);
    any other element becomes the value of ``key``. The other columns are copied into every row.

    Raises:
      EvalError: the value is not an array (eKuiper's ``projectset`` messages).
    """
    if key not in row:
        raise EvalError("can't find the result from the unnest function")
    values = row[key]
    if not isinstance(values, list):
        raise EvalError("the argument for the unnest function should be array")
    rest = {k: v for k, v in row.items() if k != key}
    out: list[Row] = []
    for value in values:
        if isinstance(value, dict):
            out.append({**rest, **value})
        else:
            out.append({**rest, key: value})
    return out


def _spread_emit(fn: Fn, label: str) -> _Emit:
    def emit(row: Row, ctx: EvalContext, out: Row) -> None:
        try:
            value = fn(row, ctx)
        except EvalError as exc:
            raise EvalError(f"run Select error: {label}meet error, err:{exc.message}") from None
        if isinstance(value, dict):
            out.update(value)

    return emit


def _field_emit(key: str, fn: Fn, label: str, send_nil: bool) -> _Emit:
    def emit(row: Row, ctx: EvalContext, out: Row) -> None:
        try:
            value = fn(row, ctx)
        except EvalError as exc:
            raise EvalError(f"run Select error: {label}meet error, err:{exc.message}") from None
        if value is not None or send_nil:
            out[key] = value

    return emit


def _wildcard_emit(
    wildcard: Wildcard,
    send_nil: bool,
    resolver: Callable[[tuple[str, ...]], RefResolver],
    calls: CallHook,
) -> _Emit:
    replaced = [
        (
            f.alias or "",
            _labelled(
                compile_expr(f.expr, resolve=resolver(()), calls=calls),
                f"alias: {f.alias} expr: {expr_text(f.expr)} ",
            ),
        )
        for f in wildcard.replace
    ]
    return wildcard_emit(wildcard, replaced, keep_nulls=send_nil)


def _labelled(fn: Fn, label: str) -> Fn:
    def labelled(row: Row, ctx: EvalContext) -> Any:
        try:
            return fn(row, ctx)
        except EvalError as exc:
            raise EvalError(f"run Select error: {label}meet error, err:{exc.message}") from None

    return labelled
