"""Executing a parsed Go template against one value, with Go's ``text/template`` semantics.

Dot starts as the value, ``$`` is the value throughout; ``.a.b`` looks up map keys (a missing key is
``MISSING``, printed ``<no value>``; a field of a nil value is an error); ``if``/``with`` test Go's truth;
``range`` walks slices in order and maps in sorted key order; variables live until the ``{{end}}`` of the
structure that declared them. Any failure raises ``TemplateExecError`` naming the action that failed.
"""

from __future__ import annotations

from typing import Any, Final, NoReturn, final

from runtime.formats.gotemplate.errors import TemplateExecError
from runtime.formats.gotemplate.funcs import PARAM_TYPES, FuncError, FuncMap
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
from runtime.formats.gotemplate.values import MISSING, GoInt, is_true, sorted_items, sprint, type_name


@final
class _NoFinal:
    """No value comes in from a previous pipeline stage (Go's ``missingVal``)."""

    __slots__ = ()


_NO_FINAL: Final = _NoFinal()


class _Break(Exception):
    pass


class _Continue(Exception):
    pass


@final
class Executor:
    """One execution: the output so far and the variable stack. Not reused across executions."""

    __slots__ = ("funcs", "name", "out", "src", "vars")

    def __init__(self, name: str, src: str, funcs: FuncMap, data: Any) -> None:
        self.name = name
        self.src = src
        self.funcs = funcs
        self.out: list[str] = []
        self.vars: list[list[Any]] = [["$", data]]

    def fail(self, node: Node, message: str) -> NoReturn:
        context = self.src[node.pos : node.end]
        raise TemplateExecError(self.name, self.src, node.pos, context, message)

    # ---- variables

    def var_value(self, node: Node, name: str) -> Any:
        for entry in reversed(self.vars):
            if entry[0] == name:
                return entry[1]
        self.fail(node, f"undefined variable: {name}")

    def set_var(self, node: Node, name: str, value: Any) -> None:
        for entry in reversed(self.vars):
            if entry[0] == name:
                entry[1] = value
                return
        self.fail(node, f"undefined variable: {name}")

    # ---- walking

    def walk(self, dot: Any, body: Body) -> None:
        for node in body:
            kind = type(node)
            if kind is Text:
                assert isinstance(node, Text)
                self.out.append(node.text)
            elif kind is Action:
                assert isinstance(node, Action)
                value = self.pipeline(dot, node.pipe)
                if not node.pipe.decl:
                    self.out.append("<no value>" if value is MISSING else sprint(value))
            elif kind is Branch:
                assert isinstance(node, Branch)
                if node.keyword == "range":
                    self.walk_range(dot, node)
                else:
                    self.walk_if_or_with(dot, node)
            elif kind is LoopControl:
                assert isinstance(node, LoopControl)
                raise _Break if node.keyword == "break" else _Continue

    def walk_if_or_with(self, dot: Any, node: Branch) -> None:
        mark = len(self.vars)
        try:
            value = self.pipeline(dot, node.pipe)
            if is_true(value):
                self.walk(value if node.keyword == "with" else dot, node.body)
            elif node.orelse is not None:
                self.walk(dot, node.orelse)
        finally:
            del self.vars[mark:]

    def _iteration_pairs(self, node: Branch, value: Any) -> list[tuple[Any, Any]]:
        if isinstance(value, list | tuple):
            return [(GoInt(i), item) for i, item in enumerate(value)]
        if isinstance(value, dict):
            return sorted_items(value)
        if isinstance(value, bytes | bytearray):
            return [(GoInt(i), item) for i, item in enumerate(value)]
        if isinstance(value, int) and not isinstance(value, bool):
            if len(node.pipe.decl) > 1:
                self.fail(node.pipe, f"can't use {value} to iterate over more than one variable")
            return [(GoInt(i), GoInt(i)) for i in range(value)]
        if value is None or value is MISSING:
            return []
        self.fail(node.pipe, f"range can't iterate over {sprint(value)}")

    def walk_range(self, dot: Any, node: Branch) -> None:
        mark = len(self.vars)
        try:
            value = self.pipeline(dot, node.pipe)
            pairs = self._iteration_pairs(node, value)
            inner = len(self.vars)
            decl, assign = node.pipe.decl, node.pipe.is_assign
            for index, item in pairs:
                if decl:
                    if assign:
                        self.set_var(node, decl[0], index if len(decl) > 1 else item)
                        if len(decl) > 1:
                            self.set_var(node, decl[1], item)
                    else:
                        self.vars[-1][1] = item
                        if len(decl) > 1:
                            self.vars[-2][1] = index
                try:
                    self.walk(item, node.body)
                except _Continue:
                    pass
                except _Break:
                    break
                finally:
                    del self.vars[inner:]
            if not pairs and node.orelse is not None:
                self.walk(dot, node.orelse)
        finally:
            del self.vars[mark:]

    # ---- evaluation

    def pipeline(self, dot: Any, pipe: Pipe) -> Any:
        value: Any = _NO_FINAL
        for cmd in pipe.cmds:
            value = self.command(dot, cmd, value)
            if value is None:
                value = MISSING  # Go digs a nil interface{} down to the invalid value
        for name in pipe.decl:
            if pipe.is_assign:
                self.set_var(pipe, name, value)
            else:
                self.vars.append([name, value])
        return value

    def not_a_function(self, args: tuple[Node, ...], final: Any) -> None:
        if len(args) > 1 or final is not _NO_FINAL:
            self.fail(args[0], f"can't give argument to non-function {self.src[args[0].pos : args[0].end]}")

    def command(self, dot: Any, cmd: Command, final: Any) -> Any:
        first = cmd.args[0]
        if isinstance(first, Field):
            return self.field_chain(dot, dot, first, first.names, cmd.args, final)
        if isinstance(first, Chain):
            return self.chain(dot, first, cmd.args, final)
        if isinstance(first, Identifier):
            return self.call(dot, first, cmd, cmd.args, final)
        if isinstance(first, Variable):
            return self.variable(dot, first, cmd.args, final)
        self.not_a_function(cmd.args, final)
        if isinstance(first, Pipe):
            return self.pipeline(dot, first)
        if isinstance(first, Literal):
            return first.value
        if isinstance(first, Dot):
            return dot
        self.fail(first, "nil is not a command")

    def chain(self, dot: Any, node: Chain, args: tuple[Node, ...], final: Any) -> Any:
        if isinstance(node.node, Nil):
            self.fail(node, f"indirection through explicit nil in {self.src[node.pos : node.end]}")
        receiver = self.arg(dot, "any", node.node)
        return self.field_chain(dot, receiver, node, node.fields, args, final)

    def variable(self, dot: Any, node: Variable, args: tuple[Node, ...], final: Any) -> Any:
        value = self.var_value(node, node.name)
        if not node.fields:
            self.not_a_function(args, final)
            return value
        return self.field_chain(dot, value, node, node.fields, args, final)

    def field_chain(
        self, dot: Any, receiver: Any, node: Node, names: tuple[str, ...], args: tuple[Node, ...], final: Any
    ) -> Any:
        looked_up = False
        for name in names[:-1]:
            receiver = self.field(name, node, (), _NO_FINAL, receiver, looked_up)
            looked_up = True
        return self.field(names[-1], node, args, final, receiver, looked_up)

    def field(
        self,
        name: str,
        node: Node,
        args: tuple[Node, ...],
        final: Any,
        receiver: Any,
        looked_up: bool = False,
    ) -> Any:
        """One ``.name`` step; ``looked_up``: the receiver came out of a map, so Go knows it as ``interface {}``."""
        if receiver is MISSING:
            return MISSING
        if receiver is None:
            self.fail(node, f"nil pointer evaluating interface {{}}.{name}")
        if isinstance(receiver, dict):
            if len(args) > 1 or final is not _NO_FINAL:
                self.fail(node, f"{name} is not a method but has arguments")
            return receiver.get(name, MISSING)
        self.fail(
            node,
            f"can't evaluate field {name} in type {'interface {}' if looked_up else type_name(receiver)}",
        )

    def call(self, dot: Any, ident: Identifier, cmd: Node, args: tuple[Node, ...], final: Any) -> Any:
        name = ident.name
        func = self.funcs[name]
        given = args[1:]
        count = len(given) + (final is not _NO_FINAL)
        fixed = len(func.params) - 1 if func.variadic else len(func.params)
        if func.variadic and count < fixed:
            self.fail(ident, f"wrong number of args for {name}: want at least {fixed} got {len(given)}")
        if not func.variadic and count != fixed:
            self.fail(ident, f"wrong number of args for {name}: want {fixed} got {count}")
        if name in ("and", "or"):  # Go evaluates their arguments lazily: they short-circuit
            return self.and_or(dot, name, given, final)
        argv = [
            self.arg(dot, func.params[min(i, len(func.params) - 1)], node) for i, node in enumerate(given)
        ]
        if final is not _NO_FINAL:
            kind = func.params[count - 1] if count - 1 < fixed else func.params[-1]
            argv.append(self.validate(final, kind, cmd))
        try:
            return func.body(*argv)
        except FuncError as exc:
            self.fail(cmd, f"error calling {name}: {exc}")
        except RecursionError:
            self.fail(cmd, f"error calling {name}: value nests too deeply")

    def and_or(self, dot: Any, name: str, given: tuple[Node, ...], final: Any) -> Any:
        value: Any = MISSING
        for node in given:
            value = self.arg(dot, "value", node)
            if is_true(value) == (name == "or"):
                return value
        return final if final is not _NO_FINAL else value

    def validate(self, value: Any, kind: str, node: Node) -> Any:
        """Go's ``validateType``: a computed value passed to a parameter of ``kind``."""
        if value is MISSING:
            if kind == "value":
                return MISSING
            if kind in ("any", "list", "map"):
                return None
            self.fail(node, f"invalid value; expected {PARAM_TYPES[kind]}")
        if kind in ("any", "value"):
            return value
        ok = {
            "string": isinstance(value, str),
            "int": isinstance(value, int) and not isinstance(value, bool),
            "float": isinstance(value, int | float) and not isinstance(value, bool),
            "bool": isinstance(value, bool),
            "list": value is None or isinstance(value, list | tuple),
            "map": value is None or isinstance(value, dict),
        }[kind]
        if not ok:
            got = (
                "interface {}" if value is None else type_name(value)
            )  # a nil from a map is a nil interface {}
            self.fail(node, f"wrong type for value; expected {PARAM_TYPES[kind]}; got {got}")
        return float(value) if kind == "float" else value

    def arg(self, dot: Any, kind: str, node: Node) -> Any:
        """Go's ``evalArg``: one argument node evaluated for a parameter of ``kind``."""
        if isinstance(node, Dot):
            return self.validate(dot, kind, node)
        if isinstance(node, Nil):
            if kind in ("any", "list", "map"):
                return None
            if kind == "value":
                return MISSING
            self.fail(node, f"cannot assign nil to {PARAM_TYPES[kind]}")
        if isinstance(node, Field):
            return self.validate(self.field_chain(dot, dot, node, node.names, (node,), _NO_FINAL), kind, node)
        if isinstance(node, Variable):
            return self.validate(self.variable(dot, node, (), _NO_FINAL), kind, node)
        if isinstance(node, Pipe):
            return self.validate(self.pipeline(dot, node), kind, node)
        if isinstance(node, Identifier):
            return self.validate(self.call(dot, node, node, (node,), _NO_FINAL), kind, node)
        if isinstance(node, Chain):
            return self.validate(self.chain(dot, node, (), _NO_FINAL), kind, node)
        assert isinstance(node, Literal)
        return self.literal(node, kind)

    def literal(self, node: Literal, kind: str) -> Any:
        value = node.value
        text = self.src[node.pos : node.end]
        if kind in ("any", "value"):
            return value
        if kind == "bool":
            if isinstance(value, bool):
                return value
            self.fail(node, f"expected bool; found {text}")
        if kind == "string":
            if isinstance(value, str):
                return value
            self.fail(node, f"expected string; found {text}")
        number = not isinstance(value, bool | str)
        if kind == "int":
            if number and node.as_int is not None:
                return GoInt(node.as_int)
            self.fail(node, f"expected integer; found {text}")
        if kind == "float":
            if number and node.as_float is not None:
                return node.as_float
            self.fail(node, f"expected float; found {text}")
        self.fail(node, f"can't handle {text} for arg of type {PARAM_TYPES[kind]}")


def execute(name: str, src: str, root: Body, funcs: FuncMap, data: Any) -> str:
    """The output of template ``root`` (parsed from ``src``) applied to ``data``.

    Raises:
      TemplateExecError: a failed function call, a field of a nil value, an index out of range, an undefined
        variable, a value that cannot be ranged over or passed to a function.
    """
    executor = Executor(name, src, funcs, data)
    try:
        executor.walk(data, root)
    except RecursionError:
        raise TemplateExecError(name, src, 0, "", "template nests too deeply") from None
    return "".join(executor.out)
