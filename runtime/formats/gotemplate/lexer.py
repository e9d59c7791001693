"""Splitting a Go template into tokens, as Go's ``text/template/parse`` lexer does.

Text between actions, ``{{``/``}}`` with their trim markers (``{{- `` trims the white space before it, `` -}}``
the white space after it), comments ``{{/* */}}`` (dropped here) and, inside actions, Go's tokens: fields
``.a``, variables ``$x``, identifiers, keywords, numbers, strings, raw strings, characters, ``:=``, ``=``,
``|``, parentheses, commas and runs of spaces (newlines included, as Go allows since 1.16).
"""

from __future__ import annotations

import enum
from typing import Final, final

from runtime.formats.gotemplate.errors import TemplateSyntaxError
from runtime.formats.gotemplate.values import quote


class Tok(enum.Enum):
    TEXT = "text"
    LEFT = "{{"
    RIGHT = "}}"
    SPACE = "space"
    DECLARE = ":="
    ASSIGN = "="
    PIPE = "|"
    LPAREN = "("
    RPAREN = ")"
    CHAR = "character"  # a printable ASCII character with no other meaning (the comma of `$i, $v`)
    FIELD = "field"
    VARIABLE = "variable"
    DOT = "."
    IDENT = "identifier"
    KEYWORD = "keyword"
    BOOL = "bool"
    NIL = "nil"
    NUMBER = "number"
    CHAR_CONSTANT = "character constant"
    STRING = "string"
    RAW_STRING = "raw string"
    EOF = "EOF"


KEYWORDS: Final = frozenset(
    {"block", "break", "continue", "define", "else", "end", "if", "range", "template", "with"}
)
_SPACES: Final = " \t\r\n"


@final
class Token:
    __slots__ = ("kind", "pos", "trim", "value")

    def __init__(self, kind: Tok, pos: int, value: str, trim: bool = False) -> None:
        self.kind = kind
        self.pos = pos
        self.value = value
        self.trim = trim  # LEFT: `{{- `; RIGHT: ` -}}`

    def describe(self) -> str:
        """The token as Go's parse errors name it: ``<if>``, ``"foo"``, ``EOF``."""
        if self.kind is Tok.EOF:
            return "EOF"
        if self.kind in (Tok.KEYWORD, Tok.DOT, Tok.NIL):
            return f"<{self.value}>"
        if len(self.value) > 10:
            return quote(self.value[:10]) + "..."
        return quote(self.value)

    def __repr__(self) -> str:
        return f"Token({self.kind.name}, {self.pos}, {self.value!r})"


def _alnum(ch: str) -> bool:
    return ch == "_" or ch.isalpha() or ch.isdigit()


def _left_trim(src: str, i: int) -> bool:
    return src.startswith("-", i) and i + 1 < len(src) and src[i + 1] in _SPACES


def _right_delim(src: str, i: int) -> tuple[bool, bool]:
    """(at a right delimiter, with a trim marker) at offset ``i``."""
    if i + 1 < len(src) and src[i] in _SPACES and src[i + 1] == "-" and src.startswith("}}", i + 2):
        return True, True
    return src.startswith("}}", i), False


@final
class _Lexer:
    def __init__(self, name: str, src: str) -> None:
        self.name = name
        self.src = src
        self.tokens: list[Token] = []

    def fail(self, pos: int, message: str) -> TemplateSyntaxError:
        return TemplateSyntaxError(self.name, self.src, pos, message)

    def run(self) -> list[Token]:
        src, pos = self.src, 0
        while True:
            start = src.find("{{", pos)
            if start < 0:
                if pos < len(src):
                    self.tokens.append(Token(Tok.TEXT, pos, src[pos:]))
                self.tokens.append(Token(Tok.EOF, len(src), ""))
                return self.tokens
            trim = _left_trim(src, start + 2)
            text = src[pos:start]
            if trim:
                text = text.rstrip(_SPACES)
            if text:
                self.tokens.append(Token(Tok.TEXT, pos, text))
            inside = start + 2 + (2 if trim else 0)
            if src.startswith("/*", inside):
                pos = self._comment(start, inside)
            else:
                self.tokens.append(Token(Tok.LEFT, start, "{{", trim))
                pos = self._action(inside)

    def _comment(self, start: int, inside: int) -> int:
        end = self.src.find("*/", inside + 2)
        if end < 0:
            raise self.fail(start, "unclosed comment")
        at, trim = _right_delim(self.src, end + 2)
        if not at:
            raise self.fail(start, "comment ends before closing delimiter")
        pos = end + 2 + (2 if trim else 0) + 2
        return self._skip_spaces(pos) if trim else pos

    def _skip_spaces(self, pos: int) -> int:
        while pos < len(self.src) and self.src[pos] in _SPACES:
            pos += 1
        return pos

    def _emit(self, kind: Tok, start: int, end: int) -> int:
        self.tokens.append(Token(kind, start, self.src[start:end]))
        return end

    def _action(self, pos: int) -> int:
        """Tokens up to and including the right delimiter; returns the offset after it (and its trim)."""
        src, depth = self.src, 0
        while True:
            at, trim = _right_delim(src, pos)
            if at:
                if depth:
                    raise self.fail(pos, "unclosed left paren")
                if trim:
                    pos += 2
                self.tokens.append(Token(Tok.RIGHT, pos, "}}", trim))
                pos += 2
                return self._skip_spaces(pos) if trim else pos
            if pos >= len(src):
                raise self.fail(pos, "unclosed action")
            ch = src[pos]
            if ch in _SPACES:
                end = self._skip_spaces(pos)
                # " -}}" ends the action: its space belongs to the delimiter, not to this run.
                if _right_delim(src, end - 1) == (True, True):
                    end -= 1
                if end > pos:
                    pos = self._emit(Tok.SPACE, pos, end)
                continue
            if ch == "=":
                pos = self._emit(Tok.ASSIGN, pos, pos + 1)
            elif ch == ":":
                if not src.startswith(":=", pos):
                    raise self.fail(pos, "expected :=")
                pos = self._emit(Tok.DECLARE, pos, pos + 2)
            elif ch == "|":
                pos = self._emit(Tok.PIPE, pos, pos + 1)
            elif ch == "(":
                depth += 1
                pos = self._emit(Tok.LPAREN, pos, pos + 1)
            elif ch == ")":
                depth -= 1
                if depth < 0:
                    raise self.fail(pos, "unexpected right paren")
                pos = self._emit(Tok.RPAREN, pos, pos + 1)
            elif ch == '"':
                pos = self._quoted(pos, '"', Tok.STRING, "unterminated quoted string")
            elif ch == "'":
                pos = self._quoted(pos, "'", Tok.CHAR_CONSTANT, "unterminated character constant")
            elif ch == "`":
                end = src.find("`", pos + 1)
                if end < 0:
                    raise self.fail(pos, "unterminated raw quoted string")
                pos = self._emit(Tok.RAW_STRING, pos, end + 1)
            elif ch == "$":
                pos = self._field_or_variable(pos, Tok.VARIABLE)
            elif ch == "." and not (pos + 1 < len(src) and src[pos + 1].isdigit() and src[pos + 1].isascii()):
                pos = self._field_or_variable(pos, Tok.FIELD)
            elif ch in "+-." or "0" <= ch <= "9":
                pos = self._number(pos)
            elif _alnum(ch):
                pos = self._identifier(pos)
            elif ch.isascii() and ch.isprintable():
                pos = self._emit(Tok.CHAR, pos, pos + 1)
            else:
                raise self.fail(pos, f"unrecognized character in action: U+{ord(ch):04X} {ch!r}")

    def _at_terminator(self, pos: int) -> bool:
        src = self.src
        if pos >= len(src) or src[pos] in _SPACES or src[pos] in ".,|:)(":
            return True
        return src.startswith("}}", pos)

    def _bad_character(self, pos: int) -> TemplateSyntaxError:
        ch = self.src[pos]
        return self.fail(pos, f"bad character U+{ord(ch):04X} {ch!r}")

    def _quoted(self, start: int, quote: str, kind: Tok, unterminated: str) -> int:
        src, pos = self.src, start + 1
        while True:
            if pos >= len(src) or src[pos] == "\n":
                raise self.fail(start, unterminated)
            ch = src[pos]
            if ch == "\\":
                if pos + 1 >= len(src) or src[pos + 1] == "\n":
                    raise self.fail(start, unterminated)
                pos += 2
                continue
            pos += 1
            if ch == quote:
                return self._emit(kind, start, pos)

    def _field_or_variable(self, start: int, kind: Tok) -> int:
        pos = start + 1
        if self._at_terminator(pos):
            return self._emit(Tok.DOT if kind is Tok.FIELD else Tok.VARIABLE, start, pos)
        while pos < len(self.src) and _alnum(self.src[pos]):
            pos += 1
        if not self._at_terminator(pos):
            raise self._bad_character(pos)
        return self._emit(kind, start, pos)

    def _identifier(self, start: int) -> int:
        pos = start
        while pos < len(self.src) and _alnum(self.src[pos]):
            pos += 1
        if not self._at_terminator(pos):
            raise self._bad_character(pos)
        word = self.src[start:pos]
        if word in KEYWORDS:
            kind = Tok.KEYWORD
        elif word in ("true", "false"):
            kind = Tok.BOOL
        elif word == "nil":
            kind = Tok.NIL
        else:
            kind = Tok.IDENT
        return self._emit(kind, start, pos)

    def _scan_number(self, pos: int) -> tuple[int, bool]:
        src = self.src

        def accept(pos: int, chars: str) -> int:
            return pos + 1 if pos < len(src) and src[pos] in chars else pos

        pos = accept(pos, "+-")
        digits = "0123456789_"
        if pos < len(src) and src[pos] == "0":
            pos += 1
            prefix = src[pos : pos + 1]
            if prefix and prefix in "xX":
                digits, pos = "0123456789abcdefABCDEF_", pos + 1
            elif prefix and prefix in "oO":
                digits, pos = "01234567_", pos + 1
            elif prefix and prefix in "bB":
                digits, pos = "01_", pos + 1
        while pos < len(src) and src[pos] in digits:
            pos += 1
        if pos < len(src) and src[pos] == ".":
            pos += 1
            while pos < len(src) and src[pos] in digits:
                pos += 1
        exponent = "eE" if len(digits) == 11 else ("pP" if len(digits) == 23 else "")
        if exponent and pos < len(src) and src[pos] in exponent:
            pos = accept(pos + 1, "+-")
            while pos < len(src) and src[pos] in "0123456789_":
                pos += 1
        pos = accept(pos, "i")
        if pos < len(src) and _alnum(src[pos]):
            return pos + 1, False
        return pos, True

    def _number(self, start: int) -> int:
        pos, ok = self._scan_number(start)
        if ok and pos < len(self.src) and self.src[pos] in "+-":
            pos, ok = self._scan_number(pos)  # Go's complex literal 1+2i
            if ok and self.src[pos - 1] == "i":
                raise self.fail(start, f"complex number {self.src[start:pos]} is not supported")
            ok = False
        if not ok:
            raise self.fail(start, f"bad number syntax: {quote(self.src[start:pos])}")
        return self._emit(Tok.NUMBER, start, pos)


def lex(name: str, src: str) -> list[Token]:
    """The tokens of ``src`` ending with ``EOF``.

    Raises:
      TemplateSyntaxError: an unclosed action, comment or string, or a character Go does not accept.
    """
    return _Lexer(name, src).run()
