"""Conversion, encoding and JSON text functions (eKuiper docs sqls/functions/transform_functions.md).

Datetimes are timezone-aware ``datetime.datetime`` values (UTC unless converted); numbers convert to them
as epoch milliseconds, as in eKuiper's ``cast.InterfaceToTime``.
"""

from __future__ import annotations

import base64
import datetime
import gzip
import zlib
from collections.abc import Iterable, Sequence
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import orjson

from runtime.sql.ast import Call, Literal
from runtime.sql.functions.base import FunctionDef, scalar, text, with_check
from runtime.sql.values import EvalContext, EvalError, go_str

_LAYOUTS = (
    "%Y-%m-%d %H:%M:%S.%f",
    "%Y-%m-%d %H:%M:%S",
    "%Y-%m-%dT%H:%M:%S.%f",
    "%Y-%m-%dT%H:%M:%S",
    "%Y-%m-%d",
)


def to_datetime(value: Any) -> datetime.datetime:
    """A datetime-convertible value (datetime, epoch ms number, date text) as an aware datetime."""
    if isinstance(value, datetime.datetime):
        return value if value.tzinfo else value.replace(tzinfo=datetime.UTC)
    if isinstance(value, int | float) and not isinstance(value, bool):
        try:
            return datetime.datetime.fromtimestamp(value / 1000, tz=datetime.UTC)
        except (OverflowError, OSError, ValueError):
            # Go's time.UnixMilli never fails; Python's datetime only spans years 1..9999 (and
            # the platform's localtime range), so out-of-range epochs are a conversion error.
            raise EvalError(f"cannot convert {go_str(value)} to datetime: out of range") from None
    if isinstance(value, str):
        try:
            parsed = datetime.datetime.fromisoformat(value.replace("Z", "+00:00"))
        except ValueError:
            parsed = None
        for layout in _LAYOUTS if parsed is None else ():
            try:
                parsed = datetime.datetime.strptime(value, layout)
                break
            except ValueError:
                continue
        if parsed is not None:
            return parsed if parsed.tzinfo else parsed.replace(tzinfo=datetime.UTC)
    raise EvalError(f"unsupported type to convert to time: {go_str(value)}")


def _to_bool(value: Any) -> bool:
    if isinstance(value, str):
        lowered = value.strip().lower()
        if lowered in ("true", "1", "t"):
            return True
        if lowered in ("false", "0", "f", ""):
            return False
        raise ValueError(f"invalid syntax {value}")
    return bool(value)


def _cast(a: Sequence[Any], ctx: EvalContext) -> Any:
    return cast_value(a[0], str(a[1]).lower())


def cast_value(value: Any, target: str) -> Any:
    """``cast(value, target)``: target is one of bigint, float, string, boolean, datetime, bytea (lower-case).

    Raises:
      EvalError: ``cannot convert <value> to <target>``.
    """
    try:
        if target == "bigint":
            if isinstance(value, str):
                return int(float(value)) if "." in value or "e" in value.lower() else int(value)
            if isinstance(value, datetime.datetime):
                return int(value.timestamp() * 1000)
            return int(value)
        if target == "float":
            return float(value)
        if target == "string":
            if isinstance(value, bytes):
                return value.decode()
            return text(value)
        if target == "boolean":
            return _to_bool(value)
        if target == "datetime":
            return to_datetime(value)
        if target == "bytea":
            if isinstance(value, bytes):
                return value
            if isinstance(value, str):
                return base64.b64decode(value, validate=True)
    except (ValueError, TypeError, OverflowError) as exc:
        raise EvalError(f"cannot convert {go_str(value)} to {target}: {exc}") from None
    raise EvalError(f"cannot convert {go_str(value)} to {target}")


_CAST_TYPES = ("bigint", "float", "string", "boolean", "datetime", "bytea")


def _check_cast(call: Call) -> str | None:
    target = call.args[1] if len(call.args) == 2 else None
    if isinstance(target, Literal) and str(target.value).lower() not in _CAST_TYPES:
        return f"Expect one of {', '.join(_CAST_TYPES)} type for parameter 2 of cast"
    return None


def _json_default(value: Any) -> Any:
    if isinstance(value, bytes):
        return base64.b64encode(value).decode()
    return go_str(value)


def _to_json(a: Sequence[Any], ctx: EvalContext) -> str:
    return orjson.dumps(a[0], default=_json_default).decode()


def _parse_json(a: Sequence[Any], ctx: EvalContext) -> Any:
    try:
        return orjson.loads(a[0] if isinstance(a[0], bytes) else text(a[0]))
    except orjson.JSONDecodeError as exc:
        raise EvalError(f"fail to parse json: {exc}") from None


def _base64_only(method: Any) -> None:
    if text(method).lower() != "base64":
        raise EvalError(f"unsupported encode type {text(method)}")


def _encode(a: Sequence[Any], ctx: EvalContext) -> str:
    _base64_only(a[1])
    data = a[0] if isinstance(a[0], bytes) else text(a[0]).encode()
    return base64.b64encode(data).decode()


def _decode(a: Sequence[Any], ctx: EvalContext) -> bytes:
    _base64_only(a[1])
    return base64.b64decode(text(a[0]))


def _compress(a: Sequence[Any], ctx: EvalContext) -> bytes:
    data, method = a[0] if isinstance(a[0], bytes) else text(a[0]).encode(), text(a[1]).lower()
    if method == "zlib":
        return zlib.compress(data)
    if method == "gzip":
        return gzip.compress(data)
    if method == "flate":
        packer = zlib.compressobj(wbits=-15)
        return packer.compress(data) + packer.flush()
    raise EvalError(f"unsupported compress method {method}")


def _decompress(a: Sequence[Any], ctx: EvalContext) -> bytes:
    data, method = a[0] if isinstance(a[0], bytes) else text(a[0]).encode(), text(a[1]).lower()
    try:
        if method == "zlib":
            return zlib.decompress(data)
        if method == "gzip":
            return gzip.decompress(data)
        if method == "flate":
            return zlib.decompress(data, wbits=-15)
    except (zlib.error, EOFError, gzip.BadGzipFile) as exc:  # not compressed data, or truncated
        raise EvalError(f"{method} decompress error: {exc}") from None
    raise EvalError(f"unsupported decompress method {method}")


def _convert_tz(a: Sequence[Any], ctx: EvalContext) -> datetime.datetime:
    name = text(a[1])
    try:
        zone: datetime.tzinfo = datetime.UTC if name in ("UTC", "Local") else ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise EvalError(f"unknown time zone {name}") from None
    return to_datetime(a[0]).astimezone(zone)


def convert_defs() -> Iterable[FunctionDef]:
    yield with_check(scalar("cast", 2, 2, _cast), _check_cast)
    yield scalar("to_json", 1, 1, _to_json, nulls=False)
    yield scalar("parse_json", 1, 1, _parse_json)
    yield scalar("encode", 2, 2, _encode)
    yield scalar("decode", 2, 2, _decode)
    yield scalar("compress", 2, 2, _compress)
    yield scalar("decompress", 2, 2, _decompress)
    yield scalar("convert_tz", 2, 2, _convert_tz)
    yield scalar("to_seconds", 1, 1, lambda a, ctx: int(to_datetime(a[0]).timestamp()))
