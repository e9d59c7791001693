"""The sink cache (eKuiper's sink cache, docs guide/sinks/overview.md "Caching"): the messages a sink's target
could not take yet, kept in order until ``runtime.rule.sinkwriter.SinkWriter`` resends them.

Pending messages are kept oldest first: the oldest ``memoryCacheThreshold`` in memory, then pages of
``bufferPageSize`` on disk (``runtime.rule.sinkpages``), then the page being filled. Past ``maxDiskCache``
messages on disk, the oldest disk page is dropped and its messages are counted (as eKuiper, which drops the
oldest page when its disk cache is full). When the rule stops, memory and the page being filled are written
to disk too (``cleanCacheAtStop`` drops everything instead), and the next run resends them first.

What a daemon killed with SIGKILL keeps: every full page on disk. What is in memory and the page being filled
are lost (eKuiper documents the same), and a page that was being resent is resent whole (at least once).
"""

from __future__ import annotations

import collections
import logging
from collections.abc import Callable
from pathlib import Path
from typing import final

from runtime.errors import SinkError
from runtime.io.sinkprops import CacheProps
from runtime.rule.sinkpages import FIRST_SEQ, DiskPages, Entry, MemoryPages, PageRef, PageStore

CACHE_DIR = "sinkcache"  # in the data dir: <rule id>/<action index>/ holds one action's disk pages


def cache_folder(data_dir: Path, rule_id: str, index: int) -> Path:
    """The folder of the disk cache of action ``index`` of rule ``rule_id``."""
    return data_dir / CACHE_DIR / rule_id / str(index)


@final
class SinkCache:
    """The pending messages of one sink, oldest first: memory, disk pages, the page being filled.

    Invariants: entries are added to memory only while nothing is on disk, in the page being filled or loaded
    from a page (``_loaded``), so memory always holds the oldest entries; a page loaded into memory keeps its
    file until its last entry is sent (a process killed meanwhile resends it whole: at least once).

    Args:
      props: the action's cache properties.
      store: where pages go.
      logger: the rule's logger (for pages that cannot be written or read).
    """

    __slots__ = (
        "_disk",
        "_disk_count",
        "_head_seq",
        "_loaded",
        "_logger",
        "_memory",
        "_next_seq",
        "_props",
        "_store",
        "_writing",
        "dropped",
        "length",
        "on_drop",
    )

    def __init__(self, props: CacheProps, store: PageStore, logger: logging.Logger) -> None:
        self._props = props
        self._store = store
        self._logger = logger
        self._memory: collections.deque[Entry] = collections.deque()
        self._writing: list[Entry] = []
        self._disk: collections.deque[PageRef] = collections.deque()
        self._disk_count = 0
        self._loaded: PageRef | None = None
        self._head_seq = FIRST_SEQ
        self._next_seq = FIRST_SEQ
        self.length = 0  # every pending entry (the sink's ``buffer_length`` adds it)
        self.dropped = 0
        self.on_drop: Callable[[int, str], None] = lambda count, why: None

    def open(self) -> None:
        """Take over the pages a previous run left (or remove them with ``cleanCacheAtStop``).

        Raises:
          OSError: the cache folder cannot be listed.
        """
        if self._props.clean_at_stop:
            self._store.clear()
            return
        pages = self._store.pages()
        self._disk.extend(pages)
        self._disk_count = sum(ref.count for ref in pages)
        self.length = self._disk_count
        if pages:
            self._head_seq, self._next_seq = pages[0].seq, pages[-1].seq + 1
            self._logger.info(
                "sink cache: %d messages left by the last run will be resent first", self.length
            )

    def add(self, entry: Entry) -> None:
        """Queue ``entry`` behind every pending one (to disk past ``memoryCacheThreshold``)."""
        self.length += 1
        if self._loaded is None and not self._disk and not self._writing:
            if len(self._memory) < self._props.memory_threshold:
                self._memory.append(entry)
                return
        self._writing.append(entry)
        if len(self._writing) >= self._props.page_size:
            self._spill()

    def head(self) -> Entry | None:
        """The oldest pending entry (loading the next page into memory when needed), None when nothing is."""
        while not self._memory:
            if self._disk:
                ref = self._disk.popleft()
                self._disk_count -= ref.count
                try:
                    entries = self._store.read(ref)
                except (OSError, ValueError) as exc:
                    self._logger.error(
                        "sink cache: page %d is unreadable, %d messages lost: %s", ref.seq, ref.count, exc
                    )
                    self._store.delete(ref)
                    self.length -= ref.count
                    self._drop(ref.count, "sink cache: an unreadable disk page was dropped")
                    continue
                self.length += len(entries) - ref.count
                self._memory.extend(entries)
                self._loaded = ref if entries else None
                if not entries:
                    self._store.delete(ref)
            elif self._writing:
                self._memory.extend(self._writing)
                self._writing = []
            else:
                self.length = 0  # nothing is left anywhere, whatever the count said
                return None
        return self._memory[0]

    def pop(self) -> None:
        """Remove the head (sent, or dropped for good); a loaded page's file goes with its last entry."""
        self._memory.popleft()
        self.length -= 1
        if self._loaded is not None and not self._memory:
            self._store.delete(self._loaded)
            self._loaded = None

    def close(self) -> None:
        """The rule stops: write what is in memory to disk so the next run resends it (all of it is dropped
        with ``cleanCacheAtStop``, and lost without a data dir)."""
        if self._props.clean_at_stop:
            self._store.clear()
            return
        if not self._store.durable:
            if self.length:
                self._logger.warning(
                    "sink cache: %d unsent messages lost (no data dir to keep them)", self.length
                )
            return
        try:
            if self._loaded is not None:
                # The rest of a loaded page goes back to its own position; the full page is removed after, so a
                # crash in between leaves both, and the shorter (current) one wins when the cache is reopened.
                if len(self._memory) != self._loaded.count:
                    self._store.write(self._loaded.seq, list(self._memory))
                    self._store.delete(self._loaded)
            elif self._memory:
                entries = list(self._memory)
                size = self._props.page_size
                chunks = [entries[i : i + size] for i in range(0, len(entries), size)]
                for n, chunk in enumerate(chunks):
                    self._store.write(self._head_seq - len(chunks) + n, chunk)
            if self._writing:
                self._store.write(self._next_seq, self._writing)
        except OSError as exc:
            self._logger.error("sink cache: unsent messages could not be saved: %s", exc)

    def _spill(self) -> None:
        """Write the filled page to the store, first dropping the oldest disk pages that would not fit."""
        entries, self._writing = self._writing, []
        while self._disk and self._disk_count + len(entries) > self._props.max_disk:
            oldest = self._disk.popleft()
            self._disk_count -= oldest.count
            self.length -= oldest.count
            self._store.delete(oldest)
            self._drop(
                oldest.count, f"sink cache full (maxDiskCache {self._props.max_disk}): oldest page dropped"
            )
        if not self._disk:
            self._head_seq = self._next_seq
        try:
            ref = self._store.write(self._next_seq, entries)
        except OSError as exc:
            self.length -= len(entries)
            self._drop(
                len(entries), f"sink cache: a page could not be written to disk: {exc.strerror or exc}"
            )
            return
        self._next_seq += 1
        self._disk.append(ref)
        self._disk_count += ref.count

    def _drop(self, count: int, why: str) -> None:
        self.dropped += count
        self._logger.warning("%s (%d messages)", why, count)
        self.on_drop(count, why)

    def __repr__(self) -> str:
        return (
            f"<SinkCache length={self.length} memory={len(self._memory)} disk_pages={len(self._disk)}"
            f" filling={len(self._writing)} store={self._store!r}>"
        )


def open_cache(
    props: CacheProps, data_dir: Path | None, rule_id: str, index: int, logger: logging.Logger
) -> SinkCache:
    """The cache of one action: on disk under the data dir, or in memory only without one.

    Raises:
      SinkError: the cache folder cannot be read.
    """
    store: PageStore = (
        MemoryPages() if data_dir is None else DiskPages(cache_folder(data_dir, rule_id, index))
    )
    cache = SinkCache(props, store, logger)
    try:
        cache.open()
    except OSError as exc:
        raise SinkError(f"sink cache of action {index}: {exc.strerror or exc}") from exc
    return cache


def drop_rule_caches(data_dir: Path, rule_id: str) -> None:
    """Remove every sink cache of a rule (for when the rule is deleted, as eKuiper does)."""
    DiskPages(data_dir / CACHE_DIR / rule_id).clear()
