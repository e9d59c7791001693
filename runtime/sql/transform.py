"""The lark Transformer that builds the AST while parsing: statement, clause and expression nodes, with the
checks made on the spot (ids, field types and defaults, nesting depth, the SELECT's semantic check).
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterable, Iterator
from typing import Any

import attrs
from lark import Token, Transformer, v_args

from runtime.config import id_problem
from runtime.errors import SqlError
from runtime.sql import ddl
from runtime.sql.ast import (
    ArrayType,
    Between,
    BinaryOp,
    Call,
    Case,
    DescribeStmt,
    DropStmt,
    ExplainStmt,
    Expr,
    FieldDef,
    FieldRef,
    In,
    Index,
    Join,
    Like,
    ListExpr,
    Literal,
    NestedRef,
    OrderItem,
    Over,
    Select,
    SelectField,
    ShowStmt,
    SimpleType,
    Slice,
    SourceRef,
    Statement,
    StreamDef,
    StructType,
    TimeUnit,
    Wildcard,
    select_exprs,
)
from runtime.sql.grammar import unquote
from runtime.sql.semantic import check_select

# ------------------------------------------------------------------------------------------------ checks


def _ident(tok: Token) -> Token:
    if tok.type == "BQ_NAME":
        return Token.new_borrow_pos("NAME", tok[1:-1], tok)
    return tok


def _error(message: str, tok: Token | None = None) -> SqlError:
    return ddl.error_at(message, tok)


def _check_id(name: Token) -> None:
    problem = id_problem(str(name))
    if problem is not None:
        raise _error(problem, name)


# ------------------------------------------------------------------------------------------------ transformer


MAX_NESTING = 128
"""Deepest nesting of an expression or a field type: deeper trees would exhaust Python's stack when name
resolution, the compiler, the compiled closures or the schema converters recurse through them (SQLite
limits expression depth likewise)."""


def _check_nesting(roots: Iterable[Any], what: str) -> None:
    """Raise SqlError when an AST nests deeper than MAX_NESTING (iteratively: no recursion here)."""
    stack: list[tuple[Any, int]] = [(root, 1) for root in roots]
    while stack:
        node, depth = stack.pop()
        if isinstance(node, tuple):
            stack.extend((item, depth) for item in node)
            continue
        if not attrs.has(type(node)):
            continue
        if depth > MAX_NESTING:
            raise SqlError(f"{what} nested too deeply: more than {MAX_NESTING} levels")
        stack.extend((getattr(node, field.name), depth + 1) for field in attrs.fields(type(node)))


@contextlib.contextmanager
def _located(tok: Token) -> Iterator[None]:
    """Position a check's SqlError that has no position of its own at ``tok`` (the statement's keyword)."""
    try:
        yield
    except SqlError as exc:
        if exc.line:
            raise
        raise SqlError(exc.message, tok.line or 0, tok.column or 0) from None


def _number(tok: Token, negative: bool = False) -> Literal:
    text = str(tok)
    try:
        value: int | float = float(text) if any(c in text for c in ".eE") else int(text)
    except ValueError:  # Python refuses int() of more than 4,300 digits
        raise SqlError(
            f"number with {len(text)} digits is too long", tok.line or 0, tok.column or 0
        ) from None
    return Literal(-value if negative else value)


def _pairs(items: tuple[Any, ...]) -> Iterator[Any]:
    return (item for item in items if item is not None)


@v_args(inline=True)
class ToAst(Transformer[Token, Any]):
    """Builds AST nodes while parsing (inline: no tree). Stateless, so one instance serves every parse."""

    # -- statements
    def start(self, stmt: Statement) -> Statement:
        return stmt

    def statements(self, *stmts: Statement) -> list[Statement]:
        return list(stmts)

    def stream_kind(self, tok: Token) -> str:
        return tok.lower()

    def stream_kind_plural(self, tok: Token) -> str:
        return tok.lower()[:-1]

    def create_stmt(
        self, create: Token, kind: Any, name: Token, fields: Any, _with: Token, options: Any, rpar: Token
    ) -> StreamDef:
        _check_id(name)
        field_defs: tuple[FieldDef, ...] = fields or ()
        with _located(create):
            _check_nesting(field_defs, "field type")
            opts = ddl.make_options(kind, field_defs, options or ())
        # The span is carried as a marker until the caller, who has the text, slices the statement out.
        span = f"\0{create.start_pos}:{rpar.end_pos}"
        return StreamDef(name=str(name), kind=kind, fields=field_defs, options=opts, statement=span)

    def drop_stmt(self, _kw: Token, kind: Any, name: Token) -> DropStmt:
        return DropStmt(kind, str(name))

    def describe_stmt(self, _kw: Token, kind: Any, name: Token) -> DescribeStmt:
        return DescribeStmt(kind, str(name))

    def explain_stmt(self, _kw: Token, kind: Any, name: Token) -> ExplainStmt:
        return ExplainStmt(kind, str(name))

    def show_stmt(self, _kw: Token, kind: Any) -> ShowStmt:
        return ShowStmt(kind)

    def field_defs(self, *defs: FieldDef) -> tuple[FieldDef, ...]:
        return tuple(defs)

    struct_fields = field_defs

    def field_def(self, name: Token, ftype: Any, _default: Token | None, value: Literal | None) -> FieldDef:
        default = ddl.convert_default(name, ftype, value.value) if value is not None else None
        return FieldDef(str(name), ftype, default)

    def struct_field(self, name: Token, ftype: Any) -> FieldDef:
        return FieldDef(str(name), ftype)

    def simple_type(self, tok: Token) -> SimpleType:
        if tok.lower() not in ddl.SIMPLE_TYPES:
            raise ddl.type_error(tok)
        return SimpleType(tok.lower())

    def array_type(self, tok: Token, element: Any) -> ArrayType:
        if tok.lower() != "array":
            raise ddl.type_error(tok)
        return ArrayType(element)

    def struct_type(self, tok: Token, fields: tuple[FieldDef, ...]) -> StructType:
        if tok.lower() != "struct":
            raise ddl.type_error(tok)
        return StructType(fields)

    def default_value(self, value: Any) -> Literal:
        if isinstance(value, Token):  # bare TRUE / FALSE
            return Literal(value.upper() == "TRUE")
        return value  # type: ignore[no-any-return]

    def options(self, *opts: tuple[Token, Token]) -> tuple[tuple[Token, Token], ...]:
        return opts

    def option(self, name: Token, value: Token) -> tuple[Token, Token]:
        return (name, value)

    def option_value(self, tok: Token) -> Token:
        text = unquote(tok) if tok.type.startswith("STRING") else tok.lower()
        return Token.new_borrow_pos(tok.type, text, tok)

    # -- SELECT
    def select_stmt(
        self, select_kw: Token, fields: Any, _f: Token, source: SourceRef, joins: Any, where: Any, group: Any,
        having: Any, order: Any, limit: Any,
    ) -> Select:  # fmt: skip
        select = Select(
            fields=fields,
            sources=(source, *(j.source for j in joins)),
            joins=joins,
            where=where,
            group_by=group or (),
            having=having,
            order_by=order or (),
            limit=limit,
        )
        with _located(select_kw):
            _check_nesting((expr for _, expr in select_exprs(select)), "expression")
            return check_select(select)

    def select_fields(self, *fields: Any) -> tuple[SelectField, ...]:
        return tuple(f if isinstance(f, SelectField) else SelectField(f) for f in fields)

    def field(self, expr: Expr, _as: Any, alias: Token | None, invisible: Token | None) -> SelectField:
        return SelectField(expr, str(alias) if alias is not None else None, invisible is not None)

    def wildcard(self, except_: Any, replace: Any) -> Wildcard:
        return Wildcard(None, except_ or (), replace or ())

    def wildcard_alias(self, _w: Wildcard, as_: Token, _alias: Token) -> SelectField:
        raise _error("alias is not supported for *", as_)

    def qualified_star(self, tok: Token) -> SelectField:
        return SelectField(Wildcard(stream=str(tok)[:-2]))

    def except_clause(self, _kw: Token, *names: Token) -> tuple[str, ...]:
        return tuple(str(n) for n in names)

    def replace_clause(self, _kw: Token, *items: SelectField) -> tuple[SelectField, ...]:
        return items

    def replace_item(self, expr: Expr, _as: Token, name: Token) -> SelectField:
        return SelectField(expr, str(name))

    def source(self, name: str, _as: Any, alias: Token | None) -> SourceRef:
        return SourceRef(name, str(alias) if alias is not None else None)

    def source_name(self, tok: Token) -> str:
        return str(_ident(tok))

    def joins(self, *joins: Join) -> tuple[Join, ...]:
        return joins

    def join(
        self, kind: str | None, _j: Token, source: SourceRef, on_kw: Token | None, on: Expr | None
    ) -> Join:
        if kind == "cross" and on is not None:
            raise _error("On expression is not required for cross join type.", on_kw)
        return Join(kind or "inner", source, on)

    def join_type(self, tok: Token) -> str:
        return tok.lower()

    def where_clause(self, _kw: Token, expr: Expr) -> Expr:
        return expr

    having_clause = where_clause

    def group_clause(self, _g: Token, _b: Token, *exprs: Expr) -> tuple[Expr, ...]:
        return exprs

    def order_clause(self, _o: Token, _b: Token, *items: OrderItem) -> tuple[OrderItem, ...]:
        return items

    def order_item(self, expr: Expr, direction: Token | None) -> OrderItem:
        return OrderItem(expr, direction is not None and direction.upper() == "DESC")

    def limit_clause(self, kw: Token, value: Literal) -> int:
        if type(value.value) is not int:
            raise _error("limit should be integer", kw)
        return int(value.value)

    # -- expressions
    def or_op(self, left: Expr, _op: Token, right: Expr) -> Expr:
        return BinaryOp("OR", left, right)

    def and_op(self, left: Expr, _op: Token, right: Expr) -> Expr:
        return BinaryOp("AND", left, right)

    def compare(self, left: Expr, op: Token, right: Expr) -> Expr:
        return BinaryOp("".join(op.split()), left, right)  # "! =" -> "!="

    def arith(self, left: Expr, op: Token, right: Expr) -> Expr:
        return BinaryOp(str(op), left, right)

    def in_op(self, expr: Expr, not_: Token | None, _in: Token, target: Expr) -> Expr:
        return In(expr, target, not_ is not None)

    def in_list(self, *items: Expr | None) -> Expr:
        values = tuple(_pairs(items))
        if not values:
            raise SqlError('expect elements for IN expression, but found ")", expected expression.')
        return ListExpr(values)

    def in_expr(self, expr: Expr) -> Expr:
        return expr

    def between_op(self, expr: Expr, not_: Any, _b: Token, low: Expr, _and: Token, high: Expr) -> Expr:
        return Between(expr, low, high, not_ is not None)

    def like_op(self, expr: Expr, not_: Token | None, _like: Token, pattern: Expr) -> Expr:
        return Like(expr, pattern, not_ is not None)

    def access(self, base: Expr, accessor: tuple[str, Any, Any]) -> Expr:
        kind, a, b = accessor
        if kind == "index":
            return Index(base, a)
        if kind == "slice":
            return Slice(base, a, b)
        if kind == "dot" and isinstance(base, FieldRef) and base.stream is None:
            return FieldRef(base.name, a)  # maybe a source qualifier; _resolve_names decides
        return NestedRef(base, a)

    def index_acc(self, expr: Expr) -> tuple[str, Any, Any]:
        return ("index", expr, None)

    def slice_acc(self, start: Expr | None, end: Expr | None) -> tuple[str, Any, Any]:
        return ("slice", start, end)

    def full_slice_acc(self) -> tuple[str, Any, Any]:
        return ("slice", None, None)

    def arrow_acc(self, name: Token) -> tuple[str, Any, Any]:
        return ("arrow", str(name), None)

    def dot_acc(self, name: Token) -> tuple[str, Any, Any]:
        return ("dot", str(name), None)

    def field_ref(self, name: Token) -> Expr:
        return FieldRef(None, str(name))

    def call(self, name: Token, args: Any, filter_: Expr | None, over: Over | None) -> Call:
        return Call(name.lower(), args or (), filter_, over, line=name.line or 0, column=name.column or 0)

    def call_args(self, *args: Expr) -> tuple[Expr, ...]:
        return args

    def filter_suffix(self, _f: Token, _w: Token, expr: Expr) -> Expr:
        return expr

    def over_suffix(self, _o: Token, partition: Any, _w: Token | None, when: Expr | None) -> Over:
        return Over(partition or (), when)

    def partition_clause(self, _p: Token, _b: Token, *exprs: Expr) -> tuple[Expr, ...]:
        return exprs

    def case_expr(self, _case: Token, value: Expr | None, *rest: Any) -> Case:
        whens = tuple(item for item in rest[:-3])
        return Case(value, whens, rest[-2])

    def case_when(self, _w: Token, cond: Expr, _t: Token, result: Expr) -> tuple[Expr, Expr]:
        return (cond, result)

    def time_unit(self, tok: Token) -> TimeUnit:
        return TimeUnit(tok.lower())

    def true_lit(self, _tok: Token) -> Literal:
        return Literal(True)

    def false_lit(self, _tok: Token) -> Literal:
        return Literal(False)

    def signed_number(self, *parts: Token) -> Literal:
        if len(parts) == 1:
            return _number(parts[0])
        if parts[1].type == "INT":  # "-. 3": eKuiper reads it as -0.3
            return Literal(-float("0." + parts[1]))
        return _number(parts[1], negative=True)

    def string(self, tok: Token) -> Literal:
        return Literal(unquote(tok))

    def ident(self, tok: Token) -> Token:
        return _ident(tok)
