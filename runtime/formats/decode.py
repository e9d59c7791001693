"""Decoding frames into rows: the ``Decoder`` contract every source uses, and its lookup by stream FORMAT.

A decoder is built once per stream (``make_decoder``) and called once per frame, whichever number of rules read
the stream. It returns the frame's rows or raises ``DecodeError`` with a message fit for ``last_exception``.
"""

from __future__ import annotations

from collections.abc import Callable

import orjson

from runtime.errors import EngineError, PlanError
from runtime.io.contract import Row
from runtime.sql.ast import StreamDef

Decoder = Callable[[bytes | str], list[Row]]
"""Frame payload (text or binary) -> rows. Raises DecodeError for a payload that is not valid for the format."""


class DecodeError(EngineError):
    """A frame could not be decoded; the frame is dropped and counted, the stream goes on."""

    code = 1004


def _json(payload: bytes | str) -> list[Row]:
    try:
        doc = orjson.loads(payload)
    except orjson.JSONDecodeError as exc:
        raise DecodeError(f"invalid JSON: {exc}") from None
    if isinstance(doc, dict):
        return [doc]
    if isinstance(doc, list) and doc and all(isinstance(item, dict) for item in doc):
        return doc
    raise DecodeError(f"expected a JSON object or an array of objects, got {_kind(doc)}")


def _kind(doc: object) -> str:
    if isinstance(doc, list):
        return "an empty array" if not doc else "an array with a non-object element"
    return {bool: "a boolean", int: "a number", float: "a number", str: "a string"}.get(type(doc), "null")


def make_decoder(stream: StreamDef) -> Decoder:
    """The decoder for a stream's FORMAT (and, later, its schema and STRICT_VALIDATION).

    Raises:
      PlanError: the format has no decoder.
    """
    fmt = stream.options.format.lower()
    if fmt == "json":
        return _json
    raise PlanError(f"stream {stream.name}: FORMAT {stream.options.format!r} cannot be decoded yet")
