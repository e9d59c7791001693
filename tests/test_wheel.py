"""The wheel, installed away from the checkout, runs ``oort serve`` with the configuration shipped inside it
(what ``pipx install`` gives a user)."""

from __future__ import annotations

import os
import sys
import sysconfig
from pathlib import Path

import httpx
import pytest
import trio

from tests.daemon_process import LISTENING

pytestmark = pytest.mark.slow

REPO = Path(__file__).resolve().parent.parent


async def test_the_wheel_runs_outside_the_checkout(tmp_path: Path) -> None:
    with trio.fail_after(240):
        await trio.run_process(
            [
                sys.executable,
                "-m",
                "pip",
                "wheel",
                "--no-deps",
                "-q",
                "-w",
                str(tmp_path / "dist"),
                str(REPO),
            ],
            capture_stdout=True,
        )
        [wheel] = (tmp_path / "dist").glob("oort-*.whl")
        venv = tmp_path / "venv"
        await trio.run_process([sys.executable, "-m", "venv", "--without-pip", str(venv)])
        target = tmp_path / "site"
        await trio.run_process(
            [sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--target", str(target), str(wheel)],
            capture_stdout=True,
        )
        # The dependencies come from this environment's site-packages, put on PYTHONPATH: .pth files (the
        # editable install of the checkout among them) are not read from there, so `runtime` is the wheel's.
        deps = sysconfig.get_paths()["purelib"]
        home = tmp_path / "elsewhere"
        home.mkdir()
        env = {**os.environ, "PYTHONPATH": f"{target}{os.pathsep}{deps}", "PYTHONUNBUFFERED": "1"}
        check = await trio.run_process(
            [str(venv / "bin" / "python"), "-c", "import runtime, sys; print(runtime.__file__)"],
            cwd=home,
            env=env,
            capture_stdout=True,
        )
        assert check.stdout.decode().strip().startswith(str(target))
        process = await trio.lowlevel.open_process(
            [str(venv / "bin" / "python"), "-m", "runtime", "serve", "--rest-port", "0", "--data-port", "0"],
            cwd=home,
            env=env,
            stderr=-1,
        )
        output = rest = b""
        assert process.stderr is not None
        try:
            while not LISTENING.search(output):
                chunk = await process.stderr.receive_some()
                assert chunk, output.decode()
                output += chunk
            url = LISTENING.search(output).group(1).decode()  # type: ignore[union-attr]
            async with httpx.AsyncClient(base_url=url, trust_env=False) as http:
                streams = (await http.get("/streams")).json()
                file_groups = (await http.get("/metadata/sources/yaml/file")).json()
            process.terminate()
            while chunk := await process.stderr.receive_some():
                rest += chunk
            assert await process.wait() == 0, (output + rest).decode()
        finally:
            if process.returncode is None:
                process.kill()
                await process.wait()
            await process.stderr.aclose()
    text = (output + rest).decode()
    assert f"configuration from {target / 'runtime' / '_etc'}" in text  # the shipped etc/, read only
    assert streams == []  # no demo streams or rules come with an installation
    assert file_groups["default"]["fileType"] == "json"  # the shipped conf groups do
    assert not list((target / "runtime" / "_etc").rglob("*.removed"))
    assert (home / "data").is_dir()  # state lands in the working directory, never in the installation
