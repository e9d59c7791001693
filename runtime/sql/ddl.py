"""Stream/table DDL semantics: option and type validation with eKuiper's messages, and the DESCRIBE text,
REST JSON and schema views of a ``StreamDef`` (eKuiper docs sqls/streams.md; api/restapi/streams.md and
rules.md).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import orjson
from lark import Token

from runtime.errors import SqlError
from runtime.sql.ast import ArrayType, FieldDef, FieldType, SimpleType, StreamDef, StreamKind, StreamOptions
from runtime.sql.values import go_str, go_type

SIMPLE_TYPES = ("bigint", "float", "string", "datetime", "boolean", "bytea")
FORMATS = ("json", "binary", "delimited", "urlencoded", "protobuf", "custom")
# eKuiper lists the keys in this order in its "unknown option keys" message.
OPTION_KEYS = (
    "DATASOURCE",
    "FORMAT",
    "KEY",
    "CONF_KEY",
    "SHARED",
    "STRICT_VALIDATION",
    "TYPE",
    "TIMESTAMP",
    "TIMESTAMP_FORMAT",
    "RETAIN_SIZE",
    "SCHEMAID",
    "EXTRA",
    "VERSION",
    "TEMP",
    "KIND",
    "DELIMITER",
)
_BOOL_OPTIONS = ("SHARED", "STRICT_VALIDATION", "TEMP")
# DESCRIBE prints the non-empty options in this order (§A.1).
_DESCRIBE_ORDER = (
    "CONF_KEY",
    "DATASOURCE",
    "FORMAT",
    "SCHEMAID",
    "KEY",
    "RETAIN_SIZE",
    "SHARED",
    "STRICT_VALIDATION",
    "TIMESTAMP",
    "TIMESTAMP_FORMAT",
    "TYPE",
    "EXTRA",
    "VERSION",
)
_JSON_KEYS = {
    "datasource": "datasource",
    "format": "format",
    "key": "key",
    "conf_key": "confKey",
    "type": "type",
    "strict_validation": "strictValidation",
    "timestamp": "timestamp",
    "timestamp_format": "timestampFormat",
    "shared": "shared",
    "schemaid": "schemaid",
    "version": "version",
    "extra": "extra",
    "temp": "temp",
    "retain_size": "retainSize",
    "kind": "kind",
    "delimiter": "delimiter",
}


def error_at(message: str, token: Token | None) -> SqlError:
    """A semantic SqlError positioned at ``token`` (the parser adds the excerpt)."""
    if token is None or token.line is None:
        return SqlError(message)
    return SqlError(message, line=token.line, column=token.column or 0)


def type_error(name: Token) -> SqlError:
    return error_at(
        f'found "{name}", expect valid stream field types'
        "(BIGINT | FLOAT | STRING | DATETIME | BOOLEAN | BYTEA | ARRAY | STRUCT).",
        name,
    )


def convert_default(name: Token, ftype: FieldType, value: Any) -> Any:
    """Check and convert a DEFAULT literal for a field of ``ftype`` (eKuiper allows four simple types)."""
    if not isinstance(ftype, SimpleType) or ftype.name not in ("bigint", "float", "string", "boolean"):
        shown = (
            ftype.name
            if isinstance(ftype, SimpleType)
            else ("*ast.ArrayType" if isinstance(ftype, ArrayType) else "*ast.RecType")
        )
        raise error_at(f"DEFAULT clause is not supported for {shown}", name)
    target = ftype.name
    if target == "string":
        return value if isinstance(value, str) else go_str(value)
    if target == "boolean":
        if isinstance(value, bool):
            return value
        if isinstance(value, str) and value.lower() in ("true", "false"):
            return value.lower() == "true"
        raise error_at(f"cannot convert {go_type(value)}({go_str(value)}) to bool", name)
    if isinstance(value, str):
        try:
            return int(value) if target == "bigint" else float(value)
        except ValueError:
            pass
    elif not isinstance(value, bool):
        if target == "float":
            return float(value)
        if isinstance(value, int):
            return value
    wanted = "int64" if target == "bigint" else "float64"
    raise error_at(f"cannot convert {go_type(value)}({go_str(value)}) to {wanted}", name)


def make_options(
    kind: StreamKind, fields: Sequence[FieldDef], raw: Sequence[tuple[Token, Token]]
) -> StreamOptions:
    """Validate the ``WITH (...)`` key/value pairs (values already unquoted) into ``StreamOptions``."""
    values: dict[str, Any] = {}
    for key_tok, value_tok in raw:
        key, value = key_tok.upper(), str(value_tok)
        if key not in OPTION_KEYS:
            raise error_at(f'found "{key}", unknown option keys({"|".join(OPTION_KEYS)}).', key_tok)
        if key in _BOOL_OPTIONS:
            if value.lower() not in ("true", "false"):
                raise error_at(f'found "{value}", expect TRUE/FALSE value in {key} option.', value_tok)
            values[key.lower()] = value.lower() == "true"
        elif key == "RETAIN_SIZE":
            try:
                values["retain_size"] = int(value)
            except ValueError:
                raise error_at(
                    f'found "{value}", expect number value in RETAIN_SIZE option.', value_tok
                ) from None
        elif key == "FORMAT":
            if value.lower() not in FORMATS:
                raise error_at(f"option 'format={value}' is invalid", value_tok)
            values["format"] = value
        elif key == "EXTRA":
            try:
                parsed = orjson.loads(value) if value else {}
            except orjson.JSONDecodeError:
                parsed = None
            if not isinstance(parsed, dict):
                raise error_at("invalid extra option, expect JSON string", value_tok)
            values["extra"] = value
        elif key == "KIND":
            if value.lower() not in ("scan", "lookup"):
                raise error_at(f'found "{value}", expect scan or lookup in KIND option.', value_tok)
            values["kind"] = value.lower()
        else:
            values[key.lower()] = value
    options = StreamOptions(**values)
    if options.format.lower() == "binary":
        if kind == "table":
            raise SqlError("'binary' format is not supported for table")
        if len(fields) > 1:
            raise SqlError("'binary' format stream can have only one field")
        if fields and fields[0].type != SimpleType("bytea"):
            raise SqlError("'binary' format stream field must be of bytea type")
    if kind == "table" and options.kind == "lookup" and options.type.lower() == "memory" and not options.key:
        raise SqlError('Option "key" is required for memory lookup table.')
    return options


# ------------------------------------------------------------------------------------------------ views


def type_text(ftype: FieldType) -> str:
    """Lower-case DESCRIBE spelling: ``bigint``, ``array(string)``, ``struct(A string, B bigint)``."""
    if isinstance(ftype, SimpleType):
        return ftype.name
    if isinstance(ftype, ArrayType):
        return f"array({type_text(ftype.element)})"
    return "struct(" + ", ".join(f"{f.name} {type_text(f.type)}" for f in ftype.fields) + ")"


def _option_text(options: StreamOptions, key: str) -> str:
    value = getattr(options, key.lower())
    if isinstance(value, bool):
        return "true" if value else ""
    if isinstance(value, int):
        return str(value) if value else ""
    return str(value)


def describe_text(stream: StreamDef) -> str:
    """The text answer of ``DESCRIBE STREAM|TABLE`` (§A.1)."""
    lines = ["Fields", "-" * 80]
    for field in stream.fields:
        line = f"{field.name}\t{type_text(field.type)}"
        if field.default is not None:
            line += f"\tDEFAULT\t{go_str(field.default)}"
        lines.append(line)
    lines.append("")
    for key in _DESCRIBE_ORDER:
        value = _option_text(stream.options, key)
        if value:
            lines.append(f"{key}: {value}")
    return "\n".join(lines) + "\n"


def _type_json(ftype: FieldType) -> Any:
    if isinstance(ftype, SimpleType):
        return ftype.name
    if isinstance(ftype, ArrayType):
        return {"Type": "array", "ElementType": _type_json(ftype.element)}
    return {"Type": "struct", "Fields": [_field_json(f) for f in ftype.fields]}


def _field_json(field: FieldDef) -> dict[str, Any]:
    out: dict[str, Any] = {"FieldType": _type_json(field.type), "Name": field.name}
    if field.default is not None:
        out["DefaultClause"] = go_str(field.default)
    return out


def stream_json(stream: StreamDef) -> dict[str, Any]:
    """The body of REST ``GET /streams/{name}`` (§E.2): only non-empty options, lower-camel keys."""
    options = {
        json_key: value
        for attr, json_key in _JSON_KEYS.items()
        if (value := getattr(stream.options, attr)) not in ("", 0, False)
    }
    return {
        "Name": stream.name,
        "StreamFields": [_field_json(f) for f in stream.fields] if stream.fields else None,
        "Options": options,
        "StreamType": 0 if stream.kind == "stream" else 1,
        "Statement": None,
    }


def _schema_json(ftype: FieldType) -> dict[str, Any]:
    if isinstance(ftype, SimpleType):
        return {"type": ftype.name}
    if isinstance(ftype, ArrayType):
        return {"type": "array", "items": _schema_json(ftype.element)}
    return {"type": "struct", "properties": {f.name: _schema_json(f.type) for f in ftype.fields}}


def stream_schema(stream: StreamDef) -> dict[str, Any]:
    """The body of REST ``GET /streams/{name}/schema``: a JSON-schema-like map (empty when schemaless)."""
    return {f.name: _schema_json(f.type) for f in stream.fields}
