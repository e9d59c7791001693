"""Schemathesis generates requests from ``/openapi.json`` against the real daemon: no request may cause a 5xx."""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

import pytest
import trio

from tests.daemon_process import start_daemon, write_etc

pytestmark = pytest.mark.slow  # a long property or fuzz run


async def test_schemathesis_finds_no_server_error(tmp_path: Path) -> None:
    st = shutil.which("schemathesis", path=str(Path(sys.executable).parent))
    assert st is not None, "schemathesis is a dev dependency (pyproject.toml [dev])"
    etc = write_etc(tmp_path / "etc")
    async with trio.open_nursery() as nursery:
        daemon = await start_daemon(nursery, etc, tmp_path / "data")
        with trio.fail_after(240):
            result = await trio.run_process(
                [
                    st,
                    "run",
                    f"{daemon.url}/openapi.json",
                    "--checks",
                    "not_a_server_error",
                    "--max-examples",
                    "15",
                    "--workers",
                    "1",
                    "--seed",
                    "1",
                    "--exclude-path",
                    "/stop",  # it would shut the daemon down mid-run
                    "--exclude-path",
                    "/query",  # a valid query streams until the client leaves
                ],
                capture_stdout=True,
                capture_stderr=True,
                check=False,
                cwd=tmp_path,  # schemathesis keeps a .schemathesis/ folder in its working directory
            )
        output = result.stdout.decode() + result.stderr.decode()
        assert result.returncode == 0, output[-4000:]
        assert " passed" in output
        with trio.fail_after(2):
            assert await daemon.terminate() == 0
