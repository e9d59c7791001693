"""Go ``text/template`` for eKuiper's ``dataTemplate`` and templated sink properties (MQTT ``topic``, REST
``url`` and headers): a parser, an executor with Go's semantics and printing, and eKuiper's function set.

Layout: ``lexer`` -> ``parser`` (-> ``nodes``) make the tree; ``execute`` runs it; ``values`` is Go's view of
values (``%v``, truth, JSON), ``printf`` Go's fmt; ``builtins``, ``sprig_text``, ``sprig_data`` the functions;
``template`` ties them together. Only the names below are public.
"""

from __future__ import annotations

from runtime.formats.gotemplate.errors import TemplateExecError as TemplateExecError
from runtime.formats.gotemplate.errors import TemplateSyntaxError as TemplateSyntaxError
from runtime.formats.gotemplate.template import FUNCS as FUNCS
from runtime.formats.gotemplate.template import GoTemplate as GoTemplate
from runtime.formats.gotemplate.template import PropertyTemplate as PropertyTemplate
from runtime.formats.gotemplate.template import has_template as has_template
from runtime.formats.gotemplate.template import render_property as render_property

__all__ = [
    "FUNCS",
    "GoTemplate",
    "PropertyTemplate",
    "TemplateExecError",
    "TemplateSyntaxError",
    "has_template",
    "render_property",
]
