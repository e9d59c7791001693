"""The ONE strict cattrs converter behind every configuration input: camelCase keys, exact scalar types, Go
durations, range checks, and a ``ConfigError`` listing every problem at once with its dotted camelCase path.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from typing import Any, TypeVar

import attrs
import cattrs
from cattrs.errors import ClassValidationError, ForbiddenExtraKeysError
from cattrs.gen import make_dict_structure_fn, make_dict_unstructure_fn, override

from runtime.config.schema import META_CHECK, META_DURATION, Check
from runtime.errors import ConfigError, ConfigProblem

_T = TypeVar("_T")


def describe(value: Any) -> str:
    """``value``'s type and a repr cut to 40 characters, for error messages (``str '10081'``)."""
    shown = repr(value)
    return f"{type(value).__name__} {shown if len(shown) <= 40 else shown[:37] + '...'}"


def _to_camel(name: str) -> str:
    head, *rest = name.split("_")
    return head + "".join(part.capitalize() for part in rest)


def _strict(expected: type) -> Callable[[Any, Any], Any]:
    # cattrs's default scalar hooks coerce: they would turn "10081" or 10081.7 into an int and 1 into True.
    # Check the exact type instead. bool is a subclass of int, hence ``type(...) is`` rather than isinstance.
    def hook(value: Any, _: Any) -> Any:
        if type(value) is expected:
            return value
        if expected is float and type(value) is int:
            return float(value)
        raise ConfigProblem(f"expected {expected.__name__}, got {describe(value)}")

    return hook


_DURATION_PART = re.compile(r"(\d+(?:\.\d*)?|\.\d+)(ns|us|µs|μs|ms|s|m|h)")
_UNIT_MS = {"ns": 1e-6, "us": 1e-3, "µs": 1e-3, "μs": 1e-3, "ms": 1.0, "s": 1e3, "m": 6e4, "h": 3.6e6}


def parse_duration_ms(text: str) -> int:
    """Parse a Go duration string (``"1s"``, ``"500ms"``, ``"1m30s"``, ``"0"``) into whole milliseconds.

    Raises:
      ValueError: not a Go duration.
    """
    body = text[1:] if text[:1] in "+-" else text
    if body == "0":
        return 0
    total, pos = 0.0, 0
    while body and pos < len(body):
        match = _DURATION_PART.match(body, pos)
        if match is None:
            raise ValueError(f"invalid duration {text!r}")
        total += float(match.group(1)) * _UNIT_MS[match.group(2)]
        pos = match.end()
    if not body:
        raise ValueError(f"invalid duration {text!r}")
    # Go's Duration.Milliseconds() truncates toward zero; do the same so "1500us" is 1 ms, as in eKuiper.
    return int(-total if text.startswith("-") else total)


def _duration_hook(value: Any, _: Any) -> int:
    if type(value) is int:
        return value
    if type(value) is str:
        try:
            return parse_duration_ms(value)
        except ValueError:
            raise ConfigProblem(f"expected a duration like '1s' or '500ms', got {value!r}") from None
    raise ConfigProblem(f"expected int (ms) or a duration string, got {describe(value)}")


def _checked(base: Callable[[Any, Any], Any], check: Check) -> Callable[[Any, Any], Any]:
    def hook(value: Any, type_: Any) -> Any:
        result = base(value, type_)
        reason = check(result)
        if reason is not None:
            raise ConfigProblem(reason)
        return result

    return hook


def _make_converter() -> cattrs.Converter:
    # forbid_extra_keys is inherited by the factories below (``_cattrs_forbid_extra_keys="from_converter"``),
    # so a typo such as ``httpServerIP`` is an error instead of silently keeping the default.
    conv = cattrs.Converter(forbid_extra_keys=True)
    for scalar in (int, float, bool, str):
        conv.register_structure_hook(scalar, _strict(scalar))

    # A list setting given one string must be an error: cattrs would iterate the string, and
    # fileRoots = "/srv/x" would become the roots ("/", "s", ...), the first of them the whole disk.
    def strings(value: Any, _: Any) -> tuple[str, ...]:
        if not isinstance(value, list | tuple):
            raise ConfigProblem(f"expected a list of strings, got {describe(value)}")
        return tuple(_strict(str)(item, str) for item in value)

    conv.register_structure_hook_func(lambda cl: cl == tuple[str, ...], strings)

    def structure_factory(cl: type) -> Callable[[Any, Any], Any]:
        attrs.resolve_types(cl)
        overrides: dict[str, Any] = {}
        for a in attrs.fields(cl):
            if a.name == "extra":
                # Filled by rule_options from the eKuiper-only keys, never from a key named "extra".
                overrides[a.name] = override(omit=True)
                continue
            hook: Callable[[Any, Any], Any] | None = None
            if a.metadata.get(META_DURATION):
                hook = _duration_hook
            check = a.metadata.get(META_CHECK)
            if check is not None:
                hook = _checked(hook or conv.get_structure_hook(a.type), check)
            overrides[a.name] = override(rename=_to_camel(a.name), struct_hook=hook)
        inner: Callable[[Any, Any], Any] = make_dict_structure_fn(cl, conv, **overrides)

        def structure(value: Any, type_: Any) -> Any:
            # The generated function fails on a non-mapping with an unhelpful TypeError ("argument of type
            # 'int' is not iterable"); say what was expected.
            if not isinstance(value, Mapping):
                raise ConfigProblem(f"expected a table (JSON object), got {describe(value)}")
            return inner(value, type_)

        return structure

    def unstructure_factory(cl: type) -> Callable[[Any], Any]:
        overrides: dict[str, Any] = {
            a.name: override(omit=a.name == "extra", rename=_to_camel(a.name)) for a in attrs.fields(cl)
        }
        return make_dict_unstructure_fn(cl, conv, **overrides)

    conv.register_structure_hook_factory(attrs.has, structure_factory)
    conv.register_unstructure_hook_factory(attrs.has, unstructure_factory)
    return conv


def _problems(exc: BaseException, path: tuple[str, ...]) -> list[str]:
    """Flatten a cattrs error tree into ``dotted.camelPath: reason`` lines.

    cattrs reports a bad class as a ``ClassValidationError`` group whose members carry the failing attribute in
    a note, nested once per level; walk it so each leaf problem gets the full path of the key it is about.
    """
    where = ".".join(path)
    if isinstance(exc, ClassValidationError):
        with_notes, without_notes = exc.group_exceptions()
        found: list[str] = []
        for sub, note in with_notes:
            found += _problems(sub, (*path, _to_camel(note.name)))
        for sub in without_notes:
            found += _problems(sub, path)
        return found
    if isinstance(exc, ForbiddenExtraKeysError):
        return [f"{'.'.join((*path, str(key)))}: unknown key" for key in sorted(map(str, exc.extra_fields))]
    if isinstance(exc, KeyError):
        return [f"{where}: missing required key"]
    if isinstance(exc, ConfigProblem):
        return [f"{where}: {exc}"]
    return [f"{where}: {type(exc).__name__}: {exc}"]


def structure(value: Any, cl: type[_T], path: tuple[str, ...], label: str) -> _T:
    """Structure ``value`` into ``cl``; every problem is reported as ``{label}{path}.camelKey: reason``.

    Raises:
      ConfigError: unknown keys, wrong types or out-of-range values, all listed (``problems`` one by one).
    """
    try:
        return CONVERTER.structure(value, cl)
    except (ClassValidationError, ConfigProblem) as exc:
        problems = [f"{label}{line}" for line in _problems(exc, path)]
        raise ConfigError("; ".join(problems), problems) from exc


def prune_none(value: Any) -> Any:
    """``value`` without ``None`` entries, recursively: TOML has no null, so they cannot be written."""
    if isinstance(value, Mapping):
        return {k: prune_none(v) for k, v in value.items() if v is not None}
    if isinstance(value, list | tuple):
        return [prune_none(v) for v in value if v is not None]
    return value


# Built once at import and never re-registered afterwards: a constant, like a compiled regex. Building it per
# call would regenerate (compile) the structuring code of every class each time a rule is loaded.
CONVERTER = _make_converter()
