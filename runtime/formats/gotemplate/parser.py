"""Parsing a Go template into its tree, following Go's ``text/template/parse`` (its checks and its messages).

Checked here, as Go does: functions must exist, variables must be declared before use, ``{{break}}`` and
``{{continue}}`` must be inside ``{{range}}``, literals cannot start a later pipeline stage. Not supported
(a clear error): ``{{define}}``, ``{{template}}``, ``{{block}}`` and complex numbers.
"""

from __future__ import annotations

import re
from collections.abc import Container
from typing import Final, NoReturn, final

from runtime.formats.gotemplate.errors import TemplateSyntaxError
from runtime.formats.gotemplate.lexer import Tok, Token, lex
from runtime.formats.gotemplate.nodes import (
    Action,
    Body,
    Branch,
    Chain,
    Command,
    Dot,
    Field,
    Identifier,
    Literal,
    LoopControl,
    Nil,
    Node,
    Pipe,
    Text,
    Variable,
)
from runtime.formats.gotemplate.values import GoInt, quote

_OPERAND_START: Final = frozenset(
    {
        Tok.BOOL,
        Tok.CHAR_CONSTANT,
        Tok.DOT,
        Tok.FIELD,
        Tok.IDENT,
        Tok.NUMBER,
        Tok.NIL,
        Tok.RAW_STRING,
        Tok.STRING,
        Tok.VARIABLE,
        Tok.LPAREN,
    }
)
_SIMPLE_ESCAPES: Final = {"a": 7, "b": 8, "f": 12, "n": 10, "r": 13, "t": 9, "v": 11, "\\": 92}
_INT64_MIN: Final = -(2**63)
_INT64_MAX: Final = 2**63 - 1
_OCTAL: Final = re.compile(r"[+-]?0[0-7_]+")


@final
class _End:
    __slots__ = ("pos",)

    def __init__(self, pos: int) -> None:
        self.pos = pos


@final
class _Else:
    __slots__ = ("pos",)

    def __init__(self, pos: int) -> None:
        self.pos = pos


def _unquote(text: str, quote: str) -> tuple[bytes, int]:
    """Go's ``strconv.Unquote`` of a ``"..."`` or ``'.'`` literal body: (bytes, how many runes/escapes)."""
    out = bytearray()
    count, i, n = 0, 1, len(text) - 1
    while i < n:
        ch = text[i]
        count += 1
        if ch != "\\":
            if ch == quote:
                raise ValueError("invalid syntax")
            out += ch.encode()
            i += 1
            continue
        esc = text[i + 1] if i + 1 < n else ""
        if esc in _SIMPLE_ESCAPES:
            out.append(_SIMPLE_ESCAPES[esc])
            i += 2
        elif esc == quote:
            out += esc.encode()
            i += 2
        elif esc in ("x", "u", "U"):
            size = {"x": 2, "u": 4, "U": 8}[esc]
            digits = text[i + 2 : i + 2 + size]
            if len(digits) != size or not all(c in "0123456789abcdefABCDEF" for c in digits):
                raise ValueError("invalid syntax")
            code = int(digits, 16)
            if esc == "x":
                out.append(code)
            elif code > 0x10FFFF or 0xD800 <= code <= 0xDFFF:
                raise ValueError("invalid syntax")
            else:
                out += chr(code).encode()
            i += 2 + size
        elif esc and esc in "01234567":
            digits = text[i + 1 : i + 4]
            if len(digits) != 3 or not all(c in "01234567" for c in digits) or int(digits, 8) > 255:
                raise ValueError("invalid syntax")
            out.append(int(digits, 8))
            i += 4
        else:
            raise ValueError("invalid syntax")
    return bytes(out), count


def _parse_int(text: str) -> int | None:
    """Go's ``strconv.ParseInt(text, 0, 64)`` (prefixes 0x 0o 0b, a leading 0 is octal, underscores)."""
    try:
        if _OCTAL.fullmatch(text):
            value = int(text.replace("_", ""), 8)
        else:
            value = int(text, 0)
    except ValueError:
        return None
    return value if _INT64_MIN <= value <= _INT64_MAX else None


def _parse_float(text: str) -> float | None:
    body = text.lstrip("+-")
    try:
        if body[:2] in ("0x", "0X"):
            value = float.fromhex(text.replace("_", ""))
        else:
            value = float(text)
    except ValueError:
        return None
    return value


@final
class _Parser:
    def __init__(self, name: str, src: str, functions: Container[str]) -> None:
        self.name = name
        self.src = src
        self.functions = functions
        self.tokens = lex(name, src)
        self.i = 0
        self.vars = ["$"]
        self.range_depth = 0

    # ---- token access

    def fail(self, pos: int, message: str) -> NoReturn:
        raise TemplateSyntaxError(self.name, self.src, pos, message)

    def peek(self) -> Token:
        return self.tokens[self.i]

    def next(self) -> Token:
        token = self.tokens[self.i]
        if token.kind is not Tok.EOF:
            self.i += 1
        return token

    def backup(self) -> None:
        self.i -= 1

    def peek_non_space(self) -> Token:
        while self.tokens[self.i].kind is Tok.SPACE:
            self.i += 1
        return self.tokens[self.i]

    def next_non_space(self) -> Token:
        self.peek_non_space()
        return self.next()

    def last_end(self) -> int:
        token = self.tokens[self.i - 1]
        return token.pos + len(token.value)

    def unexpected(self, token: Token, context: str) -> NoReturn:
        self.fail(token.pos, f"unexpected {token.describe()} in {context}")

    def expect(self, kind: Tok, context: str) -> Token:
        token = self.next_non_space()
        if token.kind is not kind:
            self.unexpected(token, context)
        return token

    # ---- structure

    def parse(self) -> Body:
        root: list[Node] = []
        while self.peek().kind is not Tok.EOF:
            node = self.text_or_action()
            if isinstance(node, _End | _Else):
                self.fail(node.pos, "unexpected {{end}}" if isinstance(node, _End) else "unexpected {{else}}")
            root.append(node)
        return tuple(root)

    def item_list(self) -> tuple[Body, _End | _Else]:
        body: list[Node] = []
        while self.peek_non_space().kind is not Tok.EOF:
            node = self.text_or_action()
            if isinstance(node, _End | _Else):
                return tuple(body), node
            body.append(node)
        self.fail(len(self.src), "unexpected EOF")

    def text_or_action(self) -> Node | _End | _Else:
        token = self.next_non_space()
        if token.kind is Tok.TEXT:
            return Text(token.pos, token.pos + len(token.value), token.value)
        if token.kind is Tok.LEFT:
            return self.action(token)
        self.unexpected(token, "input")

    def action(self, left: Token) -> Node | _End | _Else:
        token = self.next_non_space()
        if token.kind is Tok.KEYWORD:
            word = token.value
            if word == "end":
                self.expect(Tok.RIGHT, "end")
                return _End(left.pos)
            if word == "else":
                if self.peek_non_space().value not in ("if", "with") or self.peek().kind is not Tok.KEYWORD:
                    self.expect(Tok.RIGHT, "else")
                return _Else(left.pos)
            if word in ("if", "with", "range"):
                return self.control(word, left.pos)
            if word in ("break", "continue"):
                closing = self.next_non_space()
                if closing.kind is not Tok.RIGHT:
                    self.unexpected(closing, "{{" + word + "}}")
                if not self.range_depth:
                    self.fail(token.pos, f"{{{{{word}}}}} outside {{{{range}}}}")
                return LoopControl(left.pos, self.last_end(), word)
            self.fail(
                token.pos, f"{{{{{word}}}}} is not supported in Oort's templates (only one template per text)"
            )
        self.backup()
        pipe = self.pipeline("command", Tok.RIGHT)
        return Action(left.pos, self.last_end(), pipe)

    def control(self, keyword: str, pos: int) -> Branch:
        saved = len(self.vars)
        try:
            pipe = self.pipeline(keyword, Tok.RIGHT)
            if keyword == "range":
                self.range_depth += 1
            body, following = self.item_list()
            if keyword == "range":
                self.range_depth -= 1
            orelse: Body | None = None
            if isinstance(following, _Else):
                nested = self.peek_non_space()
                if keyword in ("if", "with") and nested.kind is Tok.KEYWORD and nested.value == keyword:
                    # {{else if x}} is {{else}}{{if x}}...{{end}}{{end}} with the outer {{end}} implied.
                    self.next()
                    orelse = (self.control(keyword, following.pos),)
                else:
                    orelse, following = self.item_list()
                    if not isinstance(following, _End):
                        self.fail(following.pos, "expected end; found {{else}}")
            return Branch(pos, self.last_end(), keyword, pipe, body, orelse)
        finally:
            del self.vars[saved:]

    # ---- pipelines

    def declarations(self, context: str) -> tuple[list[str], bool]:
        decl: list[str] = []
        while self.peek_non_space().kind is Tok.VARIABLE:
            start = self.i
            variable = self.next()
            following = self.peek_non_space()
            if following.kind in (Tok.ASSIGN, Tok.DECLARE):
                self.next()
                decl.append(variable.value)
                self.vars.append(variable.value)
                return decl, following.kind is Tok.ASSIGN
            if following.kind is Tok.CHAR and following.value == ",":
                self.next()
                decl.append(variable.value)
                self.vars.append(variable.value)
                if context == "range" and len(decl) < 2:
                    if self.peek_non_space().kind in (Tok.VARIABLE, Tok.RIGHT, Tok.RPAREN):
                        continue
                    self.fail(following.pos, "range can only initialize variables")
                self.fail(following.pos, f"too many declarations in {context}")
            self.i = start
            break
        return decl, False

    def pipeline(self, context: str, end: Tok) -> Pipe:
        pos = self.peek_non_space().pos
        decl, is_assign = self.declarations(context)
        cmds: list[Command] = []
        while True:
            token = self.next_non_space()
            if token.kind is end:
                if not cmds:
                    self.fail(token.pos, f"missing value for {context}")
                for stage, cmd in enumerate(cmds[1:], start=2):
                    if isinstance(cmd.args[0], Literal | Dot | Nil):
                        self.fail(cmd.pos, f"non executable command in pipeline stage {stage}")
                return Pipe(pos, cmds[-1].end, tuple(decl), is_assign, tuple(cmds))
            if token.kind in _OPERAND_START:
                self.backup()
                cmds.append(self.command())
            else:
                self.unexpected(token, context)

    def command(self) -> Command:
        pos = self.peek_non_space().pos
        args: list[Node] = []
        while True:
            self.peek_non_space()
            operand = self.operand()
            if operand is not None:
                args.append(operand)
            token = self.next()
            if token.kind is Tok.SPACE:
                continue
            if token.kind in (Tok.RIGHT, Tok.RPAREN):
                self.backup()
            elif token.kind is not Tok.PIPE:
                self.unexpected(token, "operand")
            break
        if not args:
            self.fail(pos, "empty command")
        return Command(pos, args[-1].end, tuple(args))

    def operand(self) -> Node | None:
        node = self.term()
        if node is None or self.peek().kind is not Tok.FIELD:
            return node
        fields: list[str] = []
        while self.peek().kind is Tok.FIELD:
            fields.append(self.next().value[1:])
        end = self.last_end()
        if isinstance(node, Field):
            return Field(node.pos, end, node.names + tuple(fields))
        if isinstance(node, Variable):
            return Variable(node.pos, end, node.name, node.fields + tuple(fields))
        if isinstance(node, Literal | Nil | Dot):
            self.fail(node.pos, f"unexpected . after term {quote(self.src[node.pos : node.end])}")
        return Chain(node.pos, end, node, tuple(fields))

    def term(self) -> Node | None:
        token = self.next_non_space()
        kind, pos, end = token.kind, token.pos, token.pos + len(token.value)
        if kind is Tok.IDENT:
            if token.value not in self.functions:
                self.fail(pos, f'function "{token.value}" not defined')
            return Identifier(pos, end, token.value)
        if kind is Tok.DOT:
            return Dot(pos, end)
        if kind is Tok.NIL:
            return Nil(pos, end)
        if kind is Tok.VARIABLE:
            if token.value not in self.vars:
                self.fail(pos, f'undefined variable "{token.value}"')
            return Variable(pos, end, token.value, ())
        if kind is Tok.FIELD:
            return Field(pos, end, (token.value[1:],))
        if kind is Tok.BOOL:
            return Literal(pos, end, token.value == "true")
        if kind in (Tok.NUMBER, Tok.CHAR_CONSTANT):
            return self.number(token)
        if kind is Tok.LPAREN:
            pipe = self.pipeline("parenthesized pipeline", Tok.RPAREN)
            return Pipe(pos, self.last_end(), pipe.decl, pipe.is_assign, pipe.cmds)
        if kind is Tok.RAW_STRING:
            return Literal(pos, end, token.value[1:-1].replace("\r", ""))
        if kind is Tok.STRING:
            try:
                data, _ = _unquote(token.value, '"')
            except ValueError as exc:
                self.fail(pos, str(exc))
            return Literal(pos, end, data.decode("utf-8", "replace"))
        self.backup()
        return None

    def number(self, token: Token) -> Literal:
        text, pos, end = token.value, token.pos, token.pos + len(token.value)
        if token.kind is Tok.CHAR_CONSTANT:
            try:
                data, count = _unquote(text, "'")
            except ValueError as exc:
                self.fail(pos, str(exc))
            decoded = data.decode("utf-8", "replace")
            if count != 1 or len(decoded) != 1 and len(data) != 1:
                self.fail(pos, f"malformed character constant: {text}")
            code = data[0] if len(data) == 1 else ord(decoded)
            return Literal(pos, end, GoInt(code), code, float(code))
        if text.endswith("i"):
            self.fail(pos, f"complex number {text} is not supported")
        as_int = _parse_int(text)
        if as_int is not None:
            return Literal(pos, end, GoInt(as_int), as_int, float(as_int))
        as_float = _parse_float(text)
        if as_float is None:
            self.fail(pos, f'illegal number syntax: "{text}"')
        if not any(c in text for c in ".eEpP"):
            self.fail(pos, f"integer overflow: {quote(text)}")
        whole = as_float.is_integer() and _INT64_MIN <= as_float <= _INT64_MAX
        return Literal(pos, end, as_float, int(as_float) if whole else None, as_float)


def parse(name: str, src: str, functions: Container[str]) -> Body:
    """The tree of template ``src``; ``functions`` are the names a template may call.

    Raises:
      TemplateSyntaxError: with the line and column of the first problem.
    """
    try:
        return _Parser(name, src, functions).parse()
    except RecursionError:
        raise TemplateSyntaxError(name, src, 0, "template nests too deeply") from None
