"""Secrets are masked on every read: conf groups (headers named like credentials, userinfo passwords in URLs,
secret-named keys) over REST, and secret query parameters in the ``meta(query)`` every rule can read."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import orjson
import pytest
import trio

from runtime.config.secrets import is_secret_name, mask, redact_query, redact_url
from tests.daemon_process import free_port, start_daemon, wait_for, write_etc
from tests.io.websocket.test_data_server import connect

pytestmark = pytest.mark.slow

TOKEN = "tok-9f8e7d6c5b4a"


async def test_conf_groups_and_meta_query_hide_secrets(tmp_path: Path) -> None:
    port = free_port()
    etc = write_etc(tmp_path / "etc", extra_toml=f"[source]\nhttpServerPort = {port}\n")
    out = tmp_path / "data" / "files" / "out.jsonl"  # inside the default file root
    client_group = {
        "addr": "ws://alice:pa55word@127.0.0.1:1",
        "requestHeaders": {"Authorization": "Bearer abc123", "Cookie": "sid=42", "X-Trace": "on"},
    }
    with trio.fail_after(60):
        async with trio.open_nursery() as nursery:
            daemon = await start_daemon(nursery, etc, tmp_path / "data")
            async with daemon.client() as http:
                resp = await http.put("/metadata/sources/websocket/confKeys/remote", json=client_group)
                assert resp.status_code == 200, resp.text
                resp = await http.put("/metadata/sources/websocket/confKeys/srv", json={"token": TOKEN})
                assert resp.status_code == 200, resp.text
                shown = (await http.get("/metadata/sources/yaml/websocket")).json()
                assert shown["remote"]["addr"] == "ws://alice:******@127.0.0.1:1"
                assert shown["remote"]["requestHeaders"] == {
                    "Authorization": "******",
                    "Cookie": "******",
                    "X-Trace": "on",
                }
                assert shown["srv"]["token"] == "******"
                text = (await http.get("/metadata/sources/yaml/websocket")).text
                assert "pa55word" not in text and "abc123" not in text and TOKEN not in text

                sql = 'CREATE STREAM s () WITH (TYPE="websocket", DATASOURCE="/in", CONF_KEY="srv")'
                assert (await http.post("/streams", json={"sql": sql})).status_code == 201
                rule = {
                    "id": "q",
                    "sql": "SELECT meta(query) AS q, v FROM s",
                    "actions": [{"file": {"path": str(out), "fileType": "lines", "sendSingle": True}}],
                }
                assert (await http.post("/rules", json=rule)).status_code == 201
            async with connect(port, f"/in?token={TOKEN}&site=north") as ws:
                await ws.send_message('{"v": 1}')

                async def written() -> bool:
                    return out.exists() and out.read_bytes().endswith(b"\n")

                await wait_for(written)
            rows: list[dict[str, Any]] = [orjson.loads(line) for line in out.read_bytes().splitlines()]
            assert rows == [{"q": "token=******&site=north", "v": 1}]
            await daemon.terminate()


def test_what_counts_as_a_secret() -> None:
    for name in ("token", "password", "Authorization", "Cookie", "apiKey", "accessKey", "clientSecret"):
        assert is_secret_name(name), name
    for name in ("key", "privateKeyPath", "addr", "keyType", "path"):
        assert not is_secret_name(name), name
    assert redact_url("mqtt://u:p@host:1883/x?token=t&a=1") == "mqtt://u:******@host:1883/x?token=******&a=1"
    assert redact_url("ws://host/x") == "ws://host/x"
    assert redact_query("a=1&b=2") == "a=1&b=2"
    assert mask({"nested": {"password": "p", "url": "http://u:p@h/"}, "n": 1}) == {
        "nested": {"password": "******", "url": "http://u:******@h/"},
        "n": 1,
    }
