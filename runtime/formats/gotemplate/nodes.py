"""The parse tree of a Go template: immutable nodes, each with its span in the source for error messages."""

from __future__ import annotations

from typing import final


class Node:
    """A parse tree node; ``pos``/``end`` delimit its source text (what an execution error quotes)."""

    __slots__ = ("end", "pos")

    def __init__(self, pos: int, end: int) -> None:
        self.pos = pos
        self.end = end


Body = tuple[Node, ...]


@final
class Text(Node):
    __slots__ = ("text",)

    def __init__(self, pos: int, end: int, text: str) -> None:
        super().__init__(pos, end)
        self.text = text


@final
class Pipe(Node):
    """``$x := cmd | cmd``: declared (or assigned) variables and the commands; also a ``( ... )`` operand."""

    __slots__ = ("cmds", "decl", "is_assign")

    def __init__(
        self, pos: int, end: int, decl: tuple[str, ...], is_assign: bool, cmds: tuple[Command, ...]
    ) -> None:
        super().__init__(pos, end)
        self.decl = decl
        self.is_assign = is_assign
        self.cmds = cmds


@final
class Command(Node):
    """One stage of a pipeline: an operand, or a function/method and its arguments."""

    __slots__ = ("args",)

    def __init__(self, pos: int, end: int, args: tuple[Node, ...]) -> None:
        super().__init__(pos, end)
        self.args = args


@final
class Action(Node):
    """``{{pipeline}}``: prints the pipeline's value unless it declares variables."""

    __slots__ = ("pipe",)

    def __init__(self, pos: int, end: int, pipe: Pipe) -> None:
        super().__init__(pos, end)
        self.pipe = pipe


@final
class Branch(Node):
    """``{{if}}``, ``{{with}}`` or ``{{range}}`` with its body and optional ``{{else}}`` body."""

    __slots__ = ("body", "keyword", "orelse", "pipe")

    def __init__(self, pos: int, end: int, keyword: str, pipe: Pipe, body: Body, orelse: Body | None) -> None:
        super().__init__(pos, end)
        self.keyword = keyword
        self.pipe = pipe
        self.body = body
        self.orelse = orelse


@final
class LoopControl(Node):
    """``{{break}}`` or ``{{continue}}`` inside a ``{{range}}``."""

    __slots__ = ("keyword",)

    def __init__(self, pos: int, end: int, keyword: str) -> None:
        super().__init__(pos, end)
        self.keyword = keyword


@final
class Field(Node):
    """``.a.b``: a chain of map keys (or, in Go, fields and methods) starting at dot."""

    __slots__ = ("names",)

    def __init__(self, pos: int, end: int, names: tuple[str, ...]) -> None:
        super().__init__(pos, end)
        self.names = names


@final
class Variable(Node):
    """``$x`` or ``$x.a.b``; ``$`` is the value the template was executed with."""

    __slots__ = ("fields", "name")

    def __init__(self, pos: int, end: int, name: str, fields: tuple[str, ...]) -> None:
        super().__init__(pos, end)
        self.name = name
        self.fields = fields


@final
class Chain(Node):
    """``(pipeline).a.b``: fields of a parenthesized or other non-field term."""

    __slots__ = ("fields", "node")

    def __init__(self, pos: int, end: int, node: Node, fields: tuple[str, ...]) -> None:
        super().__init__(pos, end)
        self.node = node
        self.fields = fields


@final
class Identifier(Node):
    """A function name."""

    __slots__ = ("name",)

    def __init__(self, pos: int, end: int, name: str) -> None:
        super().__init__(pos, end)
        self.name = name


@final
class Dot(Node):
    __slots__ = ()


@final
class Nil(Node):
    __slots__ = ()


@final
class Literal(Node):
    """A ``true``/``false``, string, raw string, number or character constant.

    ``value`` is what the literal stands for where any type is accepted (a string, a bool, a ``GoInt`` for an
    integer or character constant, a float for a number with ``.``/``e``); ``as_int``/``as_float`` are its
    value where a Go ``int`` or ``float64`` parameter wants one (None: not representable).
    """

    __slots__ = ("as_float", "as_int", "value")

    def __init__(
        self, pos: int, end: int, value: object, as_int: int | None = None, as_float: float | None = None
    ) -> None:
        super().__init__(pos, end)
        self.value = value
        self.as_int = as_int
        self.as_float = as_float
