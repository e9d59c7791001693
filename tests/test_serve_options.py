"""``oort serve`` settings from flags, ``OORT__...`` variables and ``oort.toml`` (in that precedence), what
``oort config show`` reports, and a missing configuration folder refused, through real processes."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest
import trio

from tests.daemon_process import free_port, start_daemon, write_etc

pytestmark = pytest.mark.slow


async def _oort(*args: str, env: dict[str, str] | None = None) -> tuple[int, str, str]:
    result = await trio.run_process(
        [sys.executable, "-m", "runtime", *args],
        capture_stdout=True,
        capture_stderr=True,
        check=False,
        env={**os.environ, **(env or {})},
    )
    return result.returncode, result.stdout.decode(), result.stderr.decode()


async def test_flag_beats_environment_beats_file(tmp_path: Path) -> None:
    etc = write_etc(tmp_path / "etc")  # the file says restPort = 0
    by_env, by_flag = free_port(), free_port()
    env = {"OORT__BASIC__RESTPORT": str(by_env), "OORT__SOURCE__HTTPSERVERPORT": "10999"}
    with trio.fail_after(60):
        async with trio.open_nursery() as nursery:
            daemon = await start_daemon(nursery, etc, tmp_path / "data", env=env)
            assert daemon.url == f"http://127.0.0.1:{by_env}"
            await daemon.terminate()
            daemon = await start_daemon(
                nursery, etc, tmp_path / "data", env=env, args=["--rest-port", str(by_flag)]
            )
            assert daemon.url == f"http://127.0.0.1:{by_flag}"
            assert daemon.output.count(b"REST API listening on") == 1  # one line per listener
            await daemon.terminate()
    code, out, _ = await _oort("config", "show", "--etc", str(etc), "--log-level", "debug", env=env)
    assert code == 0
    lines = out.splitlines()
    assert f"restPort = {by_env}  # environment OORT__BASIC__RESTPORT" in lines
    assert 'logLevel = "debug"  # flag --log-level' in lines
    assert f'restIp = "127.0.0.1"  # file {etc / "oort.toml"}' in lines
    assert "httpServerPort = 10999  # environment OORT__SOURCE__HTTPSERVERPORT" in lines
    assert 'timezone = "UTC"  # default' in lines


async def test_bad_variables_are_named_with_the_nearest_key(tmp_path: Path) -> None:
    etc = write_etc(tmp_path / "etc")
    code, _, err = await _oort(
        "serve", "--etc", str(etc), "--data", str(tmp_path / "data"), env={"OORT__BASIC__RESTPROT": "1"}
    )
    assert code == 2
    assert "OORT__BASIC__RESTPROT" in err and "did you mean OORT__BASIC__RESTPORT?" in err
    code, _, err = await _oort("config", "show", "--etc", str(etc), env={"OORT__RULE__QOS": "high"})
    assert code == 1
    assert "environment OORT__RULE__QOS (rule.qos: expected int, got str 'high')" in err


async def test_a_missing_etc_is_refused_and_no_etc_runs_on_defaults(tmp_path: Path) -> None:
    code, _, err = await _oort("serve", "--etc", str(tmp_path / "etcc"), "--data", str(tmp_path / "data"))
    assert code == 2
    assert err.strip().splitlines() == [
        f"oort: no oort.toml in {tmp_path / 'etcc'}: give the configuration folder with --etc DIR "
        "(or --no-etc to run on the defaults)"
    ]
    with trio.fail_after(60):
        async with trio.open_nursery() as nursery:
            daemon = await start_daemon(nursery, None, tmp_path / "data", args=["--rest-port", "0"])
            async with daemon.client() as http:
                assert (await http.get("/ping")).status_code == 200
                conf = {"bufferLength": 8}
                resp = await http.put("/metadata/sources/memory/confKeys/k", json=conf)
                assert resp.status_code == 200, resp.text
            await daemon.terminate()
    assert (tmp_path / "data" / "conf" / "sources" / "memory.toml").is_file()  # kept in the data dir


async def test_serve_help_and_usage_errors() -> None:
    code, out, _ = await _oort("serve", "--help")
    assert code == 0 and "OORT__BASIC__RESTPORT" in out and "--rest-port" in out
    code, _, err = await _oort("serve", "--rest-port", "http")
    assert code == 2 and "--rest-port needs a port number, got 'http'" in err


async def test_an_etc_folder_without_oort_toml_is_an_error_not_the_shipped_defaults(tmp_path: Path) -> None:
    (tmp_path / "etc").mkdir()  # the user's folder, missing its oort.toml
    result = await trio.run_process(
        [sys.executable, "-m", "runtime", "serve", "--data", str(tmp_path / "data")],
        cwd=tmp_path,
        capture_stderr=True,
        check=False,
    )
    assert result.returncode == 2
    assert b"no oort.toml in etc" in result.stderr
