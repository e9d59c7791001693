"""A web page must not drive the daemon: foreign origins, form and text/plain bodies, DNS-rebinding Host
headers and state changes on GET are refused and change nothing; listed origins get CORS, nobody else does."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest
import trio

from tests.daemon_process import Daemon, start_daemon, write_etc

pytestmark = pytest.mark.slow

STREAM = {"sql": 'CREATE STREAM s () WITH (TYPE="memory", DATASOURCE="t")'}
DDL = b'{"sql": "CREATE STREAM s () WITH (TYPE=\\"memory\\", DATASOURCE=\\"t\\")"}'
CONSOLE = "https://console.example:8443"


async def _streams(daemon: Daemon) -> list[str]:
    async with daemon.client() as http:
        names: list[str] = (await http.get("/streams")).json()
    return names


async def test_a_foreign_page_changes_nothing(tmp_path: Path) -> None:
    etc = write_etc(tmp_path / "etc")
    with trio.fail_after(30):
        async with trio.open_nursery() as nursery:
            daemon = await start_daemon(nursery, etc, tmp_path / "data")
            port = daemon.url.rsplit(":", 1)[1]
            async with daemon.client() as http:
                attempts = [
                    ("foreign origin", {"Origin": "http://evil.example"}, "application/json", 403),
                    ("null origin", {"Origin": "null"}, "application/json", 403),
                    ("same site, other port", {"Origin": "http://127.0.0.1:1"}, "application/json", 403),
                    ("text/plain simple request", {}, "text/plain", 415),
                    ("form post", {}, "application/x-www-form-urlencoded", 415),
                    ("no content type", {}, "", 415),
                    ("DNS rebinding", {"Host": f"evil.example:{port}"}, "application/json", 403),
                    ("cross-site fetch metadata", {"Sec-Fetch-Site": "cross-site"}, "application/json", 403),
                ]
                for why, headers, content_type, status in attempts:
                    if content_type:
                        headers = {**headers, "Content-Type": content_type}
                    resp = await http.post("/streams", content=DDL, headers=headers)
                    assert resp.status_code == status, (why, resp.text)
                    assert "access-control-allow-origin" not in resp.headers, why
                assert await _streams(daemon) == []
                # Preflight from a foreign page: refused, no CORS grant.
                preflight = await http.options(
                    "/streams",
                    headers={"Origin": "http://evil.example", "Access-Control-Request-Method": "POST"},
                )
                assert preflight.status_code == 403
                assert "access-control-allow-origin" not in preflight.headers
                # An <img src=".../stop"> is a GET: stopping takes POST, and a foreign POST is refused.
                assert (await http.get("/stop")).status_code == 405
                resp = await http.post("/stop", headers={"Origin": "http://evil.example"})
                assert resp.status_code == 403
                assert (await http.get("/ping")).status_code == 200
                assert daemon.process.returncode is None
                # The same request from a client (no Origin) or the same origin works.
                same = {"Origin": daemon.url, "Sec-Fetch-Site": "same-origin"}
                resp = await http.post("/streams", json=STREAM, headers=same)
                assert resp.status_code == 201, resp.text
                assert await _streams(daemon) == ["s"]
                # Localhost names and IP literals are this server's names.
                async with httpx.AsyncClient(base_url=f"http://localhost:{port}", trust_env=False) as local:
                    assert (await local.get("/streams")).json() == ["s"]
            await daemon.terminate()


async def test_listed_origins_and_hosts_are_let_in(tmp_path: Path) -> None:
    etc = write_etc(
        tmp_path / "etc", extra_toml=f'allowedOrigins = ["{CONSOLE}"]\nallowedHosts = ["oort.lan"]\n'
    )
    with trio.fail_after(30):
        async with trio.open_nursery() as nursery:
            daemon = await start_daemon(nursery, etc, tmp_path / "data")
            port = daemon.url.rsplit(":", 1)[1]
            async with daemon.client() as http:
                preflight = await http.options(
                    "/streams", headers={"Origin": CONSOLE, "Access-Control-Request-Method": "POST"}
                )
                assert preflight.status_code == 204
                assert preflight.headers["access-control-allow-origin"] == CONSOLE
                assert "POST" in preflight.headers["access-control-allow-methods"]
                assert "Authorization" in preflight.headers["access-control-allow-headers"]
                resp = await http.post(
                    "/streams", json=STREAM, headers={"Origin": CONSOLE, "Host": f"oort.lan:{port}"}
                )
                assert resp.status_code == 201, resp.text
                assert resp.headers["access-control-allow-origin"] == CONSOLE
                resp = await http.get("/streams", headers={"Host": f"other.lan:{port}"})
                assert resp.status_code == 403 and "basic.allowedHosts" in resp.json()["message"]
            await daemon.terminate()


def test_bad_origin_and_host_settings_are_config_errors(tmp_path: Path) -> None:
    from runtime.config import load_config
    from runtime.errors import ConfigError

    etc = write_etc(tmp_path / "etc", extra_toml='allowedOrigins = ["*"]\nallowedHosts = ["a.lan:80"]\n')
    with pytest.raises(ConfigError) as err:
        load_config(etc)
    text = str(err.value)
    assert "basic.allowedOrigins" in text and "no wildcard" in text
    assert "basic.allowedHosts" in text and "bare host name" in text
