"""The sink property ``dataTemplate``: a Go template that turns each sink message into the text that is sent.

As eKuiper's transform step (internal/topo/node/transform_op.go): with ``sendSingle`` the template runs once
per row, else once per emission over the list of rows. Its output then goes out as it is, a ``str`` message
that sinks send without their format's encoder, when the action's ``format`` is a text format (json,
delimited, urlencoded). For any other format, and whenever ``dataField``, ``fields`` or ``excludeFields`` is
set too, the output is read back as JSON and those properties apply to it: the message is a row or a list of
rows again, encoded by the sink as usual.

A template that fails for one message (a function error, a field of a nil value, output that should be JSON
and is not) does not fail the rule: that message becomes a ``RenderFailure``, which sinks refuse with an
``EncodeError`` (counted, dropped, the rule goes on), as eKuiper counts the error and drops the message.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, Final, final

import orjson

from runtime.errors import EncodeError
from runtime.formats.gotemplate import GoTemplate, TemplateExecError, TemplateSyntaxError
from runtime.model import Row

TEXT_FORMATS: Final = frozenset({"json", "delimited", "urlencoded"})
"""eKuiper's ``xsql.IsTextFormat``: with these formats the template output is sent as it is."""


@final
class Rendered(str):
    """A ``dataTemplate`` output sent as it is (a ``str`` message) that keeps the row, or the rows, it was
    rendered from in ``data``: what eKuiper renders a connector's templated properties (an MQTT topic, a REST
    url or header) against. ``message_data`` reads it."""

    data: Row | list[Row]

    def __new__(cls, text: str, data: Row | list[Row]) -> Rendered:
        rendered = super().__new__(cls, text)
        rendered.data = data
        return rendered


@final
class RenderFailure(str):
    """A message whose ``dataTemplate`` failed: an empty ``str`` that carries the reason.

    Sinks get the text of a ``str`` message through ``message_text`` (or ``str.encode``), which raise
    ``EncodeError`` for it, so the failure is counted on the sink and the message dropped.
    """

    reason: str

    def __new__(cls, reason: str) -> RenderFailure:
        failure = super().__new__(cls, "")
        failure.reason = reason
        return failure

    def encode(self, encoding: str = "utf-8", errors: str = "strict") -> bytes:
        raise EncodeError(self.reason)

    def __repr__(self) -> str:
        return f"RenderFailure({self.reason!r})"


def message_text(message: str) -> str:
    """The text of a ``str`` sink message (a rendered ``dataTemplate``), to send as it is.

    Raises:
      EncodeError: the template failed for this message (``RenderFailure``).
    """
    if isinstance(message, RenderFailure):
        raise EncodeError(message.reason)
    return str(message)  # a plain str: some libraries (orjson) refuse str subclasses such as Rendered


def message_data(message: Row | list[Row] | str) -> Any:
    """What a connector renders its templated properties against for one message: the row (``sendSingle``) or
    the rows it holds; for a ``dataTemplate`` output, the row or rows the template was rendered from, as
    eKuiper computes dynamic properties before the template. A ``str`` without them (read back from a sink
    cache page) is parsed as JSON when it is JSON, else given as it is."""
    if isinstance(message, Rendered):
        return message.data
    if isinstance(message, str):
        try:
            return orjson.loads(str(message))
        except orjson.JSONDecodeError:
            return message
    return message


def rendered_rows(message: str) -> list[Row]:
    """A rendered message read back as rows, for sinks that take rows rather than bytes (memory, and the
    replay collector), as eKuiper's tuple collectors decode it with the JSON converter: an object is one row,
    an array its objects.

    Raises:
      EncodeError: the template failed, or its output is not a JSON object or array of objects.
    """
    text = message_text(message)
    try:
        value = orjson.loads(text)
    except orjson.JSONDecodeError as exc:
        raise EncodeError(f"the dataTemplate output is not JSON ({exc}): {text[:200]!r}") from None
    if isinstance(value, dict):
        return [value]
    if isinstance(value, list) and all(isinstance(item, dict) for item in value):
        return value
    raise EncodeError(
        f"the dataTemplate output is neither a JSON object nor an array of objects: {text[:200]!r}"
    )


def parse_data_template(props: Mapping[str, Any], problems: list[str]) -> GoTemplate | None:
    """The action's ``dataTemplate``, parsed (None when absent or empty); a problem is appended to ``problems``."""
    source = props.get("dataTemplate")
    if source is None or source == "":
        return None
    if not isinstance(source, str):
        problems.append(f"sink property 'dataTemplate' must be a string, got {source!r}")
        return None
    try:
        return GoTemplate(source)
    except TemplateSyntaxError as exc:
        problems.append(f"sink property 'dataTemplate': {exc}")
        return None


def _select(value: Any, data_field: str, fields: Sequence[str] | None, exclude: Sequence[str] | None) -> Any:
    """eKuiper's ``TransItem`` on the decoded template output: dataField, then fields or excludeFields."""
    if data_field:
        if isinstance(value, dict):
            value = value.get(data_field)
        elif isinstance(value, list):
            if not value:
                return None
            first = value[0]
            if not isinstance(first, dict):
                raise EncodeError(f"fail to decode data {value!r}")
            value = first.get(data_field)
        else:
            raise EncodeError(f"fail to decode data {value!r}")
    if isinstance(value, list):
        if not all(isinstance(item, dict) for item in value):
            raise EncodeError(f"unsupported type {value!r}")
        rows: list[Row] = value
        if fields is not None:
            return [{name: row.get(name) for name in fields} for row in rows]
        if exclude is not None:
            return [{k: v for k, v in row.items() if k not in exclude} for row in rows]
        return rows
    if isinstance(value, dict):
        if fields is not None:
            return {name: value.get(name) for name in fields}
        if exclude is not None:
            return {k: v for k, v in value.items() if k not in exclude}
    return value


def render(
    template: GoTemplate,
    data: Row | list[Row],
    *,
    format: str,
    data_field: str,
    fields: Sequence[str] | None,
    exclude_fields: Sequence[str] | None,
) -> Row | list[Row] | str | None:
    """One sink message from ``data`` (a row with sendSingle, else the rows of one emission), or None when
    dataField selects nothing. Never raises: a failure is returned as a ``RenderFailure``."""
    try:
        text = template.execute(data)
    except TemplateExecError as exc:
        return RenderFailure(f"fail to encode data with dataTemplate: {exc}")
    selects = bool(data_field) or fields is not None or exclude_fields is not None
    if not selects and format.lower() in TEXT_FORMATS:
        return Rendered(text, data)
    try:
        value = orjson.loads(text)
    except orjson.JSONDecodeError as exc:
        return RenderFailure(f"fail to decode data {text[:200]!r} after applying dataTemplate: {exc}")
    try:
        value = _select(value, data_field, fields, exclude_fields)
    except EncodeError as exc:
        return RenderFailure(f"fail to TransItem data after applying dataTemplate: {exc}")
    if value is None:
        return None
    if isinstance(value, dict) or (isinstance(value, list) and all(isinstance(v, dict) for v in value)):
        return value
    return RenderFailure(f"invalid transform result type {value!r} after applying dataTemplate")
