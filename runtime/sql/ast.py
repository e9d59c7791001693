"""The immutable syntax tree of Oort SQL: DDL statements, SELECT, and expressions (frozen attrs nodes).

The parser (``runtime.sql.parser``) builds these nodes; ``runtime.sql.expr`` compiles expressions into
callables; the planner and the engine read statements. Nodes never change after parsing.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any
from typing import Literal as TypingLiteral

import attrs

StreamKind = TypingLiteral["stream", "table"]

# ------------------------------------------------------------------------------------------------ DDL


@attrs.frozen
class SimpleType:
    """A scalar field type: ``bigint``, ``float``, ``string``, ``datetime``, ``boolean`` or ``bytea``."""

    name: str


@attrs.frozen
class ArrayType:
    """``ARRAY(<element>)``; the element may itself be an array or a struct."""

    element: FieldType


@attrs.frozen
class StructType:
    """``STRUCT(<field> <type>, ...)``."""

    fields: tuple[FieldDef, ...]


FieldType = SimpleType | ArrayType | StructType


@attrs.frozen
class FieldDef:
    """One declared column. ``default`` is the converted DEFAULT literal, or None when absent."""

    name: str
    type: FieldType
    default: Any = None


@attrs.frozen
class StreamOptions:
    """The ``WITH (...)`` options of a stream or table (eKuiper docs sqls/streams.md, stream properties),
    typed.

    Empty strings mean "not given"; ``type`` empty lets the engine pick the default connector (mqtt for
    streams, file for tables). ``retain_size`` 0 means "not given".
    """

    datasource: str = ""
    format: str = "json"
    type: str = ""
    conf_key: str = ""
    extra: str = ""
    key: str = ""
    shared: bool = False
    strict_validation: bool = False
    timestamp: str = ""
    timestamp_format: str = ""
    schemaid: str = ""
    delimiter: str = ""
    retain_size: int = 0
    kind: str = ""
    version: str = ""
    temp: bool = False


@attrs.frozen
class StreamDef:
    """``CREATE STREAM|TABLE``. ``fields == ()`` means schemaless; ``statement`` is the original text."""

    name: str
    kind: StreamKind
    fields: tuple[FieldDef, ...]
    options: StreamOptions
    statement: str = ""

    @property
    def schemaless(self) -> bool:
        return not self.fields


@attrs.frozen
class DropStmt:
    kind: StreamKind
    name: str


@attrs.frozen
class DescribeStmt:
    kind: StreamKind
    name: str


@attrs.frozen
class ExplainStmt:
    kind: StreamKind
    name: str


@attrs.frozen
class ShowStmt:
    """``SHOW STREAMS|TABLES``; ``kind`` is singular."""

    kind: StreamKind


# ------------------------------------------------------------------------------------------------ expressions


class Expr:
    """Base of every expression node (no behaviour: compilation lives in ``runtime.sql.expr``)."""

    __slots__ = ()


@attrs.frozen
class Literal(Expr):
    """A constant: int, float, str or bool (eKuiper has no NULL literal)."""

    value: Any


@attrs.frozen
class TimeUnit(Expr):
    """A time-unit literal ``dd hh mi ss ms`` (lower-case), meaningful as a window's first argument."""

    unit: str


@attrs.frozen
class FieldRef(Expr):
    """A column, optionally qualified by a FROM/JOIN source name or alias (``demo.ts``)."""

    stream: str | None
    name: str


@attrs.frozen
class NestedRef(Expr):
    """``base->key`` (also ``a.b`` when ``a`` is not a source): a key of a map value."""

    base: Expr
    key: str


@attrs.frozen
class Index(Expr):
    """``base[index]``: 0-based array index, negative from the end."""

    base: Expr
    index: Expr


@attrs.frozen
class Slice(Expr):
    """``base[start:end]``, half-open; missing bounds are None."""

    base: Expr
    start: Expr | None
    end: Expr | None


@attrs.frozen
class BinaryOp(Expr):
    """Binary operator; ``op`` is one of ``+ - * / % & | ^ = != < <= > >= AND OR``."""

    op: str
    left: Expr
    right: Expr


@attrs.frozen
class ListExpr(Expr):
    """The parenthesised value list of ``x IN (a, b, c)``."""

    items: tuple[Expr, ...]


@attrs.frozen
class In(Expr):
    """``expr [NOT] IN target``; ``target`` is a ListExpr or an array-valued expression."""

    expr: Expr
    target: Expr
    negated: bool = False


@attrs.frozen
class Between(Expr):
    expr: Expr
    low: Expr
    high: Expr
    negated: bool = False


@attrs.frozen
class Like(Expr):
    expr: Expr
    pattern: Expr
    negated: bool = False


@attrs.frozen
class Case(Expr):
    """Simple (``value`` set) or searched (``value`` None) CASE; ``whens`` holds (condition, result) pairs."""

    value: Expr | None
    whens: tuple[tuple[Expr, Expr], ...]
    else_: Expr | None


@attrs.frozen
class Over(Expr):
    """``OVER (PARTITION BY ... WHEN ...)`` after an analytic function or a window."""

    partition_by: tuple[Expr, ...] = ()
    when: Expr | None = None


@attrs.frozen
class Call(Expr):
    """A function call; ``name`` is lower-cased. ``filter``/``over`` are the window/analytic suffixes.

    ``line``/``column`` locate the name in the statement (for error messages); they take no part in
    equality.
    """

    name: str
    args: tuple[Expr, ...]
    filter: Expr | None = None
    over: Over | None = None
    line: int = attrs.field(default=0, eq=False, repr=False)
    column: int = attrs.field(default=0, eq=False, repr=False)


@attrs.frozen
class Wildcard(Expr):
    """``*`` / ``stream.*`` with optional ``EXCEPT(...)`` and ``REPLACE(expr AS name, ...)``."""

    stream: str | None = None
    except_: tuple[str, ...] = ()
    replace: tuple[SelectField, ...] = ()


# ------------------------------------------------------------------------------------------------ SELECT


@attrs.frozen
class SelectField:
    """One SELECT item: an expression (or a Wildcard) with its optional alias."""

    expr: Expr
    alias: str | None = None
    invisible: bool = False


@attrs.frozen
class SourceRef:
    """A FROM/JOIN source: the stream/table name and its optional alias."""

    name: str
    alias: str | None = None

    @property
    def ref_name(self) -> str:
        """The name expressions use to qualify columns of this source."""
        return self.alias or self.name


@attrs.frozen
class Join:
    kind: str  # inner | left | right | full | cross
    source: SourceRef
    on: Expr | None = None


@attrs.frozen
class OrderItem:
    expr: Expr
    descending: bool = False


@attrs.frozen
class Select:
    """A SELECT statement. ``sources`` lists the FROM source then every JOIN source, in order."""

    fields: tuple[SelectField, ...]
    sources: tuple[SourceRef, ...]
    joins: tuple[Join, ...] = ()
    where: Expr | None = None
    group_by: tuple[Expr, ...] = ()
    having: Expr | None = None
    order_by: tuple[OrderItem, ...] = ()
    limit: int | None = None
    statement: str = ""


Statement = StreamDef | DropStmt | DescribeStmt | ExplainStmt | ShowStmt | Select


# ------------------------------------------------------------------------------------------------ traversal


def _fields(node: Expr | SelectField) -> tuple[attrs.Attribute[Any], ...]:
    fields: tuple[attrs.Attribute[Any], ...] = attrs.fields(type(node))  # type: ignore[arg-type]
    return fields  # every concrete node is an attrs class


def map_expr(node: Any, fn: Callable[[Expr], Expr]) -> Any:
    """Rebuild ``node`` bottom-up, replacing every expression ``e`` by ``fn(e)`` (children first).

    Works on expressions, SelectFields, tuples of them and the (condition, result) pairs of CASE; other
    values are returned unchanged. Used for name resolution after parsing, so it is generic over attrs
    fields instead of knowing every node type.
    """
    if isinstance(node, tuple):
        return tuple(map_expr(item, fn) for item in node)
    if isinstance(node, Expr | SelectField):
        changes = {}
        for field in _fields(node):
            value = getattr(node, field.name)
            new = map_expr(value, fn)
            if new is not value:
                changes[field.name] = new
        rebuilt = attrs.evolve(node, **changes) if changes else node  # type: ignore[misc]
        return fn(rebuilt) if isinstance(rebuilt, Expr) else rebuilt
    return node


def walk(node: Any) -> Iterator[Expr]:
    """Every expression in ``node`` (pre-order), including those inside SelectFields and tuples."""
    if isinstance(node, tuple):
        for item in node:
            yield from walk(item)
    elif isinstance(node, Expr | SelectField):
        if isinstance(node, Expr):
            yield node
        for field in _fields(node):
            yield from walk(getattr(node, field.name))


def select_exprs(select: Select) -> Iterator[tuple[str, Expr]]:
    """(clause, expression) for every top-level expression of a SELECT; clause names as in eKuiper errors."""
    for field in select.fields:
        yield "select", field.expr
    for join in select.joins:
        if join.on is not None:
            yield "join", join.on
    if select.where is not None:
        yield "where", select.where
    for expr in select.group_by:
        yield "group", expr
    if select.having is not None:
        yield "having", select.having
    for item in select.order_by:
        yield "order", item.expr
