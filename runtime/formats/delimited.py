"""The ``delimited`` format: rows to delimiter-separated text lines, columns taken from the first row's keys."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

import orjson

from runtime.errors import EncodeError

_Row = dict[str, Any]


def format_value(value: Any) -> str:
    """One cell as Go's ``%v`` would print it, so files match eKuiper's (``21`` not ``21.0``, ``true``)."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        # Go's %v uses %g: integral floats print without a fraction below 1e21.
        if value.is_integer() and abs(value) < 1e21:
            return str(int(value))
        return repr(value)
    if isinstance(value, str):
        return value
    if isinstance(value, dict | list):
        return orjson.dumps(value).decode()
    if isinstance(value, bytes | bytearray):
        return bytes(value).decode("utf-8", errors="replace")
    return str(value)


def _quote(text: str, delimiter: str) -> str:
    # RFC 4180 quoting only when needed, so plain values stay byte-identical to eKuiper's output.
    if delimiter in text or '"' in text or "\n" in text or "\r" in text:
        return '"' + text.replace('"', '""') + '"'
    return text


def header_line(columns: Iterable[str], delimiter: str) -> str:
    """The header line (no newline) for ``columns``."""
    return delimiter.join(_quote(name, delimiter) for name in columns)


def row_line(row: _Row, columns: Iterable[str], delimiter: str) -> str:
    """One row as a line (no newline); a column missing from the row is an empty cell."""
    return delimiter.join(_quote(format_value(row.get(name)), delimiter) for name in columns)


def encode(data: Any, *, delimiter: str = ",", has_header: bool = False) -> bytes:
    """A row, or a list of rows, as lines joined by ``\\n`` (no trailing newline).

    Columns are the keys of the first row in order; later rows are written in those columns.

    Raises:
      EncodeError: ``data`` is neither a row nor a list of rows.
    """
    rows: list[_Row]
    if isinstance(data, dict):
        rows = [data]
    elif isinstance(data, list) and all(isinstance(row, dict) for row in data):
        rows = data
    else:
        raise EncodeError(f"delimited format needs a row or a list of rows, got {type(data).__name__}")
    if not rows:
        return b""
    columns = list(rows[0])
    lines = [header_line(columns, delimiter)] if has_header else []
    lines.extend(row_line(row, columns, delimiter) for row in rows)
    return "\n".join(lines).encode()


def make_encoder(*, delimiter: str, has_header: bool) -> Callable[[Any], bytes]:
    """The encoder for the format lookup in ``runtime.formats``, with its options bound."""

    def encode_delimited(data: Any) -> bytes:
        return encode(data, delimiter=delimiter, has_header=has_header)

    return encode_delimited
