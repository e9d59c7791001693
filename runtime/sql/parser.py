"""Text -> AST: the public entry points ``parse_ddl``, ``parse_statements`` and ``parse_select``, driving the
shared lark parser and mapping its failures to ``SqlError``.

Every failure is a ``SqlError`` with a 1-based line/column and a caret excerpt; syntax errors end with
``at line L, column C``. The AST itself is built by ``runtime.sql.transform`` while parsing.
"""

from __future__ import annotations

import functools
import itertools
import re
from typing import Any

import attrs
from lark import Lark
from lark.exceptions import UnexpectedCharacters, UnexpectedInput, UnexpectedToken, VisitError

from runtime.errors import SqlError
from runtime.sql.ast import Select, Statement, StreamDef
from runtime.sql.grammar import shared_parser
from runtime.sql.transform import MAX_NESTING as MAX_NESTING
from runtime.sql.transform import ToAst

__all__ = [
    "MAX_NESTING",
    "MAX_STATEMENT_CHARS",
    "MAX_STATEMENT_TOKENS",
    "parse_ddl",
    "parse_select",
    "parse_statements",
]

# One statement (a rule's SQL, a stream's DDL) may have this many characters and tokens. Real ones are a few KB
# and a few hundred tokens; the caps bound how long one request holds the event loop in the parser, which costs
# about 25 us per token (64 KiB of `a,a,...` took 0.9 s; 8,192 tokens take about 0.1 s). A string literal is
# one token. Statement files in etc/ are not capped.
MAX_STATEMENT_CHARS = 64 * 1024
MAX_STATEMENT_TOKENS = 8192
_TOKEN = re.compile(r"""\w+|'(?:[^'\\]|\\.)*'?|"(?:[^"\\]|\\.)*"?|`[^`]*`?|\S""")
EXCERPT_CHARS = 60  # of a bad token quoted in an error message
_WORD = re.compile(rf"\w{{1,{EXCERPT_CHARS}}}|\S")


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
    return shared_parser(ToAst())


def _parse(text: str, start: str) -> Any:
    if start == "start" and len(text) > MAX_STATEMENT_CHARS:
        raise SqlError(
            f"statement of {len(text):,} characters is over the limit of {MAX_STATEMENT_CHARS:,}", 1, 1, ""
        )
    if start == "start" and _more_tokens_than(text, MAX_STATEMENT_TOKENS):
        raise SqlError(f"statement of more than {MAX_STATEMENT_TOKENS:,} tokens is over the limit", 1, 1, "")
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
    except RecursionError:  # a last resort: the transformer's nesting check keeps SELECTs well below it
        raise _positioned(SqlError("statement nested too deeply"), text) from None


def _more_tokens_than(text: str, limit: int) -> bool:
    """Whether ``text`` has more than ``limit`` tokens, by a count that stops there (a regex pass, ~1 ms)."""
    return any(True for _ in itertools.islice(_TOKEN.finditer(text), limit, None))


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
    """The statement's line ``line`` with a caret under ``column``; a long line is cut to a window around it."""
    lines = text.split("\n")
    source = lines[line - 1] if 0 < line <= len(lines) else ""
    if len(source) > 2 * EXCERPT_CHARS:
        start = max(0, column - 1 - EXCERPT_CHARS)
        head = "..." if start else ""
        window = source[start : column - 1 + EXCERPT_CHARS]
        tail = "..." if start + len(window) < len(source) else ""
        source, column = head + window + tail, column - start + len(head)
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
        token = str(exc.token)
        shown = token if len(token) <= EXCERPT_CHARS else token[:EXCERPT_CHARS] + "..."
        line, column, found = exc.line, exc.column, f'"{shown}"'
    elif isinstance(exc, UnexpectedCharacters):
        line, column = exc.line, exc.column
        rest = text[exc.pos_in_stream :]
        if rest[:1] in ("'", '"'):
            first = rest.splitlines()[0] if rest else rest
            shown = first if len(first) <= EXCERPT_CHARS else first[:EXCERPT_CHARS] + "..."
            message = f"unterminated string {shown!r}"
            return SqlError(
                f"{message} at line {line}, column {column}", line, column, _excerpt(text, line, column)
            )
        word = _WORD.match(rest)
        found = f'"{word.group() if word else rest[:1]}"'
    else:
        line, column = getattr(exc, "line", 0), getattr(exc, "column", 0)
        found = "input"
    expected = getattr(exc, "expected", None) or getattr(exc, "allowed", None) or set()
    message = f"found {found}, expected {_expected(set(expected))} at line {line}, column {column}"
    return SqlError(message, line, column, _excerpt(text, line, column))
