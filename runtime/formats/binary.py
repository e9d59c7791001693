"""The ``binary`` format for sinks: one message's ``self`` field sent as raw bytes (eKuiper's binary converter).

A ``binary`` stream decodes each payload to ``{"self": bytes}``; the encoder is its inverse, so
``SELECT self FROM s`` into a binary sink forwards the payloads unchanged. As in eKuiper a string value is
read as base64 (bytea columns travel as base64 through JSON), and a message without ``self`` is an error for
that message only. Oort also accepts a list holding exactly one row (a sink with ``sendSingle`` false and
a single result row), where eKuiper refuses every list.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Callable
from typing import Any

from runtime.errors import EncodeError

FIELD = "self"
"""The field a binary payload travels in, on both the decoding and the encoding side (eKuiper's DefaultField)."""


def encode(data: Any) -> bytes:
    """The bytes of ``data["self"]`` (``data`` a row, or a list of exactly one row).

    Raises:
      EncodeError: several rows in one message, no ``self`` field, or a value that is neither bytes nor
        base64 text.
    """
    row = data
    if isinstance(data, list):
        if len(data) != 1:
            raise EncodeError(
                f"binary format sends one row per message, got {len(data)} rows: set the sink's sendSingle to true"
            )
        row = data[0]
    if not isinstance(row, dict):
        raise EncodeError(f"binary format needs a row with field {FIELD!r}, got {type(row).__name__}")
    if FIELD not in row:
        raise EncodeError(f"binary format: field {FIELD} not exist")
    value = row[FIELD]
    if isinstance(value, bytes | bytearray | memoryview):
        return bytes(value)
    if isinstance(value, str):
        try:
            return base64.b64decode(value, validate=True)
        except binascii.Error:
            raise EncodeError(f"binary format: field {FIELD} is text that is not base64") from None
    raise EncodeError(f"binary format: cannot convert {type(value).__name__} field {FIELD} to bytes")


def make_encoder() -> Callable[[Any], bytes]:
    """The encoder for the format lookup in ``runtime.formats`` (binary has no options)."""
    return encode
