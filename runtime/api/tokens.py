"""The daemon's own API token: where it lives and how it is made, without the JWT machinery of ``auth.py``, so
the CLI can find it cheaply.

The token is the environment's ``OORT_TOKEN`` when set, else the file ``auth/token`` in the data dir, made with
a fresh random value (mode 0600, in a 0700 folder) the first time the daemon starts. The CLI reads the same
file (or ``OORT_TOKEN``) and sends it as ``Authorization: Bearer ...``.
"""

from __future__ import annotations

import os
import secrets
from collections.abc import Mapping
from pathlib import Path
from typing import Final

from runtime.config import is_loopback as is_loopback
from runtime.errors import ServerStartError

TOKEN_ENV: Final = "OORT_TOKEN"
TOKEN_FILE: Final = Path("auth") / "token"  # under the data dir
MIN_TOKEN_LENGTH: Final = 16


def local_token(data_dir: Path, environ: Mapping[str, str]) -> str:
    """The daemon's own token: ``OORT_TOKEN`` when set, else the data dir's token file (made if missing).

    Raises:
      ServerStartError: the token is too short, or the file cannot be read or made (one line, with the path).
    """
    given = environ.get(TOKEN_ENV)
    if given is not None:
        given = given.strip()
        if len(given) < MIN_TOKEN_LENGTH:
            raise ServerStartError(f"{TOKEN_ENV} must be at least {MIN_TOKEN_LENGTH} characters")
        return given
    path = data_dir / TOKEN_FILE
    try:
        return read_token(path) or _make_token(path)
    except OSError as exc:
        raise ServerStartError(f"cannot read or create the API token {path}: {exc.strerror or exc}") from exc


def read_token(path: Path) -> str | None:
    """The token stored at ``path``, or None when there is no such file."""
    try:
        with open(path, encoding="ascii") as file:
            token = file.read(1024).strip()
    except FileNotFoundError:
        return None
    return token or None


def _make_token(path: Path) -> str:
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    token = secrets.token_urlsafe(32)
    # O_EXCL: two daemons starting on one data dir must not hand out different tokens; the loser reads.
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        existing = read_token(path)
        if existing is None:
            raise
        return existing
    with os.fdopen(fd, "w", encoding="ascii") as file:
        file.write(token + "\n")
    return token
