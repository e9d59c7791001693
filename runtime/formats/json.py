"""The ``json`` format: rows to JSON bytes with orjson, eKuiper-compatible (UTF-8 kept, no ASCII escaping)."""

from __future__ import annotations

import base64
from collections.abc import Callable
from typing import Any

import orjson

from runtime.errors import EncodeError

# Rows only have string keys, but a value map from a JSON function may not; Go stringifies them too.
_OPTIONS = orjson.OPT_NON_STR_KEYS


def _default(value: Any) -> Any:
    # Go's encoding/json writes []byte as standard base64; bytea columns reach sinks as bytes.
    if isinstance(value, bytes | bytearray | memoryview):
        return base64.b64encode(value).decode("ascii")
    raise TypeError(f"value of type {type(value).__name__} is not JSON serializable")


def encode(data: Any) -> bytes:
    """One compact JSON document (``{"a":1}``), as eKuiper's ``json.Marshal`` writes it.

    Non-ASCII text stays UTF-8 (no ``\\u`` escapes); NaN and infinities become ``null``.

    Raises:
      EncodeError: a value that has no JSON form.
    """
    try:
        return orjson.dumps(data, default=_default, option=_OPTIONS)
    except orjson.JSONEncodeError as exc:
        raise EncodeError(f"json format cannot encode the message: {exc}") from None


def make_encoder() -> Callable[[Any], bytes]:
    """The encoder for the format lookup in ``runtime.formats`` (json has no options)."""
    return encode
