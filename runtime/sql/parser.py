"""Text -> AST: the inline lark transformer, name resolution and semantic checks, lark -> SqlError mapping.

Public entry points: ``parse_ddl``, ``parse_statements``, ``parse_select``. Every failure is a ``SqlError``
with a 1-based line/column and a caret excerpt; syntax errors end with ``at line L, column C``.
"""

from __future__ import annotations

import contextlib
import functools
import re
from collections.abc import Iterable, Iterator
from typing import Any

import attrs
from lark import Lark, Token, Transformer, v_args
from lark.exceptions import UnexpectedCharacters, UnexpectedInput, UnexpectedToken, VisitError

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
from runtime.sql.grammar import shared_parser, unquote
from runtime.sql.semantic import check_select

_ID_CHARS = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_-")


def parse_ddl(text: str) -> Statement:
    """Parse one stream/table statement (CREATE, DROP, DESCRIBE, EXPLAIN, SHOW).

    Raises:
      SqlError: syntax or semantic error, or the text is a SELECT.
    """
    stmt = _parse(text, "start")
    if isinstance(stmt, Select):
        raise SqlError("expected a stream or table statement, found SELECT", 1, 1, _excerpt(text, 1, 1))
    return _with_text(stmt, text)


def parse_statements(text: str) -> list[Statement]:
    """Parse a file of statements separated by ``;`` (e.g. ``etc/streams/*.sql``)."""
    result: list[Statement] = _parse(text, "statements")
    return [_with_text(stmt, text) for stmt in result]


def parse_select(text: str) -> Select:
    """Parse a rule's SELECT, resolve ``a.b`` names and check functions (unknown name, arity, placement).

    The result is shared by every caller that passes the same text (the AST is immutable: frozen attrs
    classes and tuples): planning a rule then parses its SQL only when that text was not planned recently, e.g.
    once for thousands of rules created from one template. Failures are not cached; they raise every time.

    Raises:
      SqlError: syntax or semantic error, or the text is not a SELECT.
    """
    return _parse_select(text)


@functools.lru_cache(maxsize=256)
def _parse_select(text: str) -> Select:
    stmt = _parse(text, "start")
    if not isinstance(stmt, Select):
        raise SqlError("expected a SELECT statement", 1, 1, _excerpt(text, 1, 1))
    return attrs.evolve(stmt, statement=text.strip().rstrip(";").rstrip())


# ------------------------------------------------------------------------------------------------ driver


@functools.cache
def _parser() -> Lark:
    return shared_parser(_ToAst())


def _parse(text: str, start: str) -> Any:
    try:
        return _parser().parse(text, start=start)
    except SqlError as exc:  # raised by the inline transformer: positioned, but without the excerpt
        raise _positioned(exc, text) from None
    except VisitError as exc:  # the same, when a tree transformer wraps it
        if isinstance(exc.orig_exc, SqlError):
            raise _positioned(exc.orig_exc, text) from None
        raise
    except UnexpectedInput as exc:
        raise _syntax_error(exc, text) from None
    except RecursionError:  # a last resort: _check_nesting keeps SELECTs well below the limit
        raise _positioned(SqlError("statement nested too deeply"), text) from None


def _with_text(stmt: Statement, text: str) -> Statement:
    if isinstance(stmt, StreamDef) and stmt.statement.startswith("\0"):
        start, end = (int(part) for part in stmt.statement[1:].split(":"))
        return attrs.evolve(stmt, statement=text[start:end])
    return stmt


def _positioned(exc: SqlError, text: str) -> SqlError:
    line, column = exc.line, exc.column
    if not line:  # a check with no token at hand: point at the statement's first character
        stripped = text.lstrip()
        before = text[: len(text) - len(stripped)]
        line = before.count("\n") + 1
        column = len(before) - (before.rfind("\n") + 1) + 1
    if not exc.context:
        return SqlError(exc.message, line, column, _excerpt(text, line, column))
    return exc


def _excerpt(text: str, line: int, column: int) -> str:
    lines = text.split("\n")
    source = lines[line - 1] if 0 < line <= len(lines) else ""
    caret = "".join("\t" if ch == "\t" else " " for ch in source[: column - 1]) + "^"
    return f"{source}\n{caret}"


_READABLE = {
    "LPAR": '"("',
    "RPAR": '")"',
    "COMMA": '","',
    "SEMICOLON": '";"',
    "EQ": '"="',
    "STAR": '"*"',
    "DOT": '"."',
    "COLON": '":"',
    "LSQB": '"["',
    "RSQB": '"]"',
    "MINUS": '"-"',
    "NAME": "identifier",
    "BQ_NAME": "identifier",
    "PATH_NAME": "source name",
    "QUALIFIED_STAR": "stream.*",
    "STRING_DQ": "string",
    "STRING_SQ": "string",
    "NUMBER": "number",
    "INT": "number",
    "COMP_OP": "comparison operator",
    "ADD_OP": "operator",
    "MUL_OP": "operator",
    "$END": "EOF",
}
_EXPRESSION_STARTS = frozenset({"NAME", "NUMBER", "STRING_DQ", "STRING_SQ", "MINUS", "LPAR"})


def _expected(names: set[str]) -> str:
    shown: set[str] = set()
    if _EXPRESSION_STARTS <= names:
        shown.add("expression")
        names = (
            names - _EXPRESSION_STARTS - {"BQ_NAME", "TRUE", "FALSE", "CASE", "DD", "HH", "MI", "SS", "MS"}
        )
    shown.update(_READABLE.get(name, name) for name in names if not name.startswith("__ANON"))
    ordered = sorted(shown)
    return ordered[0] if len(ordered) == 1 else "one of " + ", ".join(ordered)


def _syntax_error(exc: UnexpectedInput, text: str) -> SqlError:
    if isinstance(exc, UnexpectedToken) and exc.token.type == "$END":
        # Lark borrows the last real token's position for $END; report the true end of input.
        line = text.count("\n") + 1
        column = len(text) - (text.rfind("\n") + 1) + 1
        found = '"EOF"'
    elif isinstance(exc, UnexpectedToken):
        line, column, found = exc.line, exc.column, f'"{exc.token}"'
    elif isinstance(exc, UnexpectedCharacters):
        line, column = exc.line, exc.column
        rest = text[exc.pos_in_stream :]
        if rest[:1] in ("'", '"'):
            message = f"unterminated string {rest.splitlines()[0]!r}"
            return SqlError(
                f"{message} at line {line}, column {column}", line, column, _excerpt(text, line, column)
            )
        word = re.match(r"\w+|\S", rest)
        found = f'"{word.group() if word else rest[:1]}"'
    else:
        line, column = getattr(exc, "line", 0), getattr(exc, "column", 0)
        found = "input"
    expected = getattr(exc, "expected", None) or getattr(exc, "allowed", None) or set()
    message = f"found {found}, expected {_expected(set(expected))} at line {line}, column {column}"
    return SqlError(message, line, column, _excerpt(text, line, column))


# ------------------------------------------------------------------------------------------------ checks


def _ident(tok: Token) -> Token:
    if tok.type == "BQ_NAME":
        return Token.new_borrow_pos("NAME", tok[1:-1], tok)
    return tok


def _error(message: str, tok: Token | None = None) -> SqlError:
    return ddl.error_at(message, tok)


def _check_id(name: Token) -> None:
    if not name or not set(name) <= _ID_CHARS:
        raise _error(
            f"id '{name}' contains invalid characters: only alphanumeric, hyphens and underscores are allowed",
            name,
        )


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
    value: int | float = float(text) if any(c in text for c in ".eE") else int(text)
    return Literal(-value if negative else value)


def _pairs(items: tuple[Any, ...]) -> Iterator[Any]:
    return (item for item in items if item is not None)


@v_args(inline=True)
class _ToAst(Transformer[Token, Any]):
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
