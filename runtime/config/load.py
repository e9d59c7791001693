"""Reading input into the schema: ``etc/oort.toml`` text to a ``Config`` and back, and a rule JSON's
``options`` merged over the ``[rule]`` defaults into ``RuleOptions``.
"""

from __future__ import annotations

import tomllib
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import attrs
import tomli_w

from runtime.config.converter import CONVERTER, prune_none, structure
from runtime.config.schema import EKUIPER_ONLY_OPTIONS, Config, RuleOptions
from runtime.errors import ConfigError

CONFIG_FILE = "oort.toml"


def shipped_etc() -> Path:
    """The default configuration folder that comes with Oort: ``runtime/_etc`` in an installed wheel
    (pyproject force-include), else the checkout's ``etc/``. ``oort serve`` without ``--etc`` uses it when the
    working directory has no ``etc/oort.toml`` (a ``pipx install``); the daemon never writes to it."""
    packaged = Path(__file__).resolve().parents[1] / "_etc"
    return packaged if (packaged / CONFIG_FILE).is_file() else Path(__file__).resolve().parents[2] / "etc"


def load_config(etc_dir: Path) -> Config:
    """Read ``etc_dir/oort.toml``; a missing file or section means defaults.

    Raises:
      ConfigError: the file is not valid TOML, or has unknown keys, wrongly typed or out-of-range values.
        ``message`` lists every problem as ``oort.toml: source.httpServerPort: expected int, got str '10081'``;
        ``problems`` holds them one by one.
    """
    return structure(read_config_table(etc_dir), Config, (), f"{CONFIG_FILE}: ")


def read_config_table(etc_dir: Path) -> dict[str, Any]:
    """The TOML table of ``etc_dir/oort.toml``, unchecked (empty when there is no file).

    Raises:
      ConfigError: the file cannot be read or is not valid TOML.
    """
    try:
        text = (etc_dir / CONFIG_FILE).read_text(encoding="utf-8")
    except FileNotFoundError:
        return {}
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{CONFIG_FILE}: cannot read: {exc}") from exc
    return _toml(text, CONFIG_FILE)


def parse_config(text: str, label: str = CONFIG_FILE) -> Config:
    """Structure TOML text into a ``Config``; errors are prefixed with ``label`` (see ``load_config``)."""
    return structure(_toml(text, label), Config, (), f"{label}: ")


def _toml(text: str, label: str) -> dict[str, Any]:
    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        # tomllib's message already carries "(at line L, column C)".
        raise ConfigError(f"{label}: invalid TOML: {exc}") from exc


def dump_config(config: Config) -> str:
    """Render ``config`` as ``oort.toml`` text that ``parse_config`` reads back to an equal ``Config``."""
    return tomli_w.dumps(prune_none(CONVERTER.unstructure(config)))


def rule_options(user: Mapping[str, Any], defaults: RuleOptions) -> RuleOptions:
    """Merge a rule JSON's ``options`` object over ``defaults`` (the ``[rule]`` section of ``oort.toml``).

    ``restartStrategy`` merges key by key; ``lateTolerance`` and ``checkpointInterval`` take int ms or a Go
    duration string (``"1m30s"``); a JSON ``null`` keeps the default; options eKuiper documents but Oort does not
    implement go to ``extra``.

    Raises:
      ConfigError: unknown keys, wrong types or out-of-range values, all listed, each as
        ``options.bufferLength: expected int, got str '10'``.
    """
    merged: dict[str, Any] = CONVERTER.unstructure(defaults)
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
    options = structure(merged, RuleOptions, ("options",), "")
    return attrs.evolve(options, extra=extra)


def unstructure_rule_options(opts: RuleOptions) -> dict[str, Any]:
    """The camelCase JSON form of ``opts`` (status and export APIs), eKuiper-only ``extra`` options included."""
    raw: dict[str, Any] = CONVERTER.unstructure(opts)
    return {**raw, **opts.extra}
