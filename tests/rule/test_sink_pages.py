"""The sink cache by plain calls (runtime/rule/sinkcache.py and sinkpages.py), on real files in a tmp dir:
order across memory, disk and the page being filled, the disk bound, close and reopen, and what a killed
process leaves behind."""

from __future__ import annotations

import datetime
import logging
import math
from pathlib import Path
from typing import Any

import pytest

from runtime.io.sinkprops import CacheProps
from runtime.io.sinktemplate import Rendered
from runtime.rule.sinkcache import SinkCache, cache_folder, drop_rule_caches, open_cache
from runtime.rule.sinkpages import DiskPages, Entry, MemoryPages, decode_page, encode_page

LOGGER = logging.getLogger("oort.rule.test")
PROPS = CacheProps(enabled=True, memory_threshold=2, page_size=2, max_disk=6)


def _entry(i: int) -> Entry:
    return ({"id": i}, True)


def _drain(cache: SinkCache) -> list[int]:
    out = []
    while (entry := cache.head()) is not None:
        message = entry[0]
        assert isinstance(message, dict)
        out.append(message["id"])
        cache.pop()
    return out


def _pages(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir()) if folder.exists() else []


def test_entries_leave_in_order_from_memory_disk_and_the_filling_page(tmp_path: Path) -> None:
    folder = tmp_path / "c"
    cache = SinkCache(PROPS, DiskPages(folder), LOGGER)
    cache.open()
    for i in range(1, 8):
        cache.add(_entry(i))
    # 1-2 in memory, 3-4 and 5-6 on disk, 7 in the page being filled
    assert cache.length == 7
    assert len(_pages(folder)) == 2
    assert cache.head() == _entry(1)
    cache.pop()
    cache.add(_entry(8))  # fills the page: a third disk page, behind the others
    assert len(_pages(folder)) == 3
    assert _drain(cache) == [2, 3, 4, 5, 6, 7, 8]
    assert cache.length == 0
    assert _pages(folder) == []  # every page file goes once its last entry is sent


def test_a_full_disk_drops_the_oldest_page_and_counts_it(tmp_path: Path) -> None:
    drops: list[tuple[int, str]] = []
    cache = SinkCache(
        CacheProps(memory_threshold=2, page_size=2, max_disk=4), DiskPages(tmp_path / "c"), LOGGER
    )
    cache.on_drop = lambda count, why: drops.append((count, why))
    cache.open()
    for i in range(1, 11):
        cache.add(_entry(i))
    assert [count for count, _ in drops] == [2, 2]
    assert "maxDiskCache 4" in drops[0][1]
    assert cache.dropped == 4
    assert cache.length == 6
    assert _drain(cache) == [1, 2, 7, 8, 9, 10]


def test_close_keeps_everything_and_a_reopened_cache_resends_it_first(tmp_path: Path) -> None:
    folder = tmp_path / "c"
    cache = SinkCache(PROPS, DiskPages(folder), LOGGER)
    cache.open()
    for i in range(1, 8):
        cache.add(_entry(i))
    cache.close()  # memory (1, 2) goes in front of the disk pages, the filling page (7) behind them
    assert len(_pages(folder)) == 4
    again = SinkCache(PROPS, DiskPages(folder), LOGGER)
    again.open()
    assert again.length == 7
    again.add(_entry(8))
    assert _drain(again) == [1, 2, 3, 4, 5, 6, 7, 8]


def test_a_partly_sent_page_goes_back_shortened_and_a_stale_full_copy_loses(tmp_path: Path) -> None:
    folder = tmp_path / "c"
    cache = SinkCache(CacheProps(memory_threshold=2, page_size=2, max_disk=6), DiskPages(folder), LOGGER)
    cache.open()
    for i in range(1, 7):
        cache.add(_entry(i))
    assert _drain_n(cache, 3) == [1, 2, 3]  # page 3-4 is loaded and 3 was sent: its file stays until 4 is
    full_page = sorted(folder.iterdir())[0]  # the loaded page (3, 4): the oldest on disk
    assert full_page.name.endswith("-2.page")
    saved = full_page.read_bytes()
    cache.close()
    # Simulate a kill between writing the shortened page and removing the full one: both are on disk.
    full_page.write_bytes(saved)
    again = SinkCache(PROPS, DiskPages(folder), LOGGER)
    again.open()
    assert again.length == 3
    assert len(_pages(folder)) == 2  # the stale full copy was removed when the cache was opened
    assert _drain(again) == [4, 5, 6]


def _drain_n(cache: SinkCache, n: int) -> list[int]:
    out = []
    for _ in range(n):
        entry = cache.head()
        assert entry is not None and isinstance(entry[0], dict)
        out.append(entry[0]["id"])
        cache.pop()
    return out


def test_clean_cache_at_stop_drops_everything_and_stale_temp_files_are_swept(tmp_path: Path) -> None:
    folder = tmp_path / "c"
    keep = SinkCache(PROPS, DiskPages(folder), LOGGER)
    keep.open()
    for i in range(1, 6):
        keep.add(_entry(i))
    keep.close()
    (folder / ".0000010000000000-2.page.abc-1.tmp").write_bytes(b"half a page")
    reopened = SinkCache(PROPS, DiskPages(folder), LOGGER)
    reopened.open()
    assert reopened.length == 5
    assert not any(name.endswith(".tmp") for name in _pages(folder))
    clean = SinkCache(
        CacheProps(clean_at_stop=True, memory_threshold=2, page_size=2), DiskPages(folder), LOGGER
    )
    clean.open()  # cleanCacheAtStop: what an earlier run left is not resent
    assert clean.length == 0
    assert not folder.exists()
    clean.add(_entry(1))
    clean.close()
    assert not folder.exists()


def test_an_unreadable_page_is_dropped_counted_and_the_rest_goes_on(tmp_path: Path) -> None:
    folder = tmp_path / "c"
    cache = SinkCache(PROPS, DiskPages(folder), LOGGER)
    cache.open()
    for i in range(1, 7):
        cache.add(_entry(i))
    first_disk_page = sorted(folder.iterdir())[0]
    first_disk_page.write_bytes(b"not json")
    drops: list[int] = []
    cache.on_drop = lambda count, why: drops.append(count)
    assert _drain(cache) == [1, 2, 5, 6]
    assert drops == [2]
    assert cache.length == 0


def test_memory_pages_keep_the_order_and_bound_but_not_the_data(tmp_path: Path) -> None:
    cache = open_cache(PROPS, None, "r", 0, LOGGER)
    for i in range(1, 10):
        cache.add(_entry(i))
    assert cache.length == 9
    cache.close()  # no data dir: the unsent entries are logged as lost
    assert _drain(cache) == list(range(1, 10))
    assert isinstance(MemoryPages().pages(), list)


def test_rule_caches_live_under_the_data_dir_and_go_with_the_rule(tmp_path: Path) -> None:
    cache = open_cache(PROPS, tmp_path, "r1", 3, LOGGER)
    for i in range(1, 6):
        cache.add(_entry(i))
    folder = cache_folder(tmp_path, "r1", 3)
    assert folder == tmp_path / "sinkcache" / "r1" / "3"
    assert len(_pages(folder)) == 1
    drop_rule_caches(tmp_path, "r1")
    assert not (tmp_path / "sinkcache" / "r1").exists()


@pytest.mark.parametrize(
    "message",
    [
        {"b": b"\x00\x01\xff", "t": datetime.datetime(2024, 5, 1, 12, 0, tzinfo=datetime.UTC)},
        {"big": 1 << 70, "neg": -(1 << 64), "nan": math.inf, "minf": -math.inf},
        {"\x00b": "a key that looks like a tag", "nested": [{"\x00t": 1}, {"x": [b"y", None, True, 1.5]}]},
        [{"a": 1}, {"a": "2"}],
    ],
)
def test_pages_store_rows_losslessly(message: Any) -> None:
    entries = decode_page(encode_page([(message, False), ({"n": None}, True)]))
    assert entries == [(message, False), ({"n": None}, True)]


def test_nan_survives_a_page() -> None:
    ((message, last),) = decode_page(encode_page([({"x": math.nan}, True)]))
    assert isinstance(message, dict) and math.isnan(message["x"]) and last is True


def test_a_data_template_output_keeps_its_rows_on_a_page() -> None:
    rendered = Rendered('{"device": "d1"}', [{"id": "d1", "b": b"\x01"}])
    ((message, last),) = decode_page(encode_page([(rendered, True)]))
    assert isinstance(message, Rendered) and message == '{"device": "d1"}' and last is True
    assert message.data == [{"id": "d1", "b": b"\x01"}]  # what templated topics and urls render from
