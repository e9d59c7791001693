"""How ``oort`` prints: JSON for people and scripts, tables cut to the terminal, and quiet on a closed pipe.

Only tables are cut: JSON (``describe``, ``gettopo``, ``--json``) is always printed whole, since a program
reading it needs every byte and a person can page it.
"""

from __future__ import annotations

import json
import os
import shutil
import sys
from collections.abc import Sequence
from typing import Any, Final

# The narrowest a cut column gets: a few characters of an id and the ellipsis still tell rows apart.
MIN_COLUMN: Final = 6
GAP: Final = "  "  # between columns, as kuiper's tables


def print_out(text: str) -> None:
    """Print, quietly giving up when the reader went away (``oort show rules | head -1``)."""
    try:
        print(text, flush=True)
    except BrokenPipeError:
        # Python would report the pipe again when it flushes stdout at exit: point stdout at nothing first.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())


def pretty(value: Any) -> str:
    return json.dumps(value, indent=2, ensure_ascii=False)


def terminal_width() -> int | None:
    """The width tables must fit: ``COLUMNS``, else the terminal's; None (no limit) when neither is known.

    Output into a pipe or a file is not cut unless ``COLUMNS`` asks for it: ``oort show rules | grep x``
    must see whole lines, as ``ls`` and ``git`` do.
    """
    columns = shutil.get_terminal_size(fallback=(0, 0)).columns
    return columns if columns > 0 else None


def _ellipsis() -> str:
    """``…`` where the output encoding has it; a terminal in Latin-1 or ASCII gets ``...``."""
    try:
        "…".encode(sys.stdout.encoding or "utf-8")
    except (UnicodeEncodeError, LookupError):
        return "..."
    return "…"


def _fit(widths: list[int], limit: int) -> list[int]:
    """Narrow the widest column (then the next, as they level) until the row fits ``limit`` characters.

    Columns stop at ``MIN_COLUMN``: a table that cannot fit even then is printed wider and the terminal
    wraps it, which still beats columns too narrow to read.
    """
    widths = list(widths)
    while (excess := sum(widths) + len(GAP) * (len(widths) - 1) - limit) > 0:
        widest = max(range(len(widths)), key=widths.__getitem__)
        if widths[widest] <= MIN_COLUMN:
            break
        runner_up = max((w for i, w in enumerate(widths) if i != widest), default=0)
        # Down to the runner-up at most, so that two wide columns share the cut instead of one losing
        # everything; by one character at least, so that columns of equal width still make progress.
        target = max(widths[widest] - excess, runner_up, MIN_COLUMN)
        widths[widest] = min(target, widths[widest] - 1)
    return widths


def table(header: Sequence[str], rows: Sequence[Sequence[str]], width: int | None = None) -> str:
    """Columns padded to their widest cell, the last one unpadded; cut to ``width`` with an ellipsis.

    ``width`` None prints every cell whole (see ``terminal_width``).
    """
    lines = [list(header), *(list(row) for row in rows)]
    widths = [max(len(line[i]) for line in lines) for i in range(len(header))]
    if width is not None:
        widths = _fit(widths, width)
    mark = _ellipsis()

    def cell(text: str, size: int) -> str:
        return text if len(text) <= size else text[: max(size - len(mark), 0)] + mark

    out = []
    for line in lines:
        cells = [cell(text, widths[i]) for i, text in enumerate(line)]
        padded = [f"{text:<{widths[i]}}" for i, text in enumerate(cells[:-1])]
        out.append(GAP.join([*padded, cells[-1]]).rstrip())
    return "\n".join(out)
