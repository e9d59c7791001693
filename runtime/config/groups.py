"""Conf groups: the named property tables of ``etc/<kind>/<type>.toml`` that connectors take by ``confKey``,
read (with a parse cache), merged over ``[default]``, created, replaced and deleted.
"""

from __future__ import annotations

import copy
import os
import tomllib
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal

import orjson
import tomli_w

from runtime.config.converter import describe, prune_none
from runtime.config.schema import MAX_ID_LENGTH, id_problem
from runtime.errors import ConfigError, NotFoundError, StorageError
from runtime.store.files import atomic_write

ConfKind = Literal["sources", "sinks"]


def check_conf_key(key: str) -> None:
    """Raise ``ConfigError`` unless ``key`` is a valid conf key (``^[A-Za-z0-9_-]+$``)."""
    if id_problem(key) is not None:
        shown = (
            key if isinstance(key, str) and len(key) <= MAX_ID_LENGTH else f"of {len(str(key))} characters"
        )
        raise ConfigError(
            f"invalid conf key {shown!r}: use only letters, digits, '_' and '-', at most {MAX_ID_LENGTH}"
        )


def _conf_file(etc_dir: Path, kind: ConfKind, type_name: str) -> tuple[Path, str]:
    if kind not in ("sources", "sinks"):
        raise ConfigError(f"invalid conf kind {kind!r}: expected 'sources' or 'sinks'")
    # The type name becomes a file name: the ID rule also keeps it from escaping the folder ("../x").
    if id_problem(type_name) is not None:
        raise ConfigError(f"invalid connector type {str(type_name)[:MAX_ID_LENGTH]!r}")
    label = f"{kind}/{type_name}.toml"
    return etc_dir / kind / f"{type_name}.toml", label


# Parsed conf files by path, with the (inode, size, mtime, ctime) they were parsed at (``load_conf_groups``): a
# memo of pure parsing, safe to share between engines in one process because the stamp is checked on every read
# and callers only ever get deep copies. Oort's own writes replace the file (new inode) and evict the entry.
_CONF_CACHE: dict[str, tuple[tuple[int, int, int, int], dict[str, dict[str, Any]]]] = {}


def load_conf_groups(
    etc_dir: Path, kind: ConfKind, type_name: str, overlay: Path | None = None
) -> dict[str, dict[str, Any]]:
    """All conf groups of one connector type, ``{conf_key: props}``; a missing file has none.

    With ``overlay`` (the data dir's ``conf`` folder, where the REST API keeps its changes), its groups replace
    the shipped ones of the same name and the groups it removed are left out. Values are kept as parsed
    (free-form per connector); each connector validates its own keys.

    Raises:
      ConfigError: bad TOML, or a top-level entry that is not a table.
    """
    path, label = _conf_file(etc_dir, kind, type_name)
    groups = _load_file(path, label)
    if overlay is None:
        return groups
    over_path, _ = _conf_file(overlay, kind, type_name)
    removed = _removed(over_path)
    merged = {key: props for key, props in groups.items() if key not in removed}
    merged.update(_load_file(over_path, f"{label} (changes in {overlay})"))
    return merged


def _removed(over_path: Path) -> set[str]:
    """The shipped groups the REST API deleted: the overlay cannot delete a table of etc/ by itself."""
    try:
        keys = orjson.loads(over_path.with_suffix(".removed").read_bytes())
    except FileNotFoundError:
        return set()
    except (OSError, orjson.JSONDecodeError) as exc:
        raise ConfigError(f"{over_path.with_suffix('.removed')}: cannot read: {exc}") from exc
    return {key for key in keys if isinstance(key, str)} if isinstance(keys, list) else set()


def _load_file(path: Path, label: str) -> dict[str, dict[str, Any]]:
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
        f"{label}: {key}: expected a table (one per conf key), got {describe(value)}"
        for key, value in raw.items()
        if not isinstance(value, dict)
    ]
    if problems:
        raise ConfigError("; ".join(problems), problems)
    _CONF_CACHE[key] = (stamp, copy.deepcopy(raw))
    return raw


def conf_group(
    etc_dir: Path, kind: ConfKind, type_name: str, key: str, overlay: Path | None = None
) -> dict[str, Any]:
    """The props of conf group ``key``: the named table merged (shallowly) over ``[default]``.

    ``key == "default"`` always exists, empty when the file or table is missing, so connectors without a
    conf file work out of the box. The result is a fresh dict the caller may modify.

    Raises:
      ConfigError: invalid key, unreadable file, or a named group that does not exist.
    """
    check_conf_key(key)
    groups = load_conf_groups(etc_dir, kind, type_name, overlay)
    if key != "default" and key not in groups:
        _, label = _conf_file(etc_dir, kind, type_name)
        known = ", ".join(sorted(groups)) or "none"
        raise ConfigError(f"conf key {key!r} is not found in {label} (known: {known})")
    return {**groups.get("default", {}), **groups.get(key, {})}


def save_conf_group(
    etc_dir: Path,
    kind: ConfKind,
    type_name: str,
    key: str,
    props: Mapping[str, Any],
    overlay: Path | None = None,
) -> None:
    """Create or replace conf group ``key`` with ``props``, atomically.

    With ``overlay`` the change goes there and ``etc_dir`` is never written (its comments stay); without, the
    file in ``etc_dir`` is rewritten by tomli-w, which keeps no comments. ``None`` values are dropped (TOML has
    no null).

    Raises:
      ConfigError: invalid key or type, the existing file is broken, or a value TOML cannot hold.
      StorageError: the file cannot be written.
    """
    check_conf_key(key)
    target = overlay if overlay is not None else etc_dir
    load_conf_groups(etc_dir, kind, type_name, overlay)  # the files as they are must be sound
    path, label = _conf_file(target, kind, type_name)
    groups = _load_file(path, label)
    before = dict(groups)
    groups[key] = prune_none(dict(props))
    _write_conf_groups(target, kind, type_name, groups)
    if overlay is not None:
        try:
            _set_removed(path, _removed(path) - {key})
        except StorageError:
            _write_conf_groups(target, kind, type_name, before)  # all or nothing
            raise


def delete_conf_group(
    etc_dir: Path, kind: ConfKind, type_name: str, key: str, overlay: Path | None = None
) -> None:
    """Remove conf group ``key``, atomically (with ``overlay``: recorded there, ``etc_dir`` untouched).

    Raises:
      NotFoundError: no such group (REST answers 404).
      ConfigError: invalid key or type, or the existing file is broken.
      StorageError: the file cannot be written.
    """
    check_conf_key(key)
    if key not in load_conf_groups(etc_dir, kind, type_name, overlay):
        _, label = _conf_file(etc_dir, kind, type_name)
        raise NotFoundError(f"conf key {key!r} is not found in {label}")
    target = overlay if overlay is not None else etc_dir
    path, label = _conf_file(target, kind, type_name)
    groups = _load_file(path, label)
    if key in groups:
        del groups[key]
        _write_conf_groups(target, kind, type_name, groups)
    if overlay is not None and key in _load_file(*_conf_file(etc_dir, kind, type_name)):
        _set_removed(path, _removed(path) | {key})


def _set_removed(over_path: Path, keys: set[str]) -> None:
    removed = over_path.with_suffix(".removed")
    if not keys and not removed.exists():
        return
    try:
        over_path.parent.mkdir(parents=True, exist_ok=True)
        atomic_write(removed, orjson.dumps(sorted(keys)))
    except OSError as exc:
        raise StorageError(f"cannot write {removed}: {exc.strerror}") from exc


def _write_conf_groups(etc_dir: Path, kind: ConfKind, type_name: str, groups: dict[str, Any]) -> None:
    path, label = _conf_file(etc_dir, kind, type_name)
    try:
        text = tomli_w.dumps(groups)
    except TypeError as exc:
        raise ConfigError(f"{label}: cannot write: {exc}") from exc
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        atomic_write(path, text.encode("utf-8"))
    except OSError as exc:
        raise StorageError(f"{label}: cannot write {path}: {exc.strerror}") from exc
    _CONF_CACHE.pop(str(path), None)
