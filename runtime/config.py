"""Oort's configuration: the ``etc/oort.toml`` schema and loader, rule options, and ``etc/<kind>/<type>.toml`` conf groups.

Everything is structured by ONE strict cattrs converter: camelCase keys in files and rule JSON, snake_case
attributes in Python, unknown keys and wrong scalar types rejected, and every problem reported at once with
its dotted camelCase path (STACK.md §d).
"""

from __future__ import annotations

import copy
import logging
import os
import re
import tomllib
from collections.abc import Callable, Mapping
from pathlib import Path
from types import MappingProxyType
from typing import Any, Literal, TypeVar

import attrs
import cattrs
import tomli_w
from cattrs.errors import ClassValidationError, ForbiddenExtraKeysError
from cattrs.gen import make_dict_structure_fn, make_dict_unstructure_fn, override

from runtime.errors import ConfigError, NotFoundError
from runtime.store.files import atomic_write

CONFIG_FILE = "oort.toml"
LOG_LEVELS = ("debug", "info", "warn", "warning", "error")
# The Python logging level of each ``logLevel`` name (read-only).
PY_LOG_LEVELS: Mapping[str, int] = MappingProxyType(
    {
        "debug": logging.DEBUG,
        "info": logging.INFO,
        "warn": logging.WARNING,
        "warning": logging.WARNING,
        "error": logging.ERROR,
    }
)
BUFFER_FULL_POLICIES = ("block", "dropOldest", "dropNewest")

# Options eKuiper documents (SURFACE.md §B.2) that Oort does not implement. Rules exported from eKuiper carry
# them, so they are accepted and kept verbatim in ``RuleOptions.extra`` instead of failing the rule.
EKUIPER_ONLY_OPTIONS = frozenset(
    {
        "cron",
        "duration",
        "cronDatetimeRange",
        "debug",
        "logFilename",
        "planOptimizeStrategy",
        "disableBufferFullDiscard",
        "enableSaveStateBeforeStop",
        "forceExitTimeout",
        "notifySub",
        "experiment",
    }
)

ConfKind = Literal["sources", "sinks"]
_ID_RULE = re.compile(r"^[A-Za-z0-9_-]+$")

# attrs metadata keys: a value check run after the strict scalar hook, and "accepts a Go duration string".
_CHECK = "oort_check"
_DURATION = "oort_duration"
_Check = Callable[[Any], "str | None"]
_T = TypeVar("_T")


def _between(low: float, high: float | None = None) -> _Check:
    def check(value: Any) -> str | None:
        if value < low or (high is not None and value > high):
            bound = f"in {low}..{high}" if high is not None else f">= {low}"
            return f"must be {bound}, got {value!r}"
        return None

    return check


def _one_of(choices: tuple[str, ...]) -> _Check:
    def check(value: Any) -> str | None:
        return None if value in choices else f"must be one of {', '.join(choices)}, got {value!r}"

    return check


def _not_empty(value: Any) -> str | None:
    return None if value else "must not be empty"


def _field(default: Any, check: _Check | None = None, *, duration: bool = False) -> Any:
    return attrs.field(default=default, metadata={_CHECK: check, _DURATION: duration})


_port = _between(0, 65535)


@attrs.frozen
class BasicConf:
    """``[basic]``: the REST API endpoint and process-wide settings."""

    rest_ip: str = "127.0.0.1"
    rest_port: int = _field(9081, _port)
    log_level: str = _field("info", _one_of(LOG_LEVELS))
    timezone: str = _field("UTC", _not_empty)


@attrs.frozen
class TlsConf:
    """``[source.httpServerTls]``: serve the data server over TLS; ``caFile`` turns on mutual TLS."""

    certfile: str = attrs.field(metadata={_CHECK: _not_empty})
    keyfile: str = attrs.field(metadata={_CHECK: _not_empty})
    ca_file: str = ""


@attrs.frozen
class SourceConf:
    """``[source]``: the global data server shared by server-mode http/websocket sources and sinks."""

    http_server_ip: str = "0.0.0.0"
    http_server_port: int = _field(10081, _port)
    http_server_tls: TlsConf | None = None


@attrs.frozen
class RestartStrategy:
    """``restartStrategy``: retry a failed rule ``attempts`` times, delay * multiplier^n capped at maxDelay (ms)."""

    attempts: int = _field(0, _between(0))
    delay: int = _field(1000, _between(0))
    multiplier: float = _field(2.0, _between(1))
    max_delay: int = _field(30000, _between(0))
    jitter_factor: float = _field(0.1, _between(0, 1))


@attrs.frozen
class RuleOptions:
    """A rule's ``options`` (SURFACE.md §B.2); also the ``[rule]`` defaults section of ``oort.toml``.

    Durations are integer milliseconds. ``extra`` keeps eKuiper-only options Oort accepts but ignores.
    """

    is_event_time: bool = False
    late_tolerance: int = _field(1000, _between(0), duration=True)
    concurrency: int = _field(1, _between(1))
    buffer_length: int = _field(1024, _between(1))
    send_meta_to_sink: bool = False
    send_error: bool = False
    send_nil_field: bool = False
    qos: int = _field(0, _between(0, 2))
    checkpoint_interval: int = _field(300000, _between(0), duration=True)
    restart_strategy: RestartStrategy = RestartStrategy()
    buffer_full_policy: str = _field("block", _one_of(BUFFER_FULL_POLICIES))
    extra: dict[str, Any] = attrs.field(factory=dict, hash=False)


@attrs.frozen
class Config:
    """The whole ``etc/oort.toml``. Every section is optional; an empty file means all defaults."""

    basic: BasicConf = BasicConf()
    source: SourceConf = SourceConf()
    rule: RuleOptions = RuleOptions()


# --- the strict converter -------------------------------------------------------------------------------------


class _Problem(ValueError):
    """A value is wrong; ``str()`` is the reason shown after the path."""


def _describe(value: Any) -> str:
    shown = repr(value)
    return f"{type(value).__name__} {shown if len(shown) <= 40 else shown[:37] + '...'}"


def _to_camel(name: str) -> str:
    head, *rest = name.split("_")
    return head + "".join(part.capitalize() for part in rest)


def _strict(expected: type) -> Callable[[Any, Any], Any]:
    # cattrs would turn "10081" or 10081.7 into an int and 1 into True (STACK.md §d gotcha 1): check the exact
    # type instead. bool is a subclass of int, hence ``type(...) is`` rather than isinstance.
    def hook(value: Any, _: Any) -> Any:
        if type(value) is expected:
            return value
        if expected is float and type(value) is int:
            return float(value)
        raise _Problem(f"expected {expected.__name__}, got {_describe(value)}")

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
            raise _Problem(f"expected a duration like '1s' or '500ms', got {value!r}") from None
    raise _Problem(f"expected int (ms) or a duration string, got {_describe(value)}")


def _checked(base: Callable[[Any, Any], Any], check: _Check) -> Callable[[Any, Any], Any]:
    def hook(value: Any, type_: Any) -> Any:
        result = base(value, type_)
        reason = check(result)
        if reason is not None:
            raise _Problem(reason)
        return result

    return hook


def _make_converter() -> cattrs.Converter:
    # forbid_extra_keys is inherited by the factories below (``_cattrs_forbid_extra_keys="from_converter"``),
    # so a typo such as ``httpServerIP`` is an error instead of silently keeping the default.
    conv = cattrs.Converter(forbid_extra_keys=True)
    for scalar in (int, float, bool, str):
        conv.register_structure_hook(scalar, _strict(scalar))

    def structure_factory(cl: type) -> Callable[[Any, Any], Any]:
        attrs.resolve_types(cl)
        overrides: dict[str, Any] = {}
        for a in attrs.fields(cl):
            if a.name == "extra":
                # Filled by rule_options from the eKuiper-only keys, never from a key named "extra".
                overrides[a.name] = override(omit=True)
                continue
            hook: Callable[[Any, Any], Any] | None = None
            if a.metadata.get(_DURATION):
                hook = _duration_hook
            check = a.metadata.get(_CHECK)
            if check is not None:
                hook = _checked(hook or conv.get_structure_hook(a.type), check)
            overrides[a.name] = override(rename=_to_camel(a.name), struct_hook=hook)
        inner: Callable[[Any, Any], Any] = make_dict_structure_fn(cl, conv, **overrides)

        def structure(value: Any, type_: Any) -> Any:
            # The generated function fails on a non-mapping with an unhelpful TypeError ("argument of type
            # 'int' is not iterable"); say what was expected.
            if not isinstance(value, Mapping):
                raise _Problem(f"expected a table (JSON object), got {_describe(value)}")
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
    """Flatten a cattrs error tree into ``dotted.camelPath: reason`` lines (STACK.md §d gotcha 2)."""
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
    if isinstance(exc, _Problem):
        return [f"{where}: {exc}"]
    return [f"{where}: {type(exc).__name__}: {exc}"]


def _structure(value: Any, cl: type[_T], path: tuple[str, ...], label: str) -> _T:
    try:
        return _CONVERTER.structure(value, cl)
    except (ClassValidationError, _Problem) as exc:
        problems = [f"{label}{line}" for line in _problems(exc, path)]
        raise ConfigError("; ".join(problems), problems) from exc


# Built once at import and never re-registered afterwards: a constant, like a compiled regex. Building it per
# call would regenerate (compile) the structuring code of every class each time a rule is loaded.
_CONVERTER = _make_converter()


# --- oort.toml ------------------------------------------------------------------------------------------------


def load_config(etc_dir: Path) -> Config:
    """Read ``etc_dir/oort.toml``; a missing file or section means defaults.

    Raises:
      ConfigError: the file is not valid TOML, or has unknown keys, wrongly typed or out-of-range values.
        ``message`` lists every problem as ``oort.toml: source.httpServerPort: expected int, got str '10081'``;
        ``problems`` holds them one by one.
    """
    path = etc_dir / CONFIG_FILE
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return Config()
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{CONFIG_FILE}: cannot read: {exc}") from exc
    return parse_config(text)


def parse_config(text: str, label: str = CONFIG_FILE) -> Config:
    """Structure TOML text into a ``Config``; errors are prefixed with ``label`` (see ``load_config``)."""
    try:
        raw = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        # tomllib's message already carries "(at line L, column C)".
        raise ConfigError(f"{label}: invalid TOML: {exc}") from exc
    return _structure(raw, Config, (), f"{label}: ")


def dump_config(config: Config) -> str:
    """Render ``config`` as ``oort.toml`` text that ``parse_config`` reads back to an equal ``Config``."""
    return tomli_w.dumps(_prune_none(_CONVERTER.unstructure(config)))


# --- rule options ---------------------------------------------------------------------------------------------


def rule_options(user: Mapping[str, Any], defaults: RuleOptions) -> RuleOptions:
    """Merge a rule JSON's ``options`` object over ``defaults`` (the ``[rule]`` section of ``oort.toml``).

    ``restartStrategy`` merges key by key; ``lateTolerance`` and ``checkpointInterval`` take int ms or a Go
    duration string (``"1m30s"``); a JSON ``null`` keeps the default; options eKuiper documents but Oort does not
    implement go to ``extra``.

    Raises:
      ConfigError: unknown keys, wrong types or out-of-range values, all listed, each as
        ``options.bufferLength: expected int, got str '10'``.
    """
    merged: dict[str, Any] = _CONVERTER.unstructure(defaults)
    extra = dict(defaults.extra)
    for key, value in user.items():
        if value is None:
            continue  # UIs and eKuiper exports write unset options as null
        if key in EKUIPER_ONLY_OPTIONS:
            extra[key] = value
        elif key == "restartStrategy" and isinstance(value, Mapping):
            merged[key] = {**merged[key], **{k: v for k, v in value.items() if v is not None}}
        else:
            merged[key] = value  # unknown keys are reported by the converter (forbid_extra_keys)
    options = _structure(merged, RuleOptions, ("options",), "")
    return attrs.evolve(options, extra=extra)


def unstructure_rule_options(opts: RuleOptions) -> dict[str, Any]:
    """The camelCase JSON form of ``opts`` (status and export APIs), eKuiper-only ``extra`` options included."""
    raw: dict[str, Any] = _CONVERTER.unstructure(opts)
    return {**raw, **opts.extra}


# --- conf groups: etc/<kind>/<type>.toml ----------------------------------------------------------------------


def check_conf_key(key: str) -> None:
    """Raise ``ConfigError`` unless ``key`` is a valid conf key (``^[A-Za-z0-9_-]+$``)."""
    if not isinstance(key, str) or not _ID_RULE.match(key):
        raise ConfigError(f"invalid conf key {key!r}: use only letters, digits, '_' and '-'")


def _conf_file(etc_dir: Path, kind: ConfKind, type_name: str) -> tuple[Path, str]:
    if kind not in ("sources", "sinks"):
        raise ConfigError(f"invalid conf kind {kind!r}: expected 'sources' or 'sinks'")
    # The type name becomes a file name: the ID rule also keeps it from escaping the folder ("../x").
    if not isinstance(type_name, str) or not _ID_RULE.match(type_name):
        raise ConfigError(f"invalid connector type {type_name!r}")
    label = f"{kind}/{type_name}.toml"
    return etc_dir / kind / f"{type_name}.toml", label


# Parsed conf files by path, with the (inode, size, mtime, ctime) they were parsed at (``load_conf_groups``): a
# memo of pure parsing, safe to share between engines in one process because the stamp is checked on every read
# and callers only ever get deep copies. Oort's own writes replace the file (new inode) and evict the entry.
_CONF_CACHE: dict[str, tuple[tuple[int, int, int, int], dict[str, dict[str, Any]]]] = {}


def load_conf_groups(etc_dir: Path, kind: ConfKind, type_name: str) -> dict[str, dict[str, Any]]:
    """All conf groups of one connector type, ``{conf_key: props}``; a missing file has none.

    Values are kept as parsed (free-form per connector); each connector validates its own keys.

    Raises:
      ConfigError: bad TOML, or a top-level entry that is not a table.
    """
    path, label = _conf_file(etc_dir, kind, type_name)
    try:
        # Planning a rule reads its source's conf file; parsing the TOML again for every rule of a batch
        # creation was a visible share of it. The parse is reused while the file's identity and timestamps are
        # unchanged (every Oort write replaces the file, so its inode changes too), and callers get a copy.
        # The stamp comes from the open file itself (fstat), so it always describes the bytes read with it.
        with path.open("rb") as handle:
            info = os.fstat(handle.fileno())
            stamp = (info.st_ino, info.st_size, info.st_mtime_ns, info.st_ctime_ns)
            key = str(path)  # hashing a str is cheaper than a Path (which normalises its parts every time)
            cached = _CONF_CACHE.get(key)
            if cached is not None and cached[0] == stamp:
                return copy.deepcopy(cached[1])
            text = handle.read().decode("utf-8")
    except FileNotFoundError:
        return {}
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{label}: cannot read: {exc}") from exc
    try:
        raw = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{label}: invalid TOML: {exc}") from exc
    problems = [
        f"{label}: {key}: expected a table (one per conf key), got {_describe(value)}"
        for key, value in raw.items()
        if not isinstance(value, dict)
    ]
    if problems:
        raise ConfigError("; ".join(problems), problems)
    _CONF_CACHE[key] = (stamp, copy.deepcopy(raw))
    return raw


def conf_group(etc_dir: Path, kind: ConfKind, type_name: str, key: str) -> dict[str, Any]:
    """The props of conf group ``key``: the named table merged (shallowly) over ``[default]``.

    ``key == "default"`` always exists, empty when the file or table is missing, so connectors without a
    conf file work out of the box. The result is a fresh dict the caller may modify.

    Raises:
      ConfigError: invalid key, unreadable file, or a named group that does not exist.
    """
    check_conf_key(key)
    groups = load_conf_groups(etc_dir, kind, type_name)
    if key != "default" and key not in groups:
        _, label = _conf_file(etc_dir, kind, type_name)
        known = ", ".join(sorted(groups)) or "none"
        raise ConfigError(f"conf key {key!r} is not found in {label} (known: {known})")
    return {**groups.get("default", {}), **groups.get(key, {})}


def save_conf_group(
    etc_dir: Path, kind: ConfKind, type_name: str, key: str, props: Mapping[str, Any]
) -> None:
    """Create or replace conf group ``key`` with ``props`` and rewrite the file atomically.

    ``None`` values are dropped (TOML has no null; STACK.md §d gotcha 3). Comments in the file are not kept:
    tomli-w writes plain TOML.

    Raises:
      ConfigError: invalid key or type, the existing file is broken, or a value TOML cannot hold.
    """
    check_conf_key(key)
    groups = load_conf_groups(etc_dir, kind, type_name)
    groups[key] = _prune_none(dict(props))
    _write_conf_groups(etc_dir, kind, type_name, groups)


def delete_conf_group(etc_dir: Path, kind: ConfKind, type_name: str, key: str) -> None:
    """Remove conf group ``key`` and rewrite the file atomically.

    Raises:
      NotFoundError: no such group (REST answers 404).
      ConfigError: invalid key or type, or the existing file is broken.
    """
    check_conf_key(key)
    groups = load_conf_groups(etc_dir, kind, type_name)
    if key not in groups:
        _, label = _conf_file(etc_dir, kind, type_name)
        raise NotFoundError(f"conf key {key!r} is not found in {label}")
    del groups[key]
    _write_conf_groups(etc_dir, kind, type_name, groups)


def _write_conf_groups(etc_dir: Path, kind: ConfKind, type_name: str, groups: dict[str, Any]) -> None:
    path, label = _conf_file(etc_dir, kind, type_name)
    try:
        text = tomli_w.dumps(groups)
    except TypeError as exc:
        raise ConfigError(f"{label}: cannot write: {exc}") from exc
    atomic_write(path, text.encode("utf-8"))
    _CONF_CACHE.pop(str(path), None)


def _prune_none(value: Any) -> Any:
    if isinstance(value, Mapping):
        return {k: _prune_none(v) for k, v in value.items() if v is not None}
    if isinstance(value, list | tuple):
        return [_prune_none(v) for v in value if v is not None]
    return value
