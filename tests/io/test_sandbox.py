"""FileRoots on its own: where a path lands, what is refused, and what a read or an open does at the edges."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from runtime.errors import SandboxError
from runtime.io.sandbox import FileRoots


@pytest.fixture
def roots(tmp_path: Path) -> FileRoots:
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    return FileRoots([tmp_path / "a", tmp_path / "b"])


def test_relative_paths_land_in_the_first_root(roots: FileRoots, tmp_path: Path) -> None:
    assert roots.place("x/y.json") == tmp_path / "a" / "x" / "y.json"
    assert roots.place(tmp_path / "b" / "z") == tmp_path / "b" / "z"
    assert roots.place("x/../y") == tmp_path / "a" / "y"  # normalised, still inside


@pytest.mark.parametrize("path", ["../b2/x", "../../etc/passwd", "/etc/passwd", "/", "x/../../a2"])
def test_paths_leaving_every_root_are_refused(roots: FileRoots, path: str) -> None:
    with pytest.raises(SandboxError, match="outside the file roots"):
        roots.place(path)


def test_a_sibling_folder_sharing_a_prefix_is_not_inside(tmp_path: Path) -> None:
    (tmp_path / "data").mkdir()
    (tmp_path / "data-other").mkdir()
    with pytest.raises(SandboxError):
        FileRoots([tmp_path / "data"]).place(tmp_path / "data-other" / "x")


def test_symlinks_are_judged_by_where_they_point(roots: FileRoots, tmp_path: Path) -> None:
    (tmp_path / "a" / "out").symlink_to("/etc")
    (tmp_path / "a" / "to_b").symlink_to(tmp_path / "b")
    (tmp_path / "a" / "loop").symlink_to(tmp_path / "a" / "loop")
    with pytest.raises(SandboxError, match="outside"):
        roots.place("out/passwd")
    assert roots.place("to_b/f") == tmp_path / "b" / "f"  # a link between roots stays inside
    with pytest.raises(SandboxError):
        roots.place("loop")


def test_only_regular_files_are_read_and_reads_are_capped(roots: FileRoots, tmp_path: Path) -> None:
    os.mkfifo(tmp_path / "a" / "fifo")
    (tmp_path / "a" / "dir").mkdir()
    (tmp_path / "a" / "small").write_bytes(b"12345")
    for name in ("fifo", "dir"):
        with pytest.raises(SandboxError, match="not a regular file"):
            roots.read(name)
    assert roots.read("small", limit=5) == b"12345"
    with pytest.raises(SandboxError, match="5 bytes, more than the 4 allowed"):
        roots.read("small", limit=4)
    with pytest.raises(SandboxError, match="No such file"):
        roots.read("missing")


def test_open_for_update_creates_folders_and_refuses_a_link_at_the_end(
    roots: FileRoots, tmp_path: Path
) -> None:
    with roots.open_for_update("new/dir/f.txt") as file:
        file.write(b"hi")
    assert (tmp_path / "a" / "new" / "dir" / "f.txt").read_bytes() == b"hi"
    with pytest.raises(SandboxError, match="not a regular file"):
        roots.open_for_update(tmp_path / "a" / "new")
    (tmp_path / "a" / "link").symlink_to(tmp_path / "a" / "new" / "dir" / "f.txt")  # inside, but a link
    real = roots.place("link")
    assert real == tmp_path / "a" / "new" / "dir" / "f.txt"  # place resolves it; opening "link" itself...
    with pytest.raises(OSError):  # ... with O_NOFOLLOW refuses the link at the last component
        os.open(tmp_path / "a" / "link", os.O_RDONLY | os.O_NOFOLLOW)


def test_a_folder_swapped_for_a_link_after_the_check_is_caught_at_open(
    roots: FileRoots, tmp_path: Path
) -> None:
    (tmp_path / "a" / "sub").mkdir()
    (tmp_path / "outside").mkdir()
    (tmp_path / "outside" / "f.txt").write_bytes(b"secret")
    checked = roots.place("sub/f.txt")  # the check passes: sub/ is a folder inside the root
    (tmp_path / "a" / "sub").rmdir()
    (tmp_path / "a" / "sub").symlink_to(tmp_path / "outside")  # swapped before the open
    for attempt in (roots.read, roots.open_for_update):
        with pytest.raises(SandboxError, match="outside the file roots"):
            attempt(checked)


def test_anywhere_keeps_the_file_checks() -> None:
    anywhere = FileRoots.anywhere()
    assert anywhere.place("/etc/passwd") == Path("/etc/passwd").resolve()
    with pytest.raises(SandboxError, match="not a regular file"):
        anywhere.read("/dev/zero")
    with pytest.raises(ValueError, match="at least one root"):
        FileRoots([])


def test_the_opened_file_is_checked_where_it_really_is(roots: FileRoots, tmp_path: Path) -> None:
    # The last line of defence for a swap between the check and the open, within one call: the file the
    # descriptor really refers to must be inside a root.
    (tmp_path / "outside.txt").write_bytes(b"x")
    fd = os.open(tmp_path / "outside.txt", os.O_RDONLY)
    try:
        with pytest.raises(SandboxError, match="outside the file roots"):
            roots._check_opened(fd, "inside.txt")
    finally:
        os.close(fd)
    fd = os.open(tmp_path / "a", os.O_RDONLY)
    try:
        roots._check_opened(fd, "a")  # inside: no error
    finally:
        os.close(fd)
