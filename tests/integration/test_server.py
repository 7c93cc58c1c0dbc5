"""The core server end to end: health, metrics, access log, auth on every route, the API."""

from __future__ import annotations

import json
import subprocess
import time
from pathlib import Path

import httpx
import pytest

from tests.integration.graftserver import GraftServer


def client(server: GraftServer, token: str | None = None, user: str = "rootio") -> httpx.Client:
    auth = (user, token) if token is not None else None
    return httpx.Client(base_url=server.url, auth=auth, timeout=10)


def new_token(server: GraftServer, scopes: list[str], account: str = "admin") -> dict:  # type: ignore[type-arg]
    r = client(server, server.token).post(
        "/api/orgs/demo/tokens", json={"account": account, "scopes": scopes}
    )
    assert r.status_code == 201, r.text
    return r.json()  # type: ignore[no-any-return]


def test_health_and_readiness(server: GraftServer) -> None:
    with client(server) as c:
        assert c.get("/healthz").status_code == 200
        r = c.get("/readyz")
        assert r.status_code == 200 and r.text == "ready\n"


@pytest.mark.parametrize("user", ["rootio", "root", "token", "demo", ""])
def test_whoami_with_basic_and_any_username(server: GraftServer, user: str) -> None:
    r = client(server, server.token, user=user).get("/api/whoami")
    assert r.status_code == 200
    body = r.json()
    assert (body["org"], body["account"]) == ("demo", "admin")
    assert body["scopes"] == ["admin", "publish", "read"]


def test_whoami_with_bearer(server: GraftServer) -> None:
    r = httpx.get(f"{server.url}/api/whoami", headers={"Authorization": f"Bearer {server.token}"})
    assert r.status_code == 200 and r.json()["org"] == "demo"


def test_whoami_with_curl_netrc(server: GraftServer, tmp_path: Path) -> None:
    netrc = tmp_path / "netrc"
    netrc.write_text(f"machine 127.0.0.1 login rootio password {server.token}\n")
    out = subprocess.run(
        ["curl", "-sS", "--fail-with-body", "--netrc-file", str(netrc), f"{server.url}/api/whoami"],
        capture_output=True,
        text=True,
        timeout=30,
        check=True,
    )
    assert json.loads(out.stdout)["account"] == "admin"
    # The same with a wrong token: curl shows our 401 message.
    netrc.write_text("machine 127.0.0.1 login rootio password graft_wrong\n")
    bad = subprocess.run(
        ["curl", "-sS", "--fail-with-body", "--netrc-file", str(netrc), f"{server.url}/api/whoami"],
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert bad.returncode == 22
    assert "invalid, expired or revoked token" in bad.stdout


@pytest.mark.parametrize(
    ("headers", "message"),
    [
        ({}, "authentication required"),
        ({"Authorization": "Basic %%%"}, "invalid Basic credentials"),
        ({"Authorization": "Negotiate abc"}, "unsupported Authorization scheme"),
        ({"Authorization": "Bearer graft_" + "A" * 49}, "invalid, expired or revoked token"),
    ],
)
def test_missing_or_bad_credentials_get_a_challenge(
    server: GraftServer, headers: dict[str, str], message: str
) -> None:
    r = httpx.get(f"{server.url}/api/whoami", headers=headers)
    assert r.status_code == 401
    assert r.headers["www-authenticate"].startswith('Basic realm="graft"')
    assert message in r.json()["message"]


def test_a_token_without_the_needed_scope_gets_403(server: GraftServer) -> None:
    reader = new_token(server, ["read"])["token"]
    with client(server, reader) as c:
        assert c.get("/api/whoami").status_code == 200
        r = c.get("/api/orgs/demo/tokens")
        assert r.status_code == 403
        assert "lacks the 'admin' scope" in r.json()["message"]


def test_revoked_token_is_refused_within_the_cache_delay(server: GraftServer) -> None:
    created = new_token(server, ["read"])
    tok, tid = created["token"], created["info"]["id"]
    assert client(server, tok).get("/api/whoami").status_code == 200
    r = client(server, server.token).delete(f"/api/orgs/demo/tokens/{tid}")
    assert r.status_code == 200 and r.json()["status"] == "revoked"
    # Same process: refused at once; the documented bound is auth_cache_seconds (1 s here).
    assert client(server, tok).get("/api/whoami").status_code == 401


def test_rotation_over_the_api(server: GraftServer) -> None:
    old = new_token(server, ["publish"])
    with client(server, server.token) as admin:
        r = admin.post(
            f"/api/orgs/demo/tokens/{old['info']['id']}/rotate", json={"grace_seconds": 3600}
        )
        assert r.status_code == 200, r.text
        rotated = r.json()
        assert rotated["info"]["scopes"] == ["publish"]
        assert rotated["previous_valid_until"] is not None
        # Both work during the grace period.
        assert client(server, old["token"]).get("/api/whoami").status_code == 200
        assert client(server, rotated["token"]).get("/api/whoami").status_code == 200
        # Zero grace: the old one stops at once.
        r = admin.post(
            f"/api/orgs/demo/tokens/{rotated['info']['id']}/rotate", json={"grace_seconds": 0}
        )
        assert r.status_code == 200
        assert client(server, rotated["token"]).get("/api/whoami").status_code == 401
        assert client(server, r.json()["token"]).get("/api/whoami").status_code == 200


def test_orgs_and_accounts_over_the_api(server: GraftServer) -> None:
    with client(server, server.token) as admin:
        r = admin.post("/api/orgs", json={"name": "globex"})
        assert r.status_code == 201 and r.json()["name"] == "globex"
        assert admin.post("/api/orgs", json={"name": "globex"}).status_code == 409
        r = admin.post("/api/orgs/globex/accounts", json={"name": "ci", "kind": "service"})
        assert r.status_code == 201 and r.json()["kind"] == "service"
        r = admin.post("/api/orgs/globex/tokens", json={"account": "ci", "scopes": ["admin"]})
        assert r.status_code == 201
        globex_admin = r.json()["token"]
    with client(server, globex_admin) as g:
        # A non-site-admin sees only its own organization; others answer 404.
        assert [o["name"] for o in g.get("/api/orgs").json()] == ["globex"]
        assert g.get("/api/orgs/demo/tokens").status_code == 404
        assert g.get("/api/orgs/demo").status_code == 404
        r = g.post("/api/orgs", json={"name": "initech"})
        assert r.status_code == 403
        assert [a["name"] for a in g.get("/api/orgs/globex/accounts").json()] == ["ci"]


@pytest.mark.parametrize(
    ("path", "body", "status", "needle"),
    [
        ("/api/orgs", {"name": "Bad Name"}, 422, "invalid organization name"),
        ("/api/orgs", {"nom": "x"}, 422, "name: Field required"),
        ("/api/orgs/nope/accounts", {"name": "x"}, 404, "organization 'nope' not found"),
        ("/api/orgs/demo/accounts", {"name": "x", "kind": "robot"}, 422, "kind"),
        ("/api/orgs/demo/tokens", {"account": "admin", "scopes": ["root"]}, 422, "scopes"),
        ("/api/orgs/demo/tokens", {"account": "ghost", "scopes": ["read"]}, 404, "ghost"),
    ],
)
def test_bad_input_is_a_clear_4xx_and_writes_nothing(
    server: GraftServer,
    path: str,
    body: dict,
    status: int,
    needle: str,  # type: ignore[type-arg]
) -> None:
    with client(server, server.token) as admin:
        before = admin.get("/api/orgs").json(), admin.get("/api/orgs/demo/accounts").json()
        r = admin.post(path, json=body)
        assert r.status_code == status, r.text
        assert needle in r.json()["message"]
        assert "Traceback" not in r.text
        after = admin.get("/api/orgs").json(), admin.get("/api/orgs/demo/accounts").json()
    assert before == after


def test_oversized_and_malformed_bodies(server: GraftServer) -> None:
    with client(server, server.token) as admin:
        big = b'{"name": "' + b"x" * (2 << 20) + b'"}'
        r = admin.post("/api/orgs", content=big, headers={"content-type": "application/json"})
        assert r.status_code == 413 and "too large" in r.json()["message"]

        def chunks():  # type: ignore[no-untyped-def]
            for _ in range(40):
                yield b"x" * 65536

        r = admin.post("/api/orgs", content=chunks(), headers={"content-type": "application/json"})
        assert r.status_code == 413
        r = admin.post(
            "/api/orgs", content=b"{not json", headers={"content-type": "application/json"}
        )
        assert r.status_code == 422 and "Traceback" not in r.text


def test_openapi_document(server: GraftServer) -> None:
    doc = httpx.get(f"{server.url}/api/openapi.json").json()
    assert doc["info"]["title"] == "Graft management API"
    for path in ("/whoami", "/orgs", "/orgs/{org}/tokens", "/orgs/{org}/tokens/{token_id}/rotate"):
        assert path in doc["paths"]


def test_metrics_and_access_log(server: GraftServer) -> None:
    rid = "test-request-42"
    r = client(server, server.token).get("/api/whoami", headers={"X-Request-ID": rid})
    assert r.headers["x-request-id"] == rid
    httpx.get(f"{server.url}/api/whoami", headers={"Authorization": "Bearer graft_nope"})
    metrics = httpx.get(f"{server.url}/metrics").text
    assert 'graft_http_requests_total{method="GET",route="/api/whoami",status="200"}' in metrics
    assert 'route="/api/whoami",status="401"' in metrics
    assert "graft_http_request_duration_seconds_bucket" in metrics
    assert "graft_http_response_bytes_total" in metrics
    assert "graft_auth_failures_total" in metrics
    for _ in range(50):
        lines = [json.loads(x) for x in server.log().splitlines() if x.startswith("{")]
        mine = [x for x in lines if x.get("request_id") == rid]
        if mine:
            break
        time.sleep(0.1)
    (entry,) = mine
    assert entry["route"] == "/api/whoami" and entry["status"] == 200
    assert entry["org"] == "demo" and entry["account"] == "admin"
    assert entry["bytes"] > 0 and entry["duration_ms"] >= 0
    assert server.token not in server.log()


def test_unknown_route_is_404(server: GraftServer) -> None:
    assert httpx.get(f"{server.url}/nothing/here").status_code == 404


def test_last_used_is_recorded(server: GraftServer) -> None:
    created = new_token(server, ["read"])
    client(server, created["token"]).get("/api/whoami")
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        tokens = client(server, server.token).get("/api/orgs/demo/tokens").json()
        mine = next(t for t in tokens if t["id"] == created["info"]["id"])
        if mine["last_used_at"]:
            return
        time.sleep(0.2)
    raise AssertionError("last_used_at was never written")


def test_repeated_failures_are_rate_limited(tmp_path: Path) -> None:
    srv = GraftServer(tmp_path / "rl", auth_failure_limit=5).start()
    try:
        statuses = [
            httpx.get(f"{srv.url}/api/whoami", auth=("x", "graft_bad")).status_code
            for _ in range(7)
        ]
        assert statuses[:5] == [401] * 5
        assert statuses[5:] == [429, 429]
        r = httpx.get(f"{srv.url}/api/whoami", auth=("x", "graft_bad"))
        assert int(r.headers["retry-after"]) >= 1
    finally:
        srv.stop()


def test_metrics_sum_every_worker(tmp_path: Path) -> None:
    srv = GraftServer(tmp_path / "w2", workers=2, access_log=False).start()
    try:
        for _ in range(30):  # new connections spread over both workers
            assert httpx.get(f"{srv.url}/healthz").status_code == 200
        wanted = 'graft_http_requests_total{method="GET",route="/healthz",status="200"} 31.0'
        # Each worker hands its counts to the shared files once a second (graft.metrics).
        deadline = time.monotonic() + 3
        metrics = httpx.get(f"{srv.url}/metrics").text
        while wanted not in metrics and time.monotonic() < deadline:
            time.sleep(0.2)
            metrics = httpx.get(f"{srv.url}/metrics").text
        assert wanted in metrics, metrics
    finally:
        srv.stop()
