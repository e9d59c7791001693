"""Message formats (eKuiper ``FORMAT`` / sink ``format``): the lookup from a format name to its encoder.

One module per format (``json``, ``delimited``, ``binary``; decoders live in ``decode``) exposes ``make_encoder``; this
package only maps names to those modules, so adding a format is one module plus one line here.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from types import MappingProxyType
from typing import Any

from runtime.errors import PlanError
from runtime.formats import binary, delimited, json

Encoder = Callable[[Any], bytes]
"""Encodes one sink message (a row, a list of rows, or any JSON-able value) to bytes."""

_EncoderMaker = Callable[[str, bool], Encoder]


def _json_encoder(delimiter: str, has_header: bool) -> Encoder:
    return json.make_encoder()


def _binary_encoder(delimiter: str, has_header: bool) -> Encoder:
    return binary.make_encoder()


def _delimited_encoder(delimiter: str, has_header: bool) -> Encoder:
    return delimited.make_encoder(delimiter=delimiter, has_header=has_header)


# Read-only on purpose: the set of formats is fixed at import time (no module-level mutable state).
_ENCODERS: Mapping[str, _EncoderMaker] = MappingProxyType(
    {"json": _json_encoder, "delimited": _delimited_encoder, "binary": _binary_encoder}
)


def encoder_formats() -> list[str]:
    """The format names ``encoder`` accepts, sorted."""
    return sorted(_ENCODERS)


def encoder(format: str, *, delimiter: str = ",", has_header: bool = False) -> Encoder:
    """Look up the encoder for ``format`` once, for a sink to call on every message.

    Args:
      format: ``json``, ``delimited`` or ``binary`` (case-insensitive, as eKuiper accepts ``JSON``).
      delimiter: column separator for ``delimited``.
      has_header: ``delimited`` only: start each encoded message with a header line.

    Raises:
      PlanError: unknown format, or an empty delimiter.
    """
    maker = _ENCODERS.get(format.lower())
    if maker is None:
        known = ", ".join(encoder_formats())
        raise PlanError(f"unknown format {format!r} for encoding; known formats: {known}")
    if not delimiter:
        raise PlanError("delimiter must not be empty")
    return maker(delimiter, has_header)


def encode(data: Any, format: str, *, delimiter: str = ",", has_header: bool = False) -> bytes:
    """Encode one message; see ``encoder`` (prefer it on hot paths: it skips the per-call lookup).

    Raises:
      PlanError: unknown format.
    """
    return encoder(format, delimiter=delimiter, has_header=has_header)(data)
