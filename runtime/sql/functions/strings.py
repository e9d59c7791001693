"""String and hashing functions (eKuiper docs sqls/functions/string_functions.md;
sqls/functions/hashing_functions.md). Offsets are UTF-8 byte offsets, as in Go."""

from __future__ import annotations

import hashlib
import re
import zlib
from collections.abc import Iterable, Sequence
from typing import Any

from runtime.sql.ast import Call, Literal
from runtime.sql.functions.base import FunctionDef, as_int, num, scalar, str1, text, with_check
from runtime.sql.values import EvalContext, EvalError


def _substring(a: Sequence[Any], ctx: EvalContext) -> str:
    # Byte offsets, end exclusive (the code's behaviour, not the doc's "length": eKuiper docs
    # sqls/functions/string_functions.md).
    data = text(a[0]).encode()
    start = as_int(a[1], "start")
    end = as_int(a[2], "end") if len(a) > 2 else len(data)
    if start < 0 or end < 0:
        raise EvalError("start and end index of substring cannot be negative")
    if start > end and (len(a) > 2 or start <= len(data)):
        raise EvalError(f"start index {start} is larger than end index {end}")
    return data[start:end].decode(errors="replace")  # past the end: "" / clamped


def _split_value(a: Sequence[Any], ctx: EvalContext) -> str:
    parts = text(a[0]).split(text(a[1]))
    i = as_int(a[2], "third argument")
    if not -len(parts) <= i < len(parts):
        raise EvalError(f"the index {i} is out of range")
    return parts[i]


def _go_replacement(repl: str) -> str:
    # Go's ${1} / $1 group references -> Python's \g<1>.
    return re.sub(r"\$\{?(\w+)\}?", r"\\g<\1>", repl.replace("\\", "\\\\"))


def _regexp_substr(a: Sequence[Any], ctx: EvalContext) -> str:
    found = re.search(text(a[1]), text(a[0]))
    return found.group(0) if found else ""


def _concat(a: Sequence[Any], ctx: EvalContext) -> str:
    return "".join("" if v is None else text(v) for v in a)


def _check_concat(call: Call) -> str | None:
    for i, arg in enumerate(call.args, 1):
        if isinstance(arg, Literal) and not isinstance(arg.value, str):
            return f"validate function concat error: Expect string type for parameter {i}"
    return None


def _length(a: Sequence[Any], ctx: EvalContext) -> int:
    v = a[0]
    if v is None:
        return 0
    if isinstance(v, str | list | dict):
        return len(v)
    return len(text(v))


def _pad(left: bool) -> Any:
    def impl(a: Sequence[Any], ctx: EvalContext) -> str:
        pad = " " * as_int(a[1], "second argument")  # a count of spaces, not a target width (§D.2)
        return pad + text(a[0]) if left else text(a[0]) + pad

    return impl


def _format(a: Sequence[Any], ctx: EvalContext) -> str:
    x, digits = float(num(a[0])), as_int(a[1], "second argument")
    grouping = "," if len(a) > 2 and a[2] is not None else ""  # a locale (en_US) groups thousands
    return f"{x:{grouping}.{max(digits, 0)}f}"


def _digest(algorithm: str) -> Any:
    def impl(a: Sequence[Any], ctx: EvalContext) -> str:
        data = a[0] if isinstance(a[0], bytes) else text(a[0]).encode()
        return hashlib.new(algorithm, data).hexdigest()

    return impl


def _crc32(a: Sequence[Any], ctx: EvalContext) -> str:
    data = a[0] if isinstance(a[0], bytes) else text(a[0]).encode()
    return format(zlib.crc32(data), "08x")


def _none_false(test: Any) -> Any:
    # These return false (not null) when any argument is null.
    def impl(a: Sequence[Any], ctx: EvalContext) -> bool:
        return None not in a and bool(test(text(a[0]), text(a[1])))

    return impl


def _indexof(a: Sequence[Any], ctx: EvalContext) -> int:
    if a[0] is None or a[1] is None:
        return -1
    return text(a[0]).encode().find(text(a[1]).encode())


def string_defs() -> Iterable[FunctionDef]:
    yield with_check(scalar("concat", 1, None, _concat, nulls=False), _check_concat)
    yield str1("lower", str.lower)
    yield str1("upper", str.upper)
    yield scalar("length", 1, 1, _length, nulls=False)
    yield scalar(
        "numbytes", 1, 1, lambda a, ctx: 0 if a[0] is None else len(text(a[0]).encode()), nulls=False
    )
    yield str1("trim", str.strip)
    yield str1("ltrim", str.lstrip)
    yield str1("rtrim", str.rstrip)
    yield str1("reverse", lambda s: s[::-1])
    yield scalar("substring", 2, 3, _substring)
    yield scalar("indexof", 2, 2, _indexof, nulls=False)
    yield scalar("startswith", 2, 2, _none_false(str.startswith), nulls=False)
    yield scalar("endswith", 2, 2, _none_false(str.endswith), nulls=False)
    yield scalar("lpad", 2, 2, _pad(left=True))
    yield scalar("rpad", 2, 2, _pad(left=False))
    yield scalar("split_value", 3, 3, _split_value)
    yield scalar("regexp_matches", 2, 2, _none_false(lambda s, p: re.search(p, s)), nulls=False)
    yield scalar(
        "regexp_replace", 3, 3, lambda a, ctx: re.sub(text(a[1]), _go_replacement(text(a[2])), text(a[0]))
    )
    yield scalar("regexp_substr", 2, 2, _regexp_substr)
    yield scalar("format", 2, 3, _format)
    for algorithm in ("md5", "sha1", "sha256", "sha384", "sha512"):
        yield scalar(algorithm, 1, 1, _digest(algorithm))
    yield scalar("crc32", 1, 1, _crc32)
