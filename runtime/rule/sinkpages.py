"""Where a sink cache keeps the pages it cannot hold in memory: files in the data dir, or memory without one.

A page is a list of cache entries (a sink message and whether it ends its emission), written and read whole:
``bufferPageSize`` messages are the unit of every disk write, so the rule's event loop never does more disk
I/O at once than one page. Each page is one file written with ``atomic_write`` (temporary file, fsync,
rename, fsync of the folder), so a daemon killed at any moment leaves every page either complete or absent.

File names carry the page's position and length, ``<seq as 16 hex digits>-<count>.page``, so a restarted
cache knows its order and size from the folder listing alone, without reading a page before it is needed.
The same position twice means a page was shrunk (the unsent rest of a partly sent page was written back at
its old position when the rule stopped) and the process died before the old file was removed: the shorter
one is the current one, as the rest of a page is always its tail.

Rows are stored losslessly, beyond what JSON has: bytes, datetimes, integers past 64 bits, NaN and the
infinities travel as one-key objects whose key starts with NUL, a character no real column name has (and
an object that does have such keys is stored as a list of pairs).
"""

from __future__ import annotations

import base64
import contextlib
import datetime
import math
import os
import shutil
from pathlib import Path
from typing import Any, Protocol, final

import attrs
import orjson

from runtime.io.sinkprops import Message
from runtime.io.sinktemplate import Rendered
from runtime.store.files import atomic_write

PAGE_SUFFIX = ".page"
FIRST_SEQ = 1 << 40  # position of a fresh cache's first page: room below it for pages written back in front
_INT64 = 1 << 63

Entry = tuple[Message, bool]
"""One cached sink message and whether it is the last message of its emission (for ``records_out``)."""


@final
@attrs.frozen(order=True)
class PageRef:
    """A stored page: its position (pages are sent in ``seq`` order) and how many entries it holds."""

    seq: int
    count: int


class PageStore(Protocol):
    """Where pages go: ``DiskPages`` (a folder) or ``MemoryPages`` (no data dir: lost when the rule stops)."""

    def pages(self) -> list[PageRef]:
        """The stored pages, oldest first."""
        ...

    def write(self, seq: int, entries: list[Entry]) -> PageRef:
        """Store a page at position ``seq``. Raises OSError when it could not be written."""
        ...

    def read(self, ref: PageRef) -> list[Entry]:
        """A stored page's entries. Raises OSError or ValueError when it is unreadable."""
        ...

    def delete(self, ref: PageRef) -> None: ...

    def clear(self) -> None:
        """Remove every page."""
        ...

    @property
    def durable(self) -> bool:
        """Whether pages outlive the rule run (and the process)."""
        ...


@final
class DiskPages:
    """Pages as files in ``folder`` (created on first write; see the module docstring for names and safety)."""

    __slots__ = ("folder",)

    def __init__(self, folder: Path) -> None:
        self.folder = folder

    @property
    def durable(self) -> bool:
        return True

    def pages(self) -> list[PageRef]:
        """The pages in the folder, oldest first; stale temporary files of a killed write are removed."""
        found: dict[int, int] = {}
        try:
            names = os.listdir(self.folder)
        except FileNotFoundError:
            return []
        for name in names:
            if name.startswith(".") and name.endswith(".tmp"):
                with contextlib.suppress(OSError):
                    (self.folder / name).unlink()
                continue
            ref = _parse_name(name)
            if ref is None:
                continue
            if (
                ref.seq in found
            ):  # a page written back shorter, and the process died before the old was removed
                longer = max(found[ref.seq], ref.count)
                with contextlib.suppress(OSError):
                    (self.folder / _name(PageRef(ref.seq, longer))).unlink()
                found[ref.seq] = min(found[ref.seq], ref.count)
            else:
                found[ref.seq] = ref.count
        return [PageRef(seq, count) for seq, count in sorted(found.items())]

    def write(self, seq: int, entries: list[Entry]) -> PageRef:
        ref = PageRef(seq, len(entries))
        atomic_write(self.folder / _name(ref), encode_page(entries))
        return ref

    def read(self, ref: PageRef) -> list[Entry]:
        return decode_page((self.folder / _name(ref)).read_bytes())

    def delete(self, ref: PageRef) -> None:
        with contextlib.suppress(FileNotFoundError):
            (self.folder / _name(ref)).unlink()

    def clear(self) -> None:
        shutil.rmtree(self.folder, ignore_errors=True)

    def __repr__(self) -> str:
        return f"<DiskPages {str(self.folder)!r}>"


@final
class MemoryPages:
    """Pages kept in memory: the same bounds and order as on disk, but gone when the rule run ends."""

    __slots__ = ("_pages",)

    def __init__(self) -> None:
        self._pages: dict[int, list[Entry]] = {}

    @property
    def durable(self) -> bool:
        return False

    def pages(self) -> list[PageRef]:
        return [PageRef(seq, len(entries)) for seq, entries in sorted(self._pages.items())]

    def write(self, seq: int, entries: list[Entry]) -> PageRef:
        self._pages[seq] = list(entries)
        return PageRef(seq, len(entries))

    def read(self, ref: PageRef) -> list[Entry]:
        return self._pages[ref.seq]

    def delete(self, ref: PageRef) -> None:
        self._pages.pop(ref.seq, None)

    def clear(self) -> None:
        self._pages.clear()

    def __repr__(self) -> str:
        return f"<MemoryPages pages={len(self._pages)}>"


def _name(ref: PageRef) -> str:
    return f"{ref.seq:016x}-{ref.count}{PAGE_SUFFIX}"


def _parse_name(name: str) -> PageRef | None:
    if not name.endswith(PAGE_SUFFIX):
        return None
    seq, sep, count = name[: -len(PAGE_SUFFIX)].partition("-")
    try:
        return PageRef(int(seq, 16), int(count)) if sep and len(seq) == 16 else None
    except ValueError:
        return None


def encode_page(entries: list[Entry]) -> bytes:
    """The bytes of one page file: ``{"entries": [[message, last], ...]}`` with the values tagged losslessly."""
    return orjson.dumps({"entries": [[_tag(message), last] for message, last in entries]})


def decode_page(data: bytes) -> list[Entry]:
    """The entries of a page file's bytes.

    Raises:
      ValueError: not a page (``orjson.JSONDecodeError`` is a ValueError too).
    """
    doc = orjson.loads(data)
    raw = doc.get("entries") if isinstance(doc, dict) else None
    if not isinstance(raw, list):
        raise ValueError("not a sink cache page")
    entries: list[Entry] = []
    for item in raw:
        if not (isinstance(item, list) and len(item) == 2 and isinstance(item[1], bool)):
            raise ValueError("not a sink cache page entry")
        message = _untag(item[0])
        if not isinstance(message, dict | list | str):
            raise ValueError("a sink cache page entry is neither a row, a list of rows nor a rendered text")
        entries.append((message, item[1]))
    return entries


def _tag(value: Any) -> Any:
    """``value`` as JSON that ``_untag`` turns back into an equal value."""
    if isinstance(
        value, Rendered
    ):  # a dataTemplate output keeps the rows its templated properties render from
        return {"\x00r": [str(value), _tag(value.data)]}
    if value is None or isinstance(value, bool | str):
        return value
    if isinstance(value, int):
        return value if -_INT64 <= value < _INT64 else {"\x00i": str(value)}
    if isinstance(value, float):
        return value if math.isfinite(value) else {"\x00f": repr(value)}
    if isinstance(value, dict):
        if all(isinstance(key, str) and not key.startswith("\x00") for key in value):
            return {key: _tag(item) for key, item in value.items()}
        return {"\x00m": [[_tag(key), _tag(item)] for key, item in value.items()]}
    if isinstance(value, list | tuple):
        return [_tag(item) for item in value]
    if isinstance(value, bytes | bytearray | memoryview):
        return {"\x00b": base64.b64encode(value).decode("ascii")}
    if isinstance(value, datetime.datetime):
        return {"\x00t": value.isoformat()}
    return str(value)  # no other type reaches a sink; a stranger one is kept as its text rather than lost


def _untag(value: Any) -> Any:
    if isinstance(value, list):
        return [_untag(item) for item in value]
    if not isinstance(value, dict):
        return value
    if len(value) == 1:
        ((key, item),) = value.items()
        if key == "\x00b":
            return base64.b64decode(item)
        if key == "\x00t":
            return datetime.datetime.fromisoformat(item)
        if key == "\x00i":
            return int(item)
        if key == "\x00f":
            return float(item)
        if key == "\x00m":
            return {_untag(k): _untag(v) for k, v in item}
        if key == "\x00r":
            return Rendered(item[0], _untag(item[1]))
    return {key: _untag(item) for key, item in value.items()}
