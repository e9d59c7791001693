"""REST authentication against the real daemon: its own token (file or OORT_TOKEN), eKuiper's RS256 JWT with
public keys in etc/mgmt, the open routes, and the refusal to start open on a public address."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import os
import stat
import sys
import time
from pathlib import Path
from typing import Any

import httpx
import jwt
import pytest
import trio
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from tests.daemon_process import Daemon, start_daemon, write_etc

pytestmark = pytest.mark.slow

REPO = Path(__file__).resolve().parents[2]
NONE_HEADER = base64.urlsafe_b64encode(b'{"alg":"none"}').rstrip(b"=").decode()
STREAM = {"sql": 'CREATE STREAM s () WITH (TYPE="memory", DATASOURCE="t")'}


def _keypair() -> tuple[bytes, bytes]:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    private = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    public = key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    return private, public


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _hs256_with(secret: bytes, claims: dict[str, Any]) -> str:
    """A token whose header says HS256, keyed with ``secret`` (the algorithm-confusion attack on RS256)."""
    head = _b64(json.dumps({"alg": "HS256", "typ": "JWT"}).encode())
    body = _b64(json.dumps(claims).encode())
    mac = hmac.new(secret, f"{head}.{body}".encode(), hashlib.sha256).digest()
    return f"{head}.{body}.{_b64(mac)}"


async def _streams(daemon: Daemon, token: str) -> list[str]:
    async with daemon.client() as http:
        resp = await http.get("/streams", headers={"Authorization": f"Bearer {token}"})
    assert resp.status_code == 200, resp.text
    names: list[str] = resp.json()
    return names


async def test_authentication_takes_the_token_or_an_ekuiper_jwt_and_nothing_else(tmp_path: Path) -> None:
    private, public = _keypair()
    other_private, _ = _keypair()
    etc = write_etc(tmp_path / "etc", extra_toml="authentication = true\n")
    (etc / "mgmt").mkdir()
    (etc / "mgmt" / "Sample_Key.pub").write_bytes(public)
    data = tmp_path / "data"
    good_claims = {"iss": "sample_key.pub", "aud": "eKuiper", "exp": int(time.time()) + 600}
    with trio.fail_after(60):
        async with trio.open_nursery() as nursery:
            daemon = await start_daemon(nursery, etc, data)
            token_file = data / "auth" / "token"
            assert stat.S_IMODE(token_file.stat().st_mode) == 0o600
            token = token_file.read_text().strip()
            assert len(token) >= 32
            async with daemon.client() as http:
                # eKuiper's open routes.
                assert (await http.get("/ping")).status_code == 200
                assert (await http.get("/")).status_code == 200
                # Nothing else without credentials; a write refused changes nothing.
                for method, path in [("GET", "/rules"), ("GET", "/metrics"), ("POST", "/stop")]:
                    resp = await http.request(method, path)
                    assert resp.status_code == 401, (method, path, resp.text)
                    assert resp.headers["www-authenticate"] == "Bearer"
                resp = await http.post("/streams", json=STREAM)
                assert resp.status_code == 401
                assert await _streams(daemon, token) == []
                # A wrong token is refused without being echoed.
                resp = await http.get("/rules", headers={"Authorization": "Bearer wrong-token-123456"})
                assert resp.status_code == 401 and "wrong-token" not in resp.text
                # The daemon's token, with or without the Bearer prefix.
                assert (await http.get("/rules", headers={"Authorization": token})).status_code == 200
                resp = await http.post("/streams", json=STREAM, headers={"Authorization": f"Bearer {token}"})
                assert resp.status_code == 201, resp.text
                assert await _streams(daemon, token) == ["s"]

                # eKuiper's JWT: the raw token in Authorization, key file matched ignoring case.
                good = jwt.encode(good_claims, private, algorithm="RS256")
                assert (await http.get("/rules", headers={"Authorization": good})).status_code == 200
                assert (
                    await http.get("/rules", headers={"Authorization": f"Bearer {good}"})
                ).status_code == 200
                bad_tokens = {
                    "wrong audience": jwt.encode({**good_claims, "aud": "other"}, private, algorithm="RS256"),
                    "no audience": jwt.encode({"iss": "sample_key.pub"}, private, algorithm="RS256"),
                    "expired": jwt.encode(
                        {**good_claims, "exp": int(time.time()) - 60}, private, algorithm="RS256"
                    ),
                    "another key": jwt.encode(good_claims, other_private, algorithm="RS256"),
                    "unknown issuer": jwt.encode(
                        {**good_claims, "iss": "nobody.pub"}, private, algorithm="RS256"
                    ),
                    "issuer as a path": jwt.encode(
                        {**good_claims, "iss": "../oort.toml"}, private, algorithm="RS256"
                    ),
                    "HS256 keyed with the public key": _hs256_with(public, good_claims),
                    "alg none": f"{NONE_HEADER}.{_b64(json.dumps(good_claims).encode())}.",
                }
                for why, bad in bad_tokens.items():
                    resp = await http.get("/rules", headers={"Authorization": bad})
                    assert resp.status_code == 401, (why, resp.text)
                assert (
                    "Audience"
                    in (
                        await http.get("/rules", headers={"Authorization": bad_tokens["wrong audience"]})
                    ).json()["message"]
                )

            # The CLI finds the local token in the data dir, or takes OORT_TOKEN.
            async def cli(*args: str, env: dict[str, str]) -> trio.CompletedProcess[bytes]:
                return await trio.run_process(
                    [sys.executable, "-m", "runtime", "--host", daemon.url, *args],
                    capture_stdout=True,
                    capture_stderr=True,
                    check=False,
                    cwd=REPO,
                    env=env,
                )

            base = {k: v for k, v in os.environ.items() if k != "OORT_TOKEN"}
            found = await cli("--data", str(data), "show", "streams", env=base)
            assert (found.returncode, found.stdout) == (0, b"s\n"), found.stderr
            given = await cli(
                "--data", str(tmp_path / "none"), "show", "streams", env={**base, "OORT_TOKEN": token}
            )
            assert (given.returncode, given.stdout) == (0, b"s\n"), given.stderr
            missing = await cli("--data", str(tmp_path / "none"), "show", "streams", env=base)
            assert missing.returncode == 1 and b"missing_token" in missing.stderr
            await daemon.terminate()


async def test_open_metrics_opens_metrics_only(tmp_path: Path) -> None:
    etc = write_etc(tmp_path / "etc", extra_toml="authentication = true\nopenMetrics = true\n")
    with trio.fail_after(30):
        async with trio.open_nursery() as nursery:
            daemon = await start_daemon(nursery, etc, tmp_path / "data")
            async with daemon.client() as http:
                assert (await http.get("/metrics")).status_code == 200
                assert (await http.get("/rules")).status_code == 401
            await daemon.terminate()


async def test_daemon_refuses_to_start_open_on_a_public_address(tmp_path: Path) -> None:
    etc = write_etc(tmp_path / "etc")
    (etc / "oort.toml").write_text('[basic]\nrestIp = "0.0.0.0"\nrestPort = 0\n')
    with trio.fail_after(30):
        result = await trio.run_process(
            [sys.executable, "-m", "runtime", "serve", "--etc", str(etc), "--data", str(tmp_path / "data")],
            capture_stderr=True,
            check=False,
        )
    err = result.stderr.decode()
    assert result.returncode == 1
    assert "basic.restIp 0.0.0.0 is reachable from other machines: set basic.authentication = true" in err
    assert "Traceback" not in err


async def test_unusable_token_file_is_one_clear_error(tmp_path: Path) -> None:
    etc = write_etc(tmp_path / "etc", extra_toml="authentication = true\n")
    data = tmp_path / "data"
    (data / "auth").mkdir(parents=True)
    (data / "auth" / "token").mkdir()  # a directory where the token file should be
    with trio.fail_after(30):
        result = await trio.run_process(
            [sys.executable, "-m", "runtime", "serve", "--etc", str(etc), "--data", str(data)],
            capture_stderr=True,
            check=False,
            env={k: v for k, v in os.environ.items() if k != "OORT_TOKEN"},
        )
    err = result.stderr.decode()
    assert result.returncode == 1
    assert f"cannot read or create the API token {data / 'auth' / 'token'}" in err
    assert "Traceback" not in err


def test_short_oort_token_is_refused() -> None:
    from runtime.api.tokens import local_token
    from runtime.errors import ServerStartError

    with pytest.raises(ServerStartError, match="at least 16 characters"):
        local_token(Path("/nonexistent"), {"OORT_TOKEN": "short"})


async def test_jwt_for_ekuiper_tooling_uses_the_raw_authorization_header(tmp_path: Path) -> None:
    """eKuiper's own clients send the JWT with no scheme; httpx sends it the same way here."""
    private, public = _keypair()
    etc = write_etc(tmp_path / "etc", extra_toml="authentication = true\n")
    (etc / "mgmt").mkdir()
    (etc / "mgmt" / "k.pub").write_bytes(public)
    token = jwt.encode({"iss": "k.pub", "aud": ["eKuiper", "x"]}, private, algorithm="RS256")
    with trio.fail_after(30):
        async with trio.open_nursery() as nursery:
            daemon = await start_daemon(nursery, etc, tmp_path / "data")
            async with httpx.AsyncClient(base_url=daemon.url, headers={"Authorization": token}) as http:
                assert (await http.get("/streams")).json() == []
            await daemon.terminate()
