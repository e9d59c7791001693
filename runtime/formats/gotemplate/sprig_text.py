"""sprig v3's string, encoding, JSON, default and reflection functions, and eKuiper's own ``json`` and ``base64``.

Each follows sprig 3.3's Go code (the version eKuiper 2 links), including its quirks: ``substr`` and
``trunc`` count bytes, ``b64dec`` returns the error text for bad input, ``toJson`` returns "" when Go's
``json.Marshal`` fails, ``keys`` is sorted here (Go's order is random).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import re
import zlib
from typing import Any, Final

import orjson

from runtime.formats.gotemplate.funcs import (
    Func,
    FuncError,
    is_empty,
    is_list,
    strval,
)
from runtime.formats.gotemplate.values import (
    MISSING,
    GoInt,
    JsonUnsupported,
    format_float,
    kind_name,
    marshal_json,
    quote,
    sprint,
    type_name,
)

_DECIMAL: Final = re.compile(r"[+-]?[0-9]+")
# unicode.IsSpace: the ASCII spaces, NEL, NBSP and the Unicode space separators.
_GO_SPACES: Final = (
    " \t\n\v\f\r\x85\xa0\u1680\u2000\u2001\u2002\u2003\u2004\u2005\u2006\u2007\u2008\u2009\u200a"
    "\u2028\u2029\u202f\u205f\u3000"
)


def _upper(text: str) -> str:
    # Go maps rune by rune: a letter whose upper case is several letters (ß) stays as it is.
    return "".join(up if len(up := ch.upper()) == 1 else ch for ch in text)


def _lower(text: str) -> str:
    return "".join(low if len(low := ch.lower()) == 1 else ch for ch in text)


def _title(text: str) -> str:
    """strings.Title: the first letter of each word in title case, the rest untouched."""
    out: list[str] = []
    prev = " "
    for ch in text:
        separator = not (prev.isalnum() or prev == "_") if prev.isascii() else prev in _GO_SPACES
        out.append((t if len(t := ch.title()) == 1 else ch) if separator else ch)
        prev = ch
    return "".join(out)


def _byte_slice(text: str, start: int, end: int | None) -> str:
    """``text[start:end]`` on its UTF-8 bytes, failing as Go's runtime does."""
    data = text.encode()
    size = len(data)
    if end is not None and not 0 <= end <= size:
        raise FuncError(f"runtime error: slice bounds out of range [:{end}] with length {size}")
    stop = size if end is None else end
    if not 0 <= start <= stop:
        raise FuncError(f"runtime error: slice bounds out of range [{start}:{stop}]")
    return data[start:stop].decode("utf-8", "replace")


def _nospace(text: str) -> str:
    """goutils ``DeleteWhiteSpace`` as it is: it walks bytes, not runes, so non-ASCII text comes out as
    Latin-1 mojibake (and loses its 0x85/0xA0 bytes), exactly as eKuiper prints it."""
    return "".join(chr(b) for b in text.encode() if chr(b) not in _GO_SPACES[:8])


def _substr(start: int, end: int, text: str) -> str:
    if start < 0:
        return _byte_slice(text, 0, end)
    if end < 0 or end > len(text.encode()):
        return _byte_slice(text, start, None)
    return _byte_slice(text, start, end)


def _trunc(count: int, text: str) -> str:
    size = len(text.encode())
    if count < 0 and size + count > 0:
        return _byte_slice(text, size + count, None)
    if count >= 0 and size > count:
        return _byte_slice(text, 0, count)
    return text


def _repeat(count: int, text: str) -> str:
    if count < 0:
        raise FuncError("strings: negative Repeat count")
    return text * count


def _indent(spaces: int, text: str) -> str:
    pad = " " * max(spaces, 0)
    return pad + text.replace("\n", "\n" + pad)


def _split_list(sep: str, text: str) -> list[Any]:
    return list(text) if sep == "" else list(text.split(sep))


def _strslice(value: Any) -> list[str]:
    if is_list(value):
        return [strval(item) for item in value if item is not None]
    if value is None or value is MISSING:
        return []
    return [strval(value)]


def _sort_alpha(value: Any) -> list[Any]:
    if is_list(value):
        return sorted(_strslice(value), key=lambda s: s.encode())
    return [strval(value)]


def _splitn(sep: str, count: int, text: str) -> dict[str, Any]:
    """strings.SplitN into sprig's ``{"_0": ..., "_1": ...}``: at most ``count`` parts (0: none, <0: all)."""
    if count == 0:
        return {}
    if sep == "":
        parts = list(text) if count < 0 or count > len(text) else [*text[: count - 1], text[count - 1 :]]
    else:
        parts = text.split(sep) if count < 0 else text.split(sep, count - 1)
    return {f"_{i}": part for i, part in enumerate(parts)}


def _bad_byte(text: str, alphabet: bytes, block: int) -> int:
    """Where Go's decoder reports corrupt input: the first byte outside the alphabet, else the last block."""
    data = text.encode()
    return next((i for i, b in enumerate(data) if b not in alphabet), len(data) - len(data) % block)


def _b32dec(text: str) -> str:
    try:
        return base64.b32decode(text.encode()).decode("utf-8", "replace")
    except (binascii.Error, ValueError):
        return f"illegal base32 data at input byte {_bad_byte(text, b'ABCDEFGHIJKLMNOPQRSTUVWXYZ234567=', 8)}"


def _b64dec(text: str) -> str:
    try:
        return base64.b64decode(text.encode(), validate=True).decode("utf-8", "replace")
    except (binascii.Error, ValueError):
        alphabet = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/="
        return f"illegal base64 data at input byte {_bad_byte(text, alphabet, 4)}"


def _to_json(value: Any) -> str:
    try:
        return marshal_json(value)
    except JsonUnsupported:
        return ""


def _must_to_json(value: Any) -> str:
    try:
        return marshal_json(value)
    except JsonUnsupported as exc:
        raise FuncError(str(exc)) from None


def _to_pretty_json(value: Any) -> str:
    try:
        return marshal_json(value, indent="  ")
    except JsonUnsupported:
        return ""


def _must_to_pretty_json(value: Any) -> str:
    try:
        return marshal_json(value, indent="  ")
    except JsonUnsupported as exc:
        raise FuncError(str(exc)) from None


def _to_raw_json(value: Any) -> str:
    try:
        return marshal_json(value, escape_html=False)
    except JsonUnsupported as exc:
        raise FuncError(str(exc)) from None


def _floats(value: Any) -> Any:
    # Go's json.Unmarshal into interface{} makes every number a float64.
    if isinstance(value, bool):
        return value
    if isinstance(value, int):
        return float(value)
    if isinstance(value, dict):
        return {k: _floats(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_floats(v) for v in value]
    return value


def _must_from_json(text: str) -> Any:
    try:
        return _floats(orjson.loads(text))
    except orjson.JSONDecodeError as exc:
        raise FuncError(str(exc)) from None


def _from_json(text: str) -> Any:
    try:
        return _must_from_json(text)
    except FuncError:
        return None


def _default(fallback: Any, *given: Any) -> Any:
    if not given or is_empty(given[0]):
        return fallback
    return given[0]


def _coalesce(*values: Any) -> Any:
    return next((v for v in values if not is_empty(v)), None)


def _ekuiper_base64(value: Any) -> str:
    """eKuiper's ``base64``: scalars by their text, maps by their JSON; nil and lists are errors."""
    if value is None or value is MISSING:
        raise FuncError("based64 error for nil")
    if isinstance(value, bool):
        text = "true" if value else "false"
    elif isinstance(value, int):
        text = str(int(value))
    elif isinstance(value, float):
        text = format_float(value, "f")
    elif isinstance(value, str):
        text = value
    elif isinstance(value, dict):
        text = _must_to_json(value)
    else:
        raise FuncError(f"Unsupported data type {kind_name(value)} for base64 function.")
    return base64.b64encode(text.encode()).decode("ascii")


def _atoi(text: str) -> GoInt:
    """strconv.Atoi with the error dropped (sprig): 0 unless ``text`` is a decimal int64."""
    if not _DECIMAL.fullmatch(text):
        return GoInt(0)
    value = int(text)
    return GoInt(value if -(2**63) <= value < 2**63 else 0)


def _fail(message: str) -> str:
    raise FuncError(message)


TEXT_FUNCS: Final = {
    # strings
    "upper": Func("string", _upper),
    "lower": Func("string", _lower),
    "title": Func("string", _title),
    "trim": Func("string", lambda s: s.strip(_GO_SPACES)),
    "trimAll": Func("string string", lambda cut, s: s.strip(cut)),
    "trimall": Func("string string", lambda cut, s: s.strip(cut)),
    "trimPrefix": Func("string string", lambda p, s: s.removeprefix(p)),
    "trimSuffix": Func("string string", lambda p, s: s.removesuffix(p)),
    "nospace": Func("string", _nospace),
    "contains": Func("string string", lambda sub, s: sub in s),
    "hasPrefix": Func("string string", lambda p, s: s.startswith(p)),
    "hasSuffix": Func("string string", lambda p, s: s.endswith(p)),
    "replace": Func("string string string", lambda old, new, s: s.replace(old, new)),
    "repeat": Func("int string", _repeat),
    "substr": Func("int int string", _substr),
    "trunc": Func("int string", _trunc),
    "indent": Func("int string", _indent),
    "nindent": Func("int string", lambda n, s: "\n" + _indent(n, s)),
    "quote": Func("any", lambda *a: " ".join(quote(strval(v)) for v in a if v is not None), variadic=True),
    "squote": Func("any", lambda *a: " ".join(f"'{sprint(v)}'" for v in a if v is not None), variadic=True),
    "cat": Func("any", lambda *a: " ".join(sprint(v) for v in a if v is not None), variadic=True),
    "toString": Func("any", strval),
    "plural": Func("string string int", lambda one, many, n: one if n == 1 else many),
    "splitList": Func("string string", _split_list),
    "split": Func("string string", lambda sep, s: {f"_{i}": p for i, p in enumerate(_split_list(sep, s))}),
    "splitn": Func("string int string", _splitn),
    "join": Func("string any", lambda sep, v: sep.join(_strslice(v))),
    "toStrings": Func("any", _strslice),
    "sortAlpha": Func("any", _sort_alpha),
    "atoi": Func("string", _atoi),
    # encoding
    "b64enc": Func("string", lambda s: base64.b64encode(s.encode()).decode("ascii")),
    "b64dec": Func("string", _b64dec),
    "sha256sum": Func("string", lambda s: hashlib.sha256(s.encode()).hexdigest()),
    "sha1sum": Func("string", lambda s: hashlib.sha1(s.encode(), usedforsecurity=False).hexdigest()),
    "sha512sum": Func("string", lambda s: hashlib.sha512(s.encode()).hexdigest()),
    "adler32sum": Func("string", lambda s: str(zlib.adler32(s.encode()))),
    "b32enc": Func("string", lambda s: base64.b32encode(s.encode()).decode("ascii")),
    "b32dec": Func("string", _b32dec),
    # defaults and JSON
    "default": Func("any any", _default, variadic=True),
    "empty": Func("any", is_empty),
    "coalesce": Func("any", _coalesce, variadic=True),
    "all": Func("any", lambda *a: all(not is_empty(v) for v in a), variadic=True),
    "any": Func("any", lambda *a: any(not is_empty(v) for v in a), variadic=True),
    "ternary": Func("any any bool", lambda t, f, cond: t if cond else f),
    "toJson": Func("any", _to_json),
    "mustToJson": Func("any", _must_to_json),
    "toPrettyJson": Func("any", _to_pretty_json),
    "mustToPrettyJson": Func("any", _must_to_pretty_json),
    "mustToRawJson": Func("any", _to_raw_json),
    "toRawJson": Func("any", _to_raw_json),
    "fromJson": Func("string", _from_json),
    "mustFromJson": Func("string", _must_from_json),
    # reflection and flow control
    "typeOf": Func("any", type_name),
    "kindOf": Func("any", kind_name),
    "typeIs": Func("string any", lambda t, v: type_name(v) == t),
    "kindIs": Func("string any", lambda k, v: kind_name(v) == k),
    "fail": Func("string", _fail),
    # eKuiper's own (internal/topo/transform/func.go)
    "json": Func("any", _to_json),
    "base64": Func("any", _ekuiper_base64),
}.items()
"""(name, function) pairs; ``runtime.formats.gotemplate.template`` merges them into the function table."""
