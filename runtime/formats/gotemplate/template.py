"""The public face of Go templates: ``GoTemplate`` (parse once, execute per message) and the helpers for
sink properties that may hold ``{{...}}`` (``PropertyTemplate``, ``render_property``, ``has_template``).

The function table is eKuiper's: Go's builtins, sprig's functions (the part listed in
docs/connectors/data-template.md) and eKuiper's ``json`` and ``base64``.
"""

from __future__ import annotations

import re
from typing import Any, Final, final

from runtime.formats.gotemplate.builtins import BUILTINS
from runtime.formats.gotemplate.execute import execute
from runtime.formats.gotemplate.funcs import FuncMap, table
from runtime.formats.gotemplate.parser import parse
from runtime.formats.gotemplate.sprig_data import DATA_FUNCS
from runtime.formats.gotemplate.sprig_text import TEXT_FUNCS

FUNCS: Final[FuncMap] = table(BUILTINS.items(), TEXT_FUNCS, DATA_FUNCS.items())
"""Every function a template may call, by name (sprig's ``slice`` replaces Go's, as in eKuiper)."""

# eKuiper decides whether a property is a template with this very pattern (`{{(.*?)}}`, no newline inside).
_TEMPLATE_MARK: Final = re.compile(r"\{\{.*?\}\}")


@final
class GoTemplate:
    """A Go ``text/template`` parsed once, executed for each value (a row, or the list of rows of a message).

    Raises (when built):
      TemplateSyntaxError: the text is not a valid template; the message has the line and column.
    """

    __slots__ = ("_root", "name", "source")

    def __init__(self, source: str, *, name: str = "sink") -> None:
        self.name = name
        self.source = source
        self._root = parse(name, source, FUNCS)

    def execute(self, data: Any) -> str:
        """The template's output for ``data`` (``.`` and ``$`` in the template).

        Raises:
          TemplateExecError: execution failed (an ``EncodeError``: the message alone is lost).
        """
        return execute(self.name, self.source, self._root, FUNCS, data)

    def __repr__(self) -> str:
        return f"<GoTemplate {self.name} {self.source!r}>"


def has_template(text: str) -> bool:
    """True when ``text`` holds a ``{{...}}`` action on one line: eKuiper renders such a property per message."""
    return _TEMPLATE_MARK.search(text) is not None


@final
class PropertyTemplate:
    """A connector property that may be a template (an MQTT topic, a REST url or header): parse it once with
    ``PropertyTemplate(text)``, then ``render(row)`` per message. A text without ``{{...}}`` renders as itself.

    Raises (when built):
      TemplateSyntaxError: the property looks like a template but does not parse.
    """

    __slots__ = ("_template", "text")

    def __init__(self, text: str, *, name: str = "sink") -> None:
        self.text = text
        self._template = GoTemplate(text, name=name) if has_template(text) else None

    @property
    def is_template(self) -> bool:
        return self._template is not None

    def render(self, data: Any) -> str:
        """The property's value for one message's row (or list of rows).

        Raises:
          TemplateExecError: the template failed for this value.
        """
        return self.text if self._template is None else self._template.execute(data)


def render_property(template_source: str, row: Any) -> str:
    """Render one property value for ``row`` (parsing it each call: prefer ``PropertyTemplate`` per message).

    Raises:
      TemplateSyntaxError: the property looks like a template but does not parse.
      TemplateExecError: the template failed for this row.
    """
    return PropertyTemplate(template_source).render(row)
