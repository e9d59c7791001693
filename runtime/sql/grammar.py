"""The lexical layer: finding ``sql.lark`` (checkout or wheel), building the one LALR parser per process,
reserved words and string-literal escapes.

The grammar lives outside the package in ``<repo>/grammar/sql.lark``; wheels carry it as
``runtime/_grammar/sql.lark`` (pyproject force-include). Building takes ~40 ms, parsing well under a
millisecond, so the parser is built once (``functools.cache``) and shared: lark parsers and our inline
transformer keep no per-parse state.
"""

from __future__ import annotations

import functools
from importlib import resources
from pathlib import Path

from lark import Lark, Token, Transformer

from runtime.errors import ConfigError, SqlError

GRAMMAR_FILE = "sql.lark"
START_SYMBOLS = ("start", "statements", "select_stmt")
# eKuiper's reserved words (§C.1): usable as names only back-quoted.
RESERVED = frozenset(
    "SELECT FROM JOIN INNER LEFT RIGHT FULL CROSS ON WHERE GROUP ORDER HAVING BY ASC DESC FILTER CASE WHEN THEN "
    "ELSE END IN NOT BETWEEN LIKE OVER PARTITION REPLACE EXCEPT INVISIBLE DEFAULT TRUE FALSE LIMIT AS "
    "DD HH MI SS MS".split()
)


def _reject_reserved(tok: Token) -> Token:
    # The contextual lexer tries a keyword only where the grammar expects one; elsewhere `FROM` would lex as
    # a NAME. Rejecting it here, while lexing, reports it before LALR trips over the following token.
    if tok.upper() in RESERVED:
        raise SqlError(
            f'found "{tok}", expected expression at line {tok.line}, column {tok.column}',
            line=tok.line or 0,
            column=tok.column or 0,
        )
    return tok


def grammar_text() -> str:
    """The text of ``sql.lark``: the wheel copy if installed, else the checkout's ``grammar/`` directory.

    Raises:
      ConfigError: neither location has the file (a broken installation).
    """
    packaged = resources.files("runtime") / "_grammar" / GRAMMAR_FILE
    if packaged.is_file():
        return packaged.read_text(encoding="utf-8")
    checkout = Path(__file__).resolve().parents[2] / "grammar" / GRAMMAR_FILE
    if checkout.is_file():
        return checkout.read_text(encoding="utf-8")
    raise ConfigError(f"SQL grammar not found: neither {packaged} nor {checkout} exists")


def build_parser(transformer: Transformer[object, object] | None = None, *, strict: bool = False) -> Lark:
    """Build a fresh parser (tests use ``strict=True`` to reject conflicts and terminal collisions)."""
    return Lark(
        grammar_text(),
        parser="lalr",  # linear time, and the conflict check keeps the grammar honest
        lexer="contextual",  # per-state terminals: `/` is a path char after FROM, division elsewhere
        start=list(START_SYMBOLS),
        transformer=transformer,  # inline: no parse tree is built (lark's transformer= option: ≈1.7x faster)
        maybe_placeholders=True,  # [optional] parts arrive as None, so transformer arities are fixed
        strict=strict,
        lexer_callbacks={"NAME": _reject_reserved},
    )


@functools.cache
def shared_parser(transformer: Transformer[object, object]) -> Lark:
    """The process-wide parser for ``transformer`` (which must be stateless)."""
    return build_parser(transformer)


# ------------------------------------------------------------------------------------------------ string literals
# eKuiper's lexer decodes Go strconv escapes: "a\\"b", 'it\\'s', \\n, \\x41, \\u00e9, \\101 (octal); anything else after a
# backslash (\\1, \\q) is an error (found "invalid string: ...").

_SIMPLE = {
    "a": "\a",
    "b": "\b",
    "f": "\f",
    "n": "\n",
    "r": "\r",
    "t": "\t",
    "v": "\v",
    "\\": "\\",
    "'": "'",
    '"': '"',
}
_HEX_LENGTHS = {"x": 2, "u": 4, "U": 8}
_OCTAL = "01234567"
_HEX = "0123456789abcdefABCDEF"


def unquote(tok: Token) -> str:
    """The value of a quoted string token (either quote style), escapes decoded.

    Raises:
      SqlError: an invalid escape, positioned at the token.
    """
    raw = str(tok)
    body = raw[1:-1]
    if "\\" not in body:
        return body
    out: list[str] = []
    i, n = 0, len(body)
    while i < n:
        ch = body[i]
        if ch != "\\":
            out.append(ch)
            i += 1
            continue
        esc = body[i + 1] if i + 1 < n else ""
        if esc in _SIMPLE:
            out.append(_SIMPLE[esc])
            i += 2
        elif esc in _HEX_LENGTHS:
            digits = body[i + 2 : i + 2 + _HEX_LENGTHS[esc]]
            if len(digits) != _HEX_LENGTHS[esc] or any(c not in _HEX for c in digits):
                raise _invalid(tok)
            out.append(chr(int(digits, 16)))
            i += 2 + len(digits)
        elif esc in _OCTAL:
            digits = body[i + 1 : i + 4]
            if len(digits) != 3 or any(c not in _OCTAL for c in digits) or int(digits, 8) > 255:
                raise _invalid(tok)
            out.append(chr(int(digits, 8)))
            i += 4
        else:
            raise _invalid(tok)
    return "".join(out)


def _invalid(tok: Token) -> SqlError:
    return SqlError(
        f'found "invalid string: {tok}", expected expression.', line=tok.line or 0, column=tok.column or 0
    )
