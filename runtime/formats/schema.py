"""Strict validation (``STRICT_VALIDATION="true"``): convert a decoded row's fields to the stream's declared types.

The converters are compiled once per stream (``row_converter``), so a frame only pays for a dict walk. Messages
follow eKuiper's preprocessor (eKuiper docs sqls/streams.md, stream properties): ``field size type mismatch:
cannot convert string(red) to
int64``. Conversions are "same kind" as in eKuiper's ``cast.CONVERT_SAMEKIND``: a number never comes from text,
but an integral float is a BIGINT and a number is epoch milliseconds for a DATETIME.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Callable
from typing import Any

from runtime.errors import TypeMismatch
from runtime.sql.ast import ArrayType, FieldDef, FieldType, SimpleType, StructType
from runtime.sql.functions.convert import to_datetime
from runtime.sql.values import EvalError, typed

Convert = Callable[[Any], Any]
"""A declared type's converter: value -> converted value; raises ``TypeMismatch`` with eKuiper's wording."""

Describe = Callable[[Any], str]
"""How a mismatching value is shown: ``typed`` (``int64(3)``, ``string(red)``) unless a source knows better."""

RowConverter = Callable[[dict[str, Any]], dict[str, Any]]


def _cannot(value: Any, target: str, describe: Describe = typed) -> TypeMismatch:
    return TypeMismatch(f"cannot convert {describe(value)} to {target}")


def _bigint(value: Any, describe: Describe) -> Any:
    if isinstance(value, bool):
        raise _cannot(value, "int64", describe)
    if isinstance(value, int):
        return value
    if isinstance(value, float) and value.is_integer():
        return int(value)
    raise _cannot(value, "int64", describe)


def _float(value: Any, describe: Describe) -> Any:
    if isinstance(value, int | float) and not isinstance(value, bool):
        try:
            return float(value)
        except OverflowError:  # an int beyond float64's range
            raise _cannot(value, "float64", describe) from None
    raise _cannot(value, "float64", describe)


def _string(value: Any, describe: Describe = typed) -> Any:
    if isinstance(value, str):
        return value
    if isinstance(value, bytes | bytearray):
        return bytes(value).decode("utf-8", errors="replace")
    raise _cannot(value, "string", describe)


def _boolean(value: Any, describe: Describe) -> Any:
    if isinstance(value, bool):
        return value
    raise _cannot(value, "bool", describe)


def _datetime(value: Any, describe: Describe = typed) -> Any:
    if isinstance(value, bool):
        raise _cannot(value, "datetime", describe)
    try:
        return to_datetime(value)
    except EvalError:
        raise _cannot(value, "datetime", describe) from None


def _bytea(value: Any, describe: Describe) -> Any:
    if isinstance(value, bytes | bytearray):
        return bytes(value)
    if isinstance(value, str):
        # JSON carries bytes as base64 text, as eKuiper's cast.ToBytes does.
        try:
            return base64.b64decode(value, validate=True)
        except (binascii.Error, ValueError):
            raise _cannot(value, "bytea", describe) from None
    raise _cannot(value, "bytea", describe)


_SIMPLE: dict[str, Callable[[Any, Describe], Any]] = {
    "bigint": _bigint,
    "float": _float,
    "string": _string,
    "boolean": _boolean,
    "datetime": _datetime,
    "bytea": _bytea,
}


def _array(element: Convert, describe: Describe) -> Convert:
    def convert(value: Any) -> Any:
        if not isinstance(value, list):
            raise TypeMismatch(f"expect array but found {describe(value)}")
        return [None if item is None else element(item) for item in value]

    return convert


def _struct(fields: tuple[FieldDef, ...], describe: Describe) -> Convert:
    inner = row_converter(fields, describe)

    def convert(value: Any) -> Any:
        if not isinstance(value, dict):
            raise TypeMismatch(f"expect map but found {describe(value)}")
        return inner(value)

    return convert


def type_converter(field_type: FieldType, describe: Describe = typed) -> Convert:
    """The converter for one declared type (nested arrays and structs included)."""
    if isinstance(field_type, SimpleType):
        simple = _SIMPLE[field_type.name.lower()]
        return lambda value: simple(value, describe)
    if isinstance(field_type, ArrayType):
        return _array(type_converter(field_type.element, describe), describe)
    if isinstance(field_type, StructType):
        return _struct(field_type.fields, describe)
    raise TypeError(f"unknown field type {field_type!r}")


def row_converter(fields: tuple[FieldDef, ...], describe: Describe = typed) -> RowConverter:
    """Convert a row's declared fields in place of a copy; undeclared keys and nulls are kept as they are.

    ``describe`` shows a mismatching value in the message (``typed`` by default).

    Raises (when called):
      TypeMismatch: ``field <name> type mismatch: <reason>`` for the first field that does not convert.
    """
    converters = [(field.name, type_converter(field.type, describe)) for field in fields]

    def convert(row: dict[str, Any]) -> dict[str, Any]:
        out = dict(row)
        for name, conv in converters:
            value = out.get(name)
            if value is None:
                continue
            try:
                out[name] = conv(value)
            except TypeMismatch as exc:
                raise TypeMismatch(f"field {name} type mismatch: {exc}") from None
        return out

    return convert


def _text_bigint(cell: str) -> Any:
    try:
        return int(cell.strip())
    except ValueError:
        raise _cannot(cell, "int64") from None


def _text_float(cell: str) -> Any:
    try:
        return float(cell.strip())
    except ValueError:
        raise _cannot(cell, "float64") from None


def _text_boolean(cell: str) -> Any:
    lowered = cell.strip().lower()
    if lowered in ("true", "1", "t"):
        return True
    if lowered in ("false", "0", "f"):
        return False
    raise _cannot(cell, "bool")


def _text_cannot(target: str) -> Convert:
    def convert(cell: Any) -> Any:
        raise _cannot(cell, target)

    return convert


_TEXT: dict[str, Convert] = {
    "bigint": _text_bigint,
    "float": _text_float,
    "string": _string,
    "boolean": _text_boolean,
    "datetime": _datetime,
    "bytea": lambda cell: cell.encode("utf-8"),
}


def text_converter(field_type: FieldType) -> Convert:
    """The converter of one delimited cell (text) to its declared type; arrays and structs never fit a cell."""
    if isinstance(field_type, SimpleType):
        return _TEXT[field_type.name.lower()]
    return _text_cannot("array" if isinstance(field_type, ArrayType) else "struct")
