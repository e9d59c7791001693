"""Decoding frames into rows: the ``Decoder`` contract every source uses, and its lookup by stream FORMAT.

A decoder is built once per stream (``make_decoder``) and called once per frame, whichever number of rules read
the stream. It returns the frame's rows or raises ``DecodeError`` with a message fit for ``last_exception``.
Everything that depends only on the stream (field names, delimiter, the strict-validation converter) is worked
out when the decoder is built, so a frame pays only for parsing it.

Formats: ``json`` (object -> one row, array of objects -> one row each), ``binary`` (the whole payload in
``self`` or the stream's single BYTEA field) and ``delimited`` (DELIMITER-separated cells into the schema's
field names, or ``col0``, ``col1``… when schemaless). Text and binary payloads are accepted by every format.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import orjson

from runtime.errors import DecodeError as DecodeError
from runtime.errors import PlanError, TypeMismatch
from runtime.formats import binary as binary_format
from runtime.formats.schema import Describe, row_converter, text_converter
from runtime.model import ErrorItem, Event, Row
from runtime.sql.ast import SimpleType, StreamDef
from runtime.sql.values import typed

Decoder = Callable[[bytes | str], list[Row]]
"""Frame payload (text or binary) -> rows. Raises DecodeError for a payload that is not valid for the format."""

DECODER_FORMATS = ("binary", "delimited", "json")
"""The stream FORMATs Oort can decode."""


def _kind(doc: object) -> str:
    if isinstance(doc, list):
        return "an empty array" if not doc else "an array with a non-object element"
    return {bool: "a boolean", int: "a number", float: "a number", str: "a string"}.get(type(doc), "null")


def _json(payload: bytes | str) -> list[Row]:
    return json_rows(payload)


def json_rows(payload: bytes | str, *, allow_empty: bool = False) -> list[Row]:
    """A JSON object -> one row, an array of objects -> its rows (``allow_empty``: ``[]`` -> no rows, for a
    file holding an empty table). Raises DecodeError for anything else, naming what it got."""
    try:
        doc = orjson.loads(payload)
    except orjson.JSONDecodeError as exc:
        # orjson reports bad UTF-8 in bytes as a JSON error; say what it is, users look for "UTF-8".
        raise DecodeError(f"invalid JSON: {exc}") from None
    if isinstance(doc, dict):
        return [doc]
    if isinstance(doc, list) and (doc or allow_empty) and all(isinstance(item, dict) for item in doc):
        return doc
    raise DecodeError(f"expected a JSON object or an array of objects, got {_kind(doc)}")


def _text(payload: bytes | str) -> str:
    if isinstance(payload, str):
        return payload
    try:
        return payload.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise DecodeError(f"invalid UTF-8 at byte {exc.start}: {exc.reason}") from None


RowCheck = Callable[[Row], Row]
"""A decoded row -> the row converted to the stream's declared types. Raises DecodeError on a mismatch."""


def row_check(
    stream: StreamDef | None, only: frozenset[str] | None = None, describe: Describe = typed
) -> RowCheck | None:
    """The strict-validation step of a stream (eKuiper's preprocessor), built once per stream or rule.

    Decoders apply it to what they parse; sources whose rows arrive as dicts (memory, replay's mock) apply
    it through ``checked_event``. ``only`` restricts it to the declared fields a rule reads
    (``SourceSpec.fields_read``: eKuiper prunes the schema so, and leaves the other fields unchecked).
    ``describe`` shows a mismatching value (``typed`` unless the source knows its values' Go types better).
    None when there is nothing to check: no definition, no ``STRICT_VALIDATION`` or no field to check.
    """
    if stream is None or not stream.options.strict_validation:
        return None
    fields = tuple(field for field in stream.fields if only is None or field.name in only)
    if not fields:
        return None
    convert = row_converter(fields, describe)

    def check(row: Row) -> Row:
        try:
            return convert(row)
        except TypeMismatch as exc:
            # eKuiper's wording, so sendError rows and last_exception read the same as there.
            raise DecodeError(f"error in preprocessor: {exc}") from None

    return check


def checked_event(check: RowCheck | None, row: Row, ts: int, meta: Row | None) -> Event | ErrorItem:
    """A dict row as an ``Event`` after ``check`` (see ``row_check``), or the ``ErrorItem`` of its mismatch."""
    if check is None:
        return Event(row, ts, meta)
    try:
        return Event(check(row), ts, meta)
    except DecodeError as exc:
        return ErrorItem(exc.message)


def _strict(decode: Decoder, check: RowCheck) -> Decoder:
    def strict(payload: bytes | str) -> list[Row]:
        return [check(row) for row in decode(payload)]

    return strict


def _binary_decoder(stream: StreamDef) -> Decoder:
    if stream.schemaless:
        field = binary_format.FIELD
    elif len(stream.fields) == 1 and stream.fields[0].type == SimpleType("bytea"):
        field = stream.fields[0].name
    else:
        raise PlanError(f"stream {stream.name}: FORMAT binary needs no schema or exactly one BYTEA field")

    def binary(payload: bytes | str) -> list[Row]:
        return [{field: payload.encode("utf-8") if isinstance(payload, str) else bytes(payload)}]

    return binary


def _delimited_decoder(stream: StreamDef) -> Decoder:
    delimiter = stream.options.delimiter or ","
    names = [field.name for field in stream.fields]
    convert: Callable[[int, str], Any] | None = None
    if stream.options.strict_validation and names:
        # Cells are text: convert them by declared type (a number from "21"), not "same kind" as for JSON.
        converters = [text_converter(field.type) for field in stream.fields]

        def convert(index: int, cell: str) -> Any:
            try:
                return converters[index](cell)
            except TypeMismatch as exc:
                raise DecodeError(
                    f"error in preprocessor: field {names[index]} type mismatch: {exc}"
                ) from None

    def delimited(payload: bytes | str) -> list[Row]:
        line = _text(payload).rstrip("\r\n")
        cells = line.split(delimiter)
        if not names:
            return [{f"col{index}": cell for index, cell in enumerate(cells)}]
        if len(cells) > len(names):
            raise DecodeError(
                f"delimited: {len(cells)} values for the {len(names)} fields of stream {stream.name}"
            )
        if convert is None:
            return [dict(zip(names, cells, strict=False))]
        return [{names[i]: convert(i, cell) for i, cell in enumerate(cells)}]

    return delimited


def make_decoder(stream: StreamDef) -> Decoder:
    """The decoder for a stream's FORMAT, schema and STRICT_VALIDATION, built once per stream.

    Without STRICT_VALIDATION (or without a schema) values are left as decoded; with both, JSON fields are
    converted to their declared types and a mismatch is a ``DecodeError`` in eKuiper's words
    (``error in preprocessor: field size type mismatch: cannot convert string(red) to int64``).

    Raises:
      PlanError: the format has no decoder, or a binary stream's schema is not a single BYTEA field.
    """
    fmt = stream.options.format.lower() or "json"
    if fmt == "json":
        check = row_check(stream)
        return _json if check is None else _strict(_json, check)
    if fmt == "binary":
        return _binary_decoder(stream)
    if fmt == "delimited":
        return _delimited_decoder(stream)
    raise PlanError(
        f"stream {stream.name}: FORMAT {stream.options.format!r} cannot be decoded; "
        f"supported: {', '.join(DECODER_FORMATS)}"
    )
