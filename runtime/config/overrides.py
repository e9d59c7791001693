"""The daemon's settings from three layers over the defaults: ``etc/oort.toml``, environment variables and
``oort serve`` flags, in rising precedence (flag > environment > file > default).

Every key of ``oort.toml`` has an environment variable: ``OORT__`` then the section and key path in capitals,
joined by ``__`` (``OORT__BASIC__RESTPORT=9090``, ``OORT__RULE__RESTARTSTRATEGY__ATTEMPTS=3``), as eKuiper's
``KUIPER__BASIC__RESTPORT``. Values of text settings are taken as they are; others are read as TOML values
(``9090``, ``true``, ``["https://a.example"]``). Each layer is checked like the file, so a bad variable is
reported with its name, and an unknown one names the nearest valid key.
"""

from __future__ import annotations

import difflib
import tomllib
from collections.abc import Mapping
from pathlib import Path
from typing import Any, final, get_args, get_type_hints

import attrs
import tomli_w

from runtime.config.converter import CONVERTER, _to_camel, structure
from runtime.config.load import CONFIG_FILE, read_config_table
from runtime.config.schema import Config
from runtime.errors import ConfigError

ENV_PREFIX = "OORT__"

# ``oort serve`` flags and the key each sets.
SERVE_FLAGS: Mapping[str, str] = {
    "--rest-host": "basic.restIp",
    "--rest-port": "basic.restPort",
    "--data-host": "source.httpServerIp",
    "--data-port": "source.httpServerPort",
    "--log-level": "basic.logLevel",
}


@final
@attrs.frozen
class Layered:
    """The merged settings and, per dotted key set by a layer, where it came from (``oort config show``)."""

    config: Config
    origins: dict[str, str]


def _keys(cls: type) -> dict[str, tuple[str, Any]]:
    """camelCase key -> (camelCase key, type) of an attrs class, nested classes as their class."""
    hints = get_type_hints(cls)
    out: dict[str, tuple[str, Any]] = {}
    for field in attrs.fields(cls):
        if field.name == "extra":
            continue
        kind = hints[field.name]
        classes = [arg for arg in (get_args(kind) or (kind,)) if attrs.has(arg)]
        out[_to_camel(field.name)] = (_to_camel(field.name), classes[0] if classes else kind)
    return out


def _env_layer(environ: Mapping[str, str]) -> tuple[dict[str, Any], dict[str, str]]:
    raw: dict[str, Any] = {}
    origins: dict[str, str] = {}
    problems: list[str] = []
    for name in sorted(environ):
        if not name.upper().startswith(ENV_PREFIX):
            continue
        parts = name[len(ENV_PREFIX) :].split("__")
        cls: Any = Config
        path: list[str] = []
        for index, part in enumerate(parts):
            keys = _keys(cls) if attrs.has(cls) else {}
            by_upper = {key.upper(): key for key in keys}
            key = by_upper.get(part.upper())
            if key is None:
                near = difflib.get_close_matches(part.upper(), by_upper, n=1)
                where = ".".join(path) or "the top level"
                hint = f"; did you mean {ENV_PREFIX}{'__'.join([*parts[:index], near[0]])}?" if near else ""
                known = ", ".join(keys) or "no keys (not a table)"
                problems.append(f"{name}: {part!r} is no key of {where} (known: {known}){hint}")
                break
            path.append(key)
            cls = keys[key][1]
        else:
            if attrs.has(cls):
                problems.append(f"{name}: {'.'.join(path)} is a table; set its keys one by one")
                continue
            value: Any = environ[name]
            if cls is not str:
                try:
                    value = tomllib.loads(f"v = {value}")["v"]
                except tomllib.TOMLDecodeError:
                    pass  # left as text: the check below says what was expected
            node = raw
            for key in path[:-1]:
                node = node.setdefault(key, {})
            node[path[-1]] = value
            origins[".".join(path)] = f"environment {name}"
    if problems:
        raise ConfigError("environment: " + "; ".join(problems), problems)
    return raw, origins


def _named(problem: str, env_origins: Mapping[str, str]) -> str:
    key = problem.split(":", 1)[0]
    origin = env_origins.get(key)
    return f"{origin} ({problem})" if origin else f"environment: {problem}"


def _merge(base: dict[str, Any], top: Mapping[str, Any]) -> dict[str, Any]:
    out = dict(base)
    for key, value in top.items():
        out[key] = (
            _merge(out[key], value)
            if isinstance(value, Mapping) and isinstance(out.get(key), dict)
            else value
        )
    return out


def _flat(raw: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in raw.items():
        path = f"{prefix}{key}"
        if isinstance(value, Mapping):
            out.update(_flat(value, path + "."))
        else:
            out[path] = value
    return out


def load_layered(
    etc_dir: Path | None, environ: Mapping[str, str], flags: Mapping[str, Any] | None = None
) -> Layered:
    """The settings of ``etc_dir/oort.toml`` (None: no file), then ``OORT__...`` variables, then ``flags``
    (dotted keys, e.g. ``{"basic.restPort": 9090}``).

    Raises:
      ConfigError: a layer has unknown keys or bad values; the message names the file, variable or flag.
    """
    file_raw: dict[str, Any] = {}
    origins: dict[str, str] = {}
    if etc_dir is not None:
        file_raw = read_config_table(etc_dir)
        structure(file_raw, Config, (), f"{CONFIG_FILE}: ")
        origins.update(dict.fromkeys(_flat(file_raw), f"file {etc_dir / CONFIG_FILE}"))
    env_raw, env_origins = _env_layer(environ)
    merged = _merge(file_raw, env_raw)
    try:
        structure(merged, Config, (), "")
    except ConfigError as exc:  # name the variable behind each problem
        problems = [_named(problem, env_origins) for problem in exc.problems]
        raise ConfigError("; ".join(problems), problems) from exc
    origins.update(env_origins)
    flag_raw: dict[str, Any] = {}
    for dotted, value in (flags or {}).items():
        section, _, key = dotted.partition(".")
        flag_raw.setdefault(section, {})[key] = value
        flag = next((f for f, k in SERVE_FLAGS.items() if k == dotted), dotted)
        origins[dotted] = f"flag {flag}"
    config = structure(_merge(merged, flag_raw), Config, (), "flags: ")
    return Layered(config, origins)


def show(layered: Layered) -> str:
    """Every setting as ``oort.toml`` text, each line saying where its value came from."""
    lines: list[str] = []
    raw: dict[str, Any] = CONVERTER.unstructure(layered.config)

    def emit(table: Mapping[str, Any], prefix: str) -> None:
        leaves = {k: v for k, v in table.items() if not isinstance(v, Mapping) and v is not None}
        tables = {k: v for k, v in table.items() if isinstance(v, Mapping)}
        if prefix and leaves:
            lines.append(f"\n[{prefix}]")
        for key, value in leaves.items():
            dotted = f"{prefix}.{key}" if prefix else key
            text = _toml_value(value)
            lines.append(f"{key} = {text}  # {layered.origins.get(dotted, 'default')}")
        for key, value in tables.items():
            emit(value, f"{prefix}.{key}" if prefix else key)

    emit(raw, "")
    return "\n".join(lines).lstrip("\n") + "\n"


def _toml_value(value: Any) -> str:
    return tomli_w.dumps({"v": value}).split("=", 1)[1].strip()
