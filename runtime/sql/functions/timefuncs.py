"""Date/time functions (eKuiper docs sqls/functions/datetime_functions.md) over timezone-aware ``datetime``
values (UTC by default).

``format_time`` patterns use eKuiper's Java-like letters (runs of one letter form a token; ``\\`` escapes the
next character; letters without a meaning and other text are copied).
"""

from __future__ import annotations

import datetime
import re
from collections.abc import Iterable, Sequence
from typing import Any

from runtime.sql.functions.base import FunctionDef, as_int, scalar, text
from runtime.sql.functions.convert import to_datetime
from runtime.sql.values import EvalContext, EvalError

_TOKEN = re.compile(r"\\.|([A-Za-z])\1*|[^A-Za-z\\]+")
_DAY_NAMES = ("Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday")
_MONTH_NAMES = (
    "January", "February", "March", "April", "May", "June",
    "July", "August", "September", "October", "November", "December",
)  # fmt: skip


def _offset(t: datetime.datetime, colon: bool, z_for_utc: bool) -> str:
    delta = t.utcoffset() or datetime.timedelta()
    if z_for_utc and not delta:
        return "Z"
    minutes = int(delta.total_seconds()) // 60
    sign, minutes = ("-" if minutes < 0 else "+"), abs(minutes)
    return f"{sign}{minutes // 60:02d}{':' if colon else ''}{minutes % 60:02d}"


def _field(token: str, t: datetime.datetime) -> str:
    letter, n = token[0], len(token)
    if letter == "G":
        return "AD"
    if letter in "Yy":
        return f"{t.year % 100:02d}" if n == 2 else f"{t.year:04d}"
    if letter == "M":
        return _MONTH_NAMES[t.month - 1][: 3 if n == 3 else None] if n >= 3 else f"{t.month:0{n}d}"
    if letter == "d":
        return f"{t.day:0{n}d}"
    if letter == "E":
        return _DAY_NAMES[t.weekday()] if n >= 4 else _DAY_NAMES[t.weekday()][:3]
    if letter == "H":
        return f"{t.hour:0{n}d}"
    if letter == "h":
        return f"{(t.hour % 12) or 12:0{n}d}"
    if letter == "a":
        return "AM" if t.hour < 12 else "PM"
    if letter == "m":
        return f"{t.minute:0{n}d}"
    if letter == "s":
        return f"{t.second:0{n}d}"
    if letter == "S":
        return f"{t.microsecond:06d}000"[:n]
    if letter == "z":
        return t.tzname() or "UTC"
    if letter == "Z":
        return _offset(t, colon=False, z_for_utc=False)
    if letter == "X":
        return _offset(t, colon=n >= 3, z_for_utc=True)[: 3 if n == 1 else None]
    return token  # letters without a meaning are copied, like other text


def format_time(t: datetime.datetime, pattern: str) -> str:
    out: list[str] = []
    for match in _TOKEN.finditer(pattern):
        token = match.group(0)
        if token.startswith("\\"):
            out.append(token[1:])
        elif token[0].isalpha():
            out.append(_field(token, t))
        else:
            out.append(token)
    return "".join(out)


def _date_calc(a: Sequence[Any], ctx: EvalContext) -> str:
    spec = text(a[1]).strip()
    sign = -1 if spec.startswith("-") else 1
    parts = re.fullmatch(r"[-+]?((?:\d+(?:\.\d+)?(?:ns|us|µs|ms|s|m|h))+)", spec)
    if parts is None:
        raise EvalError(f"invalid duration {spec}")
    units = {"ns": 1e-9, "us": 1e-6, "µs": 1e-6, "ms": 1e-3, "s": 1.0, "m": 60.0, "h": 3600.0}
    seconds = sum(
        float(n) * units[u] for n, u in re.findall(r"(\d+(?:\.\d+)?)(ns|us|µs|ms|s|m|h)", parts.group(1))
    )
    moved = to_datetime(a[0]) + sign * datetime.timedelta(seconds=seconds)
    return format_time(moved, "yyyy-MM-dd HH:mm:ss")


def _date_diff(a: Sequence[Any], ctx: EvalContext) -> int:
    delta = to_datetime(a[1]) - to_datetime(a[0])
    return (delta.days * 86_400 + delta.seconds) * 1_000_000_000 + delta.microseconds * 1000  # Go Duration


def _now(ctx: EvalContext) -> datetime.datetime:
    return datetime.datetime.fromtimestamp(ctx.now_ms() / 1000, tz=datetime.UTC)


def _with_fraction(pattern: str, a: Sequence[Any]) -> str:
    fsp = as_int(a[0], "first argument") if a else 0
    if not 0 <= fsp <= 6:
        raise EvalError("invalid fsp, should be in range 0-6")
    return pattern + ("." + "S" * fsp if fsp else "")


def _from_days(a: Sequence[Any], ctx: EvalContext) -> str | None:
    n = as_int(a[0])
    if n == 0:
        return None
    return (datetime.date(1970, 1, 1) + datetime.timedelta(days=n - 1)).isoformat()


def _from_unix_time(a: Sequence[Any], ctx: EvalContext) -> str | None:
    seconds = a[0]
    if seconds == 0:
        return None
    t = datetime.datetime.fromtimestamp(float(seconds), tz=datetime.UTC)
    return format_time(t, "yyyy-MM-dd HH:mm:ss")


def _last_day(a: Sequence[Any], ctx: EvalContext) -> str:
    t = to_datetime(a[0])
    first_next = (t.replace(day=28) + datetime.timedelta(days=4)).replace(day=1)
    return (first_next - datetime.timedelta(days=1)).date().isoformat()


def _part(fn: Any) -> Any:
    return lambda a, ctx: fn(to_datetime(a[0]))


def time_defs() -> Iterable[FunctionDef]:
    yield scalar("format_time", 2, 2, lambda a, ctx: format_time(to_datetime(a[0]), text(a[1])))
    for name in ("now", "current_timestamp", "local_time", "local_timestamp"):
        yield scalar(
            name, 0, 1, lambda a, ctx: format_time(_now(ctx), _with_fraction("yyyy-MM-dd HH:mm:ss", a))
        )
    for name in ("cur_date", "current_date"):
        yield scalar(name, 0, 0, lambda a, ctx: _now(ctx).date().isoformat())
    for name in ("cur_time", "current_time"):
        yield scalar(name, 0, 1, lambda a, ctx: format_time(_now(ctx), _with_fraction("HH:mm:ss", a)))
    yield scalar("date_calc", 2, 2, _date_calc)
    yield scalar("date_diff", 2, 2, _date_diff)
    yield scalar("day_name", 1, 1, _part(lambda t: _DAY_NAMES[t.weekday()]))
    yield scalar("month_name", 1, 1, _part(lambda t: _MONTH_NAMES[t.month - 1]))
    yield scalar("day_of_month", 1, 1, _part(lambda t: t.day))
    yield scalar("day", 1, 1, _part(lambda t: t.day))
    yield scalar("day_of_year", 1, 1, _part(lambda t: t.timetuple().tm_yday))
    yield scalar("day_of_week", 1, 1, _part(lambda t: (t.weekday() + 1) % 7))  # Sunday = 0 (DOC≠CODE)
    yield scalar("hour", 1, 1, _part(lambda t: t.hour))
    yield scalar("minute", 1, 1, _part(lambda t: t.minute))
    yield scalar("second", 1, 1, _part(lambda t: t.second))
    yield scalar("microsecond", 1, 1, _part(lambda t: t.microsecond))
    yield scalar("month", 1, 1, _part(lambda t: t.month))
    yield scalar("year", 1, 1, _part(lambda t: t.year))
    yield scalar("from_days", 1, 1, _from_days)
    yield scalar("from_unix_time", 1, 1, _from_unix_time)
    yield scalar("last_day", 1, 1, _last_day)
    yield scalar("tstamp", 0, 0, lambda a, ctx: ctx.now_ms())
