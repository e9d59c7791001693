"""The two ways a Go template fails: it does not parse, or executing it against one value fails."""

from __future__ import annotations

from runtime.errors import EncodeError, PlanError


def position(source: str, offset: int) -> tuple[int, int]:
    """1-based line and column (in characters) of ``offset`` in ``source``."""
    line_start = source.rfind("\n", 0, offset) + 1
    return source.count("\n", 0, offset) + 1, offset - line_start + 1


class TemplateSyntaxError(PlanError):
    """The template text is not a valid Go template (or uses a part Oort does not implement).

    The message reads like Go's, with the column added: ``template: sink:1:9: function "foo" not defined``.
    """

    def __init__(self, name: str, source: str, offset: int, message: str) -> None:
        self.line, self.column = position(source, offset)
        self.reason = message
        super().__init__(f"template: {name}:{self.line}:{self.column}: {message}")


class TemplateExecError(EncodeError):
    """Executing the template failed for one value (a failed function call, a bad index, a nil field).

    An ``EncodeError``: the message it was rendering for is dropped and counted, the rule goes on. The message
    reads like Go's: ``template: sink:1:3: executing "sink" at <.a.b>: nil pointer evaluating interface {}.b``
    (the column counts characters from 1, where Go counts bytes from 0).
    """

    def __init__(self, name: str, source: str, offset: int, context: str, message: str) -> None:
        self.line, self.column = position(source, offset)
        self.reason = message
        super().__init__(
            f'template: {name}:{self.line}:{self.column}: executing "{name}" at <{context}>: {message}'
        )
