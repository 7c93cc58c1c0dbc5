"""`graft serve` on PostgreSQL: migrations on start, auth, tokens, usage through the same code."""

from __future__ import annotations

from pathlib import Path

import httpx

from tests.integration.graftserver import GraftServer


def test_server_on_postgresql(pg_url: str, tmp_path: Path) -> None:
    srv = GraftServer(tmp_path / "pg", database_url=pg_url, auth_cache_seconds=0).start()
    try:
        assert srv.token, srv.log()
        auth = ("rootio", srv.token)
        assert httpx.get(f"{srv.url}/readyz").status_code == 200
        r = httpx.post(
            f"{srv.url}/api/orgs/demo/tokens",
            json={"account": "admin", "scopes": ["read"]},
            auth=auth,
        )
        assert r.status_code == 201
        tok, tid = r.json()["token"], r.json()["info"]["id"]
        assert httpx.get(f"{srv.url}/api/whoami", auth=("x", tok)).json()["scopes"] == ["read"]
        # Revoked through the CLI (another process): refused at once with the cache disabled.
        srv.cli("token", "revoke", str(tid))
        assert httpx.get(f"{srv.url}/api/whoami", auth=("x", tok)).status_code == 401
    finally:
        srv.stop()
