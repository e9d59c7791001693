"""Go's ``fmt.Sprintf``, ``fmt.Sprint`` and ``fmt.Sprintln`` over template values (``printf``, ``print``, ...).

Verbs: ``%v %+v %#v %T %t %d %b %o %O %x %X %c %q %U %e %E %f %F %g %G %s %%``, the flags ``+ - # 0 space``,
width and precision (also ``*``). Mistakes print as Go prints them: ``%!d(string=hi)``, ``%!s(MISSING)``,
``%!(EXTRA int=1)``; explicit argument indexes (``%[2]d``) as Go reads them. One deliberate difference: an
integer from a row takes the float verbs (``%.1f`` of 25 is ``25.0``), since eKuiper's rows hold JSON numbers
as float64 where Oort keeps integers.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import attrs

from runtime.formats.gotemplate.values import (
    MISSING,
    GoInt,
    format_float,
    format_hex_float,
    quote,
    quote_rune,
    sorted_items,
    type_name,
)


@attrs.define
class _Spec:
    plus: bool = False
    minus: bool = False
    sharp: bool = False
    space: bool = False
    zero: bool = False
    plus_v: bool = False
    sharp_v: bool = False
    width: int | None = None
    prec: int | None = None

    def pad(self, text: str, *, numeric: bool = False) -> str:
        width = self.width
        if width is None or len(text) >= width:
            return text
        if self.minus:
            return text + " " * (width - len(text))
        if self.zero and not numeric:
            return "0" * (width - len(text)) + text
        return " " * (width - len(text)) + text


def _integer(value: int, verb: str, spec: _Spec) -> str:
    negative = value < 0
    magnitude = -value if negative else value
    base = {"d": 10, "v": 10, "b": 2, "o": 8, "O": 8, "x": 16, "X": 16}[verb]
    digits = format(magnitude, {2: "b", 8: "o", 10: "d", 16: "x" if verb == "x" else "X"}[base])
    if spec.prec is not None:
        if spec.prec == 0 and magnitude == 0:
            return spec.pad("", numeric=True)
        digits = digits.rjust(spec.prec, "0")
    elif spec.zero and not spec.minus and spec.width is not None:
        room = spec.width - (1 if negative or spec.plus or spec.space else 0)
        digits = digits.rjust(room, "0")
    prefix = ""
    if spec.sharp:
        if base == 2:
            prefix = "0b"
        elif base == 8 and not digits.startswith("0"):
            prefix = "0"
        elif base == 16:
            prefix = "0x" if verb == "x" else "0X"
    if verb == "O":
        prefix = "0o"
    sign = "-" if negative else ("+" if spec.plus else (" " if spec.space else ""))
    return spec.pad(sign + prefix + digits, numeric=True)


def _float(value: float, verb: str, spec: _Spec) -> str:
    if verb in ("x", "X"):
        number = format_hex_float(value, verb == "X")
    else:
        fmt = {"v": "g", "F": "f"}.get(verb, verb)
        default = 6 if fmt in ("e", "E", "f") else -1
        number = format_float(value, fmt, spec.prec if spec.prec is not None else default)
    signed = number if number[0] in "+-" else "+" + number
    if spec.space and signed[0] == "+" and not spec.plus:
        signed = " " + signed[1:]
    if signed[1] in "IN":  # Inf, NaN: no zero padding; no sign on NaN unless asked for
        if signed[1] == "N" and not spec.space and not spec.plus:
            signed = signed[1:]
        return spec.pad(signed, numeric=True)
    if spec.plus or signed[0] != "+":
        if spec.zero and not spec.minus and spec.width is not None and spec.width > len(signed):
            return signed[0] + "0" * (spec.width - len(signed)) + signed[1:]
        return spec.pad(signed, numeric=True)
    if spec.zero and not spec.minus and spec.width is not None:
        return signed[1:].rjust(spec.width, "0")
    return spec.pad(signed[1:], numeric=True)


_FLOAT_VERBS = frozenset("eEfFgG")


def _truncate(text: str, spec: _Spec) -> str:
    return text[: spec.prec] if spec.prec is not None else text


def _hex_text(data: bytes, verb: str, spec: _Spec) -> str:
    digits = "%02x" if verb == "x" else "%02X"
    parts = [digits % b for b in data]
    if spec.space:
        prefix = ("0x" if verb == "x" else "0X") if spec.sharp else ""
        return spec.pad(" ".join(prefix + p for p in parts))
    prefix = ("0x" if verb == "x" else "0X") if spec.sharp and parts else ""
    return spec.pad(prefix + "".join(parts))


def _string(value: str, verb: str, spec: _Spec) -> str:
    if verb == "v" and spec.sharp_v:
        return spec.pad(quote(value))
    if verb in ("v", "s"):
        return spec.pad(_truncate(value, spec))
    if verb in ("x", "X"):
        return _hex_text(_truncate(value, spec).encode(), verb, spec)
    if verb == "q":
        text = _truncate(value, spec)
        if (
            spec.sharp
            and "`" not in text
            and all(c == "\t" or (c.isprintable() and c != "\ufeff") for c in text)
        ):
            return spec.pad("`" + text + "`")
        return spec.pad(quote(text, ascii_only=spec.plus))
    return _bad_verb(value, verb, spec)


def _go_syntax(value: Any) -> str:
    if value is None or value is MISSING:
        return "interface {}(nil)"
    if isinstance(value, str):
        return quote(value)
    if isinstance(value, dict):
        inner = ", ".join(f"{_go_syntax(k)}:{_go_syntax(v)}" for k, v in sorted_items(value))
        return f"{type_name(value)}{{{inner}}}"
    if isinstance(value, list | tuple):
        return f"{type_name(value)}{{{', '.join(_go_syntax(v) for v in value)}}}"
    if isinstance(value, bytes | bytearray):
        return "[]byte{" + ", ".join(f"0x{b:x}" for b in value) + "}"
    return format_value(value, "v", _Spec())


def _bad_verb(value: Any, verb: str, spec: _Spec) -> str:
    if value is None or value is MISSING:
        return f"%!{verb}(<nil>)"
    return f"%!{verb}({type_name(value)}={format_value(value, 'v', spec)})"


def format_value(value: Any, verb: str, spec: _Spec, nested: bool = False) -> str:
    """One operand of ``Sprintf`` formatted with ``verb`` (Go's ``printArg``/``printValue``); ``nested``: an
    element of a slice or map, where nil prints ``<nil>`` whatever the verb."""
    if verb == "T":
        return spec.pad(type_name(value))
    if value is None or value is MISSING:
        return spec.pad("<nil>") if verb == "v" or nested else _bad_verb(value, verb, spec)
    if verb == "v" and spec.sharp_v:
        return spec.pad(_go_syntax(value))
    if isinstance(value, bool):
        if verb in ("t", "v"):
            return spec.pad("true" if value else "false")
        return _bad_verb(value, verb, spec)
    if isinstance(value, int):
        if verb in ("v", "d", "b", "o", "O", "x", "X"):
            return _integer(value, verb, spec)
        if verb in _FLOAT_VERBS and not isinstance(value, GoInt):
            # A JSON integer: eKuiper's row holds it as float64, so `printf "%.1f" .t` must print 25.0.
            return _float(float(value), verb, spec)
        if verb == "c":
            return spec.pad(
                chr(value) if 0 <= value <= 0x10FFFF and not 0xD800 <= value <= 0xDFFF else "\ufffd"
            )
        if verb == "q":
            return spec.pad(quote_rune(value, ascii_only=spec.plus))
        if verb == "U":
            text = f"U+{value:04X}" if value >= 0 else f"U+{value & 0xFFFFFFFFFFFFFFFF:04X}"
            if spec.sharp and 0 <= value <= 0x10FFFF and chr(value).isprintable():
                text += f" '{chr(value)}'"
            return spec.pad(text)
        return _bad_verb(value, verb, spec)
    if isinstance(value, float):
        if verb in ("v", "b", "g", "G", "x", "X", "e", "E", "f", "F"):
            if verb == "b":
                return _bad_verb(value, verb, spec)
            return _float(value, verb, spec)
        return _bad_verb(value, verb, spec)
    if isinstance(value, str):
        return _string(value, verb, spec)
    if isinstance(value, bytes | bytearray):
        if verb in ("s", "q", "x", "X"):
            return _string(bytes(value).decode("utf-8", "replace"), verb, spec)
        return "[" + " ".join(format_value(b, verb, spec, True) for b in value) + "]"
    if isinstance(value, dict):
        parts = (
            f"{format_value(k, verb, spec, True)}:{format_value(v, verb, spec, True)}"
            for k, v in sorted_items(value)
        )
        return "map[" + " ".join(parts) + "]"
    if isinstance(value, list | tuple):
        return "[" + " ".join(format_value(item, verb, spec, True) for item in value) + "]"
    return spec.pad(str(value))


def _number(fmt: str, i: int) -> tuple[int | None, int]:
    """Go's ``parsenum``: a width or precision; an absurd one swallows the rest of the format (``NOVERB``)."""
    number: int | None = None
    while i < len(fmt) and "0" <= fmt[i] <= "9":
        if number is not None and number > 1_000_000:
            return None, len(fmt)
        number = (number or 0) * 10 + int(fmt[i])
        i += 1
    return number, i


def _star(args: Sequence[Any], argnum: int) -> tuple[int | None, int]:
    if argnum >= len(args):
        return None, argnum
    value = args[argnum]
    if isinstance(value, bool) or not isinstance(value, int) or abs(value) > 1_000_000:
        return None, argnum + 1
    return value, argnum + 1


def _arg_index(fmt: str, i: int, argnum: int, count: int) -> tuple[int, int, bool, bool]:
    """An explicit argument index ``[n]`` at ``i``: (argument number, new i, found, well formed)."""
    if i >= len(fmt) or fmt[i] != "[":
        return argnum, i, False, True
    close = fmt.find("]", i + 1)
    if close < 0 or len(fmt) - i < 3:
        return argnum, i + 1, False, False
    digits = fmt[i + 1 : close]
    if not digits.isdigit() or not digits.isascii():
        return argnum, close + 1, False, False
    index = int(digits) - 1
    if 0 <= index < count:
        return index, close + 1, True, True
    return argnum, close + 1, True, False


def sprintf(fmt: str, args: Sequence[Any]) -> str:
    """Go's ``fmt.Sprintf(fmt, args...)``."""
    out: list[str] = []
    i, n, argnum = 0, len(fmt), 0
    reordered = False
    while i < n:
        j = fmt.find("%", i)
        if j < 0:
            out.append(fmt[i:])
            break
        out.append(fmt[i:j])
        i = j + 1
        spec = _Spec()
        while i < n and fmt[i] in "#0+- ":
            flag = fmt[i]
            if flag == "#":
                spec.sharp = True
            elif flag == "0":
                spec.zero = not spec.minus
            elif flag == "+":
                spec.plus = True
            elif flag == "-":
                spec.minus, spec.zero = True, False
            else:
                spec.space = True
            i += 1
        good = True
        argnum, i, after_index, ok = _arg_index(fmt, i, argnum, len(args))
        reordered = reordered or after_index or not ok
        good = good and ok
        if i < n and fmt[i] == "*":
            width, argnum = _star(args, argnum)
            i += 1
            after_index = False
            if width is None:
                out.append("%!(BADWIDTH)")
            elif width < 0:
                spec.minus, spec.zero, spec.width = True, False, -width
            else:
                spec.width = width
        else:
            spec.width, i = _number(fmt, i)
            if after_index and spec.width is not None:  # "%[3]2d"
                good = False
        if i < n and fmt[i] == ".":
            i += 1
            if after_index:  # "%[3].2d"
                good = False
            argnum, i, after_index, ok = _arg_index(fmt, i, argnum, len(args))
            reordered = reordered or after_index or not ok
            good = good and ok
            if i < n and fmt[i] == "*":
                prec, argnum = _star(args, argnum)
                i += 1
                if prec is None or prec < 0:
                    out.append("%!(BADPREC)")
                    prec = None
                spec.prec = prec
            else:
                prec, i = _number(fmt, i)
                spec.prec = prec or 0
        if not after_index:
            argnum, i, after_index, ok = _arg_index(fmt, i, argnum, len(args))
            reordered = reordered or after_index or not ok
            good = good and ok
        if i >= n:
            out.append("%!(NOVERB)")
            break
        verb = fmt[i]
        i += 1
        if verb == "%":
            out.append("%")
            continue
        if not good:
            out.append(f"%!{verb}(BADINDEX)")
            continue
        if argnum >= len(args):
            out.append(f"%!{verb}(MISSING)")
            continue
        if verb == "v":
            spec.sharp_v, spec.sharp = spec.sharp, False
            spec.plus_v, spec.plus = spec.plus, False
        out.append(format_value(args[argnum], verb, spec))
        argnum += 1
    if not reordered and argnum < len(args):
        extra = (
            "<nil>" if a is None or a is MISSING else f"{type_name(a)}={format_value(a, 'v', _Spec())}"
            for a in args[argnum:]
        )
        out.append("%!(EXTRA " + ", ".join(extra) + ")")
    return "".join(out)


def sprint(args: Sequence[Any]) -> str:
    """Go's ``fmt.Sprint``: a space between two operands when neither is a string."""
    out: list[str] = []
    for i, arg in enumerate(args):
        if i and not isinstance(arg, str) and not isinstance(args[i - 1], str):
            out.append(" ")
        out.append(format_value(arg, "v", _Spec()))
    return "".join(out)


def sprintln(args: Sequence[Any]) -> str:
    """Go's ``fmt.Sprintln``: operands separated by spaces, then a newline."""
    return " ".join(format_value(arg, "v", _Spec()) for arg in args) + "\n"
