"""File roots: the only folders the file sink, the file source and ruleset imports may touch.

Anyone who may create a rule may name a file path, so without a fence a rule could write ``/etc/cron.d/x`` or
read ``/etc/passwd`` as the daemon's user. The daemon therefore confines every such path to its file roots
(``basic.fileRoots``, default: the ``files`` folder of the data dir):

* a relative path is taken inside the first root;
* the path is resolved, symlinks included, before it is compared, so ``../`` and links out of a root are refused;
* only regular files are opened (a FIFO would block the daemon, ``/dev/zero`` would fill its memory), the
  final component is opened with ``O_NOFOLLOW`` so a link swapped in after the check is refused too, and the
  opened file's real place (``/proc/self/fd``) is checked again, which catches a folder swapped for a link;
* reads stop at a size cap instead of loading whatever the file holds.

Paths are checked when a rule is created (a 400 naming the path and the rule) and again at every open, since
the file system may change in between. ``FileRoots.anywhere()`` (library and test use, never the daemon) keeps
the file-type and size checks but no fence.
"""

from __future__ import annotations

import os
import stat
from collections.abc import Iterable
from pathlib import Path
from typing import BinaryIO, final

from runtime.errors import SandboxError

# The most a file source read or a ruleset import loads into memory.
MAX_READ_BYTES = 64 * 1024 * 1024

_OPEN_FLAGS = os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC


@final
class FileRoots:
    """The folders file connectors may use (``None``: anywhere).

    Args:
      roots: the folders; relative ones are taken from the working directory. They need not exist yet.
    """

    __slots__ = ("roots",)

    def __init__(self, roots: Iterable[Path] | None) -> None:
        self.roots = None if roots is None else tuple(Path(os.path.realpath(root)) for root in roots)
        if self.roots == ():
            raise ValueError("FileRoots needs at least one root (or None for anywhere)")

    @classmethod
    def anywhere(cls) -> FileRoots:
        return cls(None)

    def describe(self) -> str:
        return "anywhere" if self.roots is None else ", ".join(str(root) for root in self.roots)

    def place(self, path: str | Path) -> Path:
        """The real path ``path`` names (relative: inside the first root), checked to be inside a root and,
        when it exists, to be a regular file.

        Raises:
          SandboxError: the path leaves every root, or names something else than a regular file.
        """
        given = Path(path)
        if self.roots is not None and not given.is_absolute():
            given = self.roots[0] / given
        real = Path(os.path.realpath(given))
        if self.roots is not None and not any(real.is_relative_to(root) for root in self.roots):
            raise SandboxError(
                f"path {str(path)!r} is outside the file roots ({self.describe()}); "
                "basic.fileRoots in oort.toml lists the folders file connectors may use"
            )
        try:
            mode = real.stat().st_mode
        except (FileNotFoundError, NotADirectoryError):
            return real  # not there yet (a sink creates it); opening it reports what is in the way
        except OSError as exc:
            raise SandboxError(f"path {str(path)!r}: {exc.strerror or exc}") from exc
        if not stat.S_ISREG(mode):
            raise SandboxError(f"path {str(path)!r} is not a regular file")
        return real

    def read(self, path: str | Path, limit: int = MAX_READ_BYTES) -> bytes:
        """The content of the regular file ``path`` names, at most ``limit`` bytes.

        Raises:
          SandboxError: see ``place``; the file is larger than ``limit`` or cannot be read.
        """
        real = self.place(path)
        try:
            fd = os.open(real, os.O_RDONLY | _OPEN_FLAGS)
        except OSError as exc:
            raise SandboxError(f"cannot read {str(path)!r}: {exc.strerror or exc}") from exc
        with os.fdopen(fd, "rb") as file:
            self._check_opened(fd, path)
            info = os.fstat(fd)
            if not stat.S_ISREG(info.st_mode):  # swapped for a FIFO or device after ``place``
                raise SandboxError(f"path {str(path)!r} is not a regular file")
            if info.st_size > limit:
                raise SandboxError(
                    f"file {str(path)!r} is {info.st_size} bytes, more than the {limit} allowed"
                )
            data = file.read(limit + 1)
        if len(data) > limit:  # it grew while being read
            raise SandboxError(f"file {str(path)!r} is more than the {limit} bytes allowed")
        return data

    def open_for_update(self, path: str | Path) -> BinaryIO:
        """Open (creating it and its folders) the regular file ``path`` names for reading and writing, at 0.

        Raises:
          SandboxError: see ``place``.
          OSError: the folders or the file cannot be created or opened.
        """
        real = self.place(path)
        real.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(real, os.O_RDWR | os.O_CREAT | _OPEN_FLAGS, 0o644)
        file = os.fdopen(fd, "r+b")
        try:
            self._check_opened(fd, path)
            if not stat.S_ISREG(os.fstat(fd).st_mode):
                raise SandboxError(f"path {str(path)!r} is not a regular file")
        except BaseException:
            file.close()
            raise
        return file

    def _check_opened(self, fd: int, path: str | Path) -> None:
        """Where the open file really is (Linux names it in /proc): a folder on the way swapped for a link
        after ``place`` checked the path would show here, as O_NOFOLLOW only guards the last component."""
        if self.roots is None:
            return
        try:
            opened = Path(os.readlink(f"/proc/self/fd/{fd}"))
        except OSError:
            return  # no /proc (not Linux): the check at place() stands alone
        if not any(opened.is_relative_to(root) for root in self.roots):
            raise SandboxError(f"path {str(path)!r} is outside the file roots ({self.describe()})")
