"""How Go sees a template's values: their types, their truth, ``fmt``'s ``%v`` text and ``encoding/json``.

Rows map onto Go's ``map[string]interface {}`` as eKuiper builds them: ``dict`` is a map, ``list`` a slice,
``str`` a string, ``bool`` a bool, ``float`` a float64, ``None`` a nil interface and ``int`` an int64. A ``GoInt``
is Go's plain ``int`` (template literals, ``len``, ``until``), which only shows in type names. ``MISSING`` is
Go's invalid ``reflect.Value``: what a missing map key yields, printed as ``<no value>``.
"""

from __future__ import annotations

import base64
import math
from typing import Any, Final, final


@final
class _Missing:
    __slots__ = ()

    def __repr__(self) -> str:
        return "<no value>"

    def __bool__(self) -> bool:
        return False


MISSING: Final = _Missing()
"""A value that is not there at all (a missing map key, an unset result): Go's invalid ``reflect.Value``."""


@final
class GoInt(int):
    """An ``int`` in Go's sense (a literal ``3``, the result of ``len``); a plain ``int`` is an int64."""

    __slots__ = ()


def type_name(value: Any) -> str:
    """Go's ``%T`` of a value, as in the messages of Go's template errors."""
    if value is None or value is MISSING:
        return "<nil>"
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, GoInt):
        return "int"
    if isinstance(value, int):
        return "int64"
    if isinstance(value, float):
        return "float64"
    if isinstance(value, str):
        return "string"
    if isinstance(value, bytes | bytearray):
        return "[]uint8"
    if isinstance(value, dict):
        return "map[string]interface {}"
    if isinstance(value, list | tuple):
        return "[]interface {}"
    return type(value).__name__


def kind_name(value: Any) -> str:
    """Go's ``reflect.Kind`` name of a value (sprig ``kindOf``)."""
    if value is None or value is MISSING:
        return "invalid"
    if isinstance(value, dict):
        return "map"
    if isinstance(value, list | tuple | bytes | bytearray):
        return "slice"
    return type_name(value)


def is_true(value: Any) -> bool:
    """Go template truth (``if``, ``with``, ``and``, ``or``, ``not``): false, 0, nil and empty are false."""
    if value is None or value is MISSING:
        return False
    if isinstance(value, bool | int | float):
        return value != 0
    if isinstance(value, str | bytes | bytearray | list | tuple | dict):
        return len(value) > 0
    return True


def is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


# ---- floats: strconv.FormatFloat(x, fmt, prec, 64) -----------------------------------------------


def _shortest_digits(x: float) -> tuple[str, int]:
    """The shortest digits that read back as ``|x|`` and the decimal point position (x = 0.DIGITS * 10**dp).

    Python's ``repr`` and Go's Ryu both pick the shortest round-tripping digits closest to the value.
    """
    mantissa, _, exp = repr(abs(x)).partition("e")
    int_part, _, frac = mantissa.partition(".")
    digits = int_part + frac
    dp = len(int_part) + (int(exp) if exp else 0)
    stripped = digits.lstrip("0")
    dp -= len(digits) - len(stripped)
    return stripped.rstrip("0"), (dp if stripped else 0)


def _fixed_digits(x: float, count: int) -> tuple[str, int]:
    """``count`` significant digits of ``|x|``, correctly rounded (ties to even, as Go), trailing zeros trimmed."""
    mantissa, _, exp = format(abs(x), f".{count - 1}e").partition("e")
    digits = mantissa.replace(".", "").rstrip("0")
    return digits, (int(exp) + 1 if digits else 0)


def _fmt_e(neg: bool, digits: str, dp: int, prec: int, letter: str) -> str:
    out = "-" if neg else ""
    out += digits[0] if digits else "0"
    if prec > 0:
        out += "." + digits[1 : prec + 1].ljust(prec, "0")
    exp = dp - 1 if digits else 0
    sign = "-" if exp < 0 else "+"
    return f"{out}{letter}{sign}{abs(exp):02d}"


def _fmt_f(neg: bool, digits: str, dp: int, prec: int) -> str:
    out = "-" if neg else ""
    out += digits[:dp].ljust(dp, "0") if dp > 0 else "0"
    if prec > 0:
        frac = "".join(digits[dp + i] if 0 <= dp + i < len(digits) else "0" for i in range(prec))
        out += "." + frac
    return out


def format_float(x: float, fmt: str = "g", prec: int = -1) -> str:
    """Go's ``strconv.FormatFloat(x, fmt, prec, 64)`` for fmt ``e E f g G`` (prec -1: shortest).

    ``format_float(x)`` is what ``{{.x}}`` and ``%v`` print: ``3``, ``3.5``, ``1e+06``, ``1e-05``, ``+Inf``.
    """
    if math.isnan(x):
        return "NaN"
    if math.isinf(x):
        return "+Inf" if x > 0 else "-Inf"
    neg = math.copysign(1.0, x) < 0
    lower = fmt.lower()
    if prec >= 0 and lower in ("e", "f"):
        # Python's fixed-precision e/f formatting is correctly rounded like Go's and lays out digits the same.
        return format(x, f".{prec}{fmt}")
    letter = "E" if fmt in ("E", "G") else "e"
    shortest = prec < 0
    if shortest:
        digits, dp = _shortest_digits(x) if x != 0 else ("", 0)
        prec = len(digits) if lower == "g" else (max(len(digits) - 1, 0) if lower == "e" else 0)
        if lower == "f":
            return _fmt_f(neg, digits, dp, max(len(digits) - dp, 0))
        if lower == "e":
            return _fmt_e(neg, digits, dp, prec, letter)
    else:
        prec = prec or 1
        digits, dp = _fixed_digits(x, prec) if x != 0 else ("", 0)
    # %g: %e when the exponent is < -4 or >= the precision (6 for the shortest form).
    eprec = prec
    if eprec > len(digits) >= dp:
        eprec = len(digits)
    if shortest:
        eprec = 6
    exp = dp - 1
    if exp < -4 or exp >= eprec:
        return _fmt_e(neg, digits, dp, min(prec, len(digits)) - 1, letter)
    if prec > dp:
        prec = len(digits)
    return _fmt_f(neg, digits, dp, max(prec - dp, 0))


def format_hex_float(x: float, upper: bool) -> str:
    """Go's ``%x`` of a float64 (shortest form): ``0x1.8p+01``; ``%X`` is the same in upper case."""
    if math.isnan(x) or math.isinf(x):
        return format_float(x)
    text = float.hex(x)  # '-0x1.8000000000000p+1'
    sign = "-" if text.startswith("-") else ""
    mantissa, _, exp = text.lstrip("-")[2:].partition("p")
    head, _, frac = mantissa.partition(".")
    frac = frac.rstrip("0")
    number = int(exp)
    out = f"{sign}0x{head}{'.' + frac if frac else ''}p{'-' if number < 0 else '+'}{abs(number):02d}"
    return out.upper() if upper else out


# ---- fmt %v ----------------------------------------------------------------------------------------


def _key_order(key: Any) -> tuple[int, Any]:
    if isinstance(key, bool):
        return (0, key)
    if is_number(key):
        return (1, key)
    if isinstance(key, str):
        return (2, key)
    return (3, str(key))


def sorted_items(mapping: dict[Any, Any]) -> list[tuple[Any, Any]]:
    """A map's entries in the order Go prints and ranges over them (``fmtsort``: sorted keys)."""
    return sorted(mapping.items(), key=lambda item: _key_order(item[0]))


def sprint(value: Any) -> str:
    """``fmt.Sprint`` of one value (``%v``): ``map[a:1 b:[x y]]``, ``<nil>``, floats as ``format_float``."""
    if isinstance(value, str):
        return value
    if value is None:
        return "<nil>"
    if value is MISSING:
        return "<no value>"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(int(value))
    if isinstance(value, float):
        return format_float(value)
    if isinstance(value, dict):
        return "map[" + " ".join(f"{sprint(k)}:{sprint(v)}" for k, v in sorted_items(value)) + "]"
    if isinstance(value, list | tuple):
        return "[" + " ".join(sprint(item) for item in value) + "]"
    if isinstance(value, bytes | bytearray):
        return "[" + " ".join(str(b) for b in value) + "]"
    return str(value)


# ---- strconv.Quote ---------------------------------------------------------------------------------

_SHORT_ESCAPES: Final = {
    "\a": "\\a",
    "\b": "\\b",
    "\f": "\\f",
    "\n": "\\n",
    "\r": "\\r",
    "\t": "\\t",
    "\v": "\\v",
}


def _escape_rune(ch: str, quote: str, ascii_only: bool) -> str:
    if ch == quote or ch == "\\":
        return "\\" + ch
    code = ord(ch)
    if (code < 0x80 or not ascii_only) and (ch == " " or ch.isprintable()):
        return ch
    if ch in _SHORT_ESCAPES:
        return _SHORT_ESCAPES[ch]
    if code < 0x20 or code == 0x7F:
        return f"\\x{code:02x}"
    if 0xD800 <= code <= 0xDFFF:
        code = 0xFFFD
    return f"\\u{code:04x}" if code < 0x10000 else f"\\U{code:08x}"


def quote(text: str, *, ascii_only: bool = False) -> str:
    """Go's ``strconv.Quote`` (``%q``): a double-quoted Go string literal, printable runes kept as they are."""
    return '"' + "".join(_escape_rune(ch, '"', ascii_only) for ch in text) + '"'


def quote_rune(code: int, *, ascii_only: bool = False) -> str:
    """Go's ``strconv.QuoteRune`` (``%q`` of an integer): ``'a'``; invalid code points become U+FFFD."""
    if code < 0 or code > 0x10FFFF or 0xD800 <= code <= 0xDFFF:
        code = 0xFFFD
    return "'" + _escape_rune(chr(code), "'", ascii_only) + "'"


# ---- encoding/json ---------------------------------------------------------------------------------

_JSON_ESCAPES: Final = {
    **{code: f"\\u{code:04x}" for code in range(0x20)},
    ord('"'): '\\"',
    ord("\\"): "\\\\",
    ord("\b"): "\\b",
    ord("\f"): "\\f",
    ord("\n"): "\\n",
    ord("\r"): "\\r",
    ord("\t"): "\\t",
    0x2028: "\\u2028",
    0x2029: "\\u2029",
}
_JSON_HTML_ESCAPES: Final = {**_JSON_ESCAPES, ord("<"): "\\u003c", ord(">"): "\\u003e", ord("&"): "\\u0026"}


class JsonUnsupported(ValueError):
    """A value ``encoding/json`` refuses (NaN, infinities, a type with no JSON form)."""


def _json_string(text: str, escape_html: bool) -> str:
    return '"' + text.translate(_JSON_HTML_ESCAPES if escape_html else _JSON_ESCAPES) + '"'


def _json_float(x: float) -> str:
    if math.isnan(x) or math.isinf(x):
        raise JsonUnsupported(f"json: unsupported value: {format_float(x)}")
    size = abs(x)
    if size != 0 and (size < 1e-6 or size >= 1e21):
        text = format_float(x, "e")
        if len(text) >= 4 and text[-4] == "e" and text[-3] == "-" and text[-2] == "0":
            text = text[:-2] + text[-1]  # e-07 -> e-7
        return text
    return format_float(x, "f")


def _json(value: Any, out: list[str], escape_html: bool, indent: str | None, depth: int) -> None:
    if value is None or value is MISSING:
        out.append("null")
    elif isinstance(value, bool):
        out.append("true" if value else "false")
    elif isinstance(value, int):
        out.append(str(int(value)))
    elif isinstance(value, float):
        out.append(_json_float(value))
    elif isinstance(value, str):
        out.append(_json_string(value, escape_html))
    elif isinstance(value, bytes | bytearray):
        out.append('"' + base64.b64encode(value).decode("ascii") + '"')
    elif isinstance(value, dict | list | tuple):
        is_map = isinstance(value, dict)
        entries = sorted_items(value) if isinstance(value, dict) else list(enumerate(value))
        out.append("{" if is_map else "[")
        if entries:
            inner = None if indent is None else "\n" + indent * (depth + 1)
            for i, (key, item) in enumerate(entries):
                if i:
                    out.append(",")
                if inner is not None:
                    out.append(inner)
                if is_map:
                    out.append(_json_string(sprint(key), escape_html))
                    out.append(":" if indent is None else ": ")
                _json(item, out, escape_html, indent, depth + 1)
            if indent is not None:
                out.append("\n" + indent * depth)
        out.append("}" if is_map else "]")
    else:
        raise JsonUnsupported(f"json: unsupported type: {type_name(value)}")


def marshal_json(value: Any, *, escape_html: bool = True, indent: str | None = None) -> str:
    """Go's ``json.Marshal`` (``json.MarshalIndent(v, "", indent)`` with ``indent``): map keys sorted, ``<>&``
    escaped unless ``escape_html`` is off, floats as Go writes them (``3``, ``1e+21``, ``1e-7``).

    Raises:
      JsonUnsupported: NaN, an infinity or a value with no JSON form.
    """
    out: list[str] = []
    _json(value, out, escape_html, indent, 0)
    return "".join(out)
