"""`graft serve --blob-port`: large downloads are redirected to the zero-copy blob server
with a signed, expiring URL; clients (pip, curl-like httpx) follow it transparently."""

from __future__ import annotations

import base64
import hashlib
import random
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import parse_qs, urlencode, urlsplit

import httpx
import pytest

from tests.fixtures.clients import isolated_env
from tests.fixtures.dists import make_wheel, sha256_file
from tests.integration.graftserver import GraftServer, free_port

BIG = "big-private"


@pytest.fixture(scope="module")
def blob_graft(tmp_path_factory: pytest.TempPathFactory) -> Iterator[GraftServer]:
    srv = GraftServer(
        tmp_path_factory.mktemp("graft-blobs") / "data",
        blob_server_port=free_port(),
        blob_redirect_min_bytes=1 << 20,
        auth_failure_limit=1000,
    ).start()
    yield srv
    srv.stop()


@pytest.fixture(scope="module")
def wheels(blob_graft: GraftServer, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("blob-wheels")
    noise = base64.b64encode(random.Random(3).randbytes(2 << 20)).decode()  # incompressible
    big = make_wheel(root, BIG, "1.0", files={"big_private/blob.txt": noise})
    small = make_wheel(root, "small-private", "1.0")
    for wheel in (big, small):
        blob_graft.cli(
            "publish", "pypi", str(wheel), "--url", blob_graft.url, "--token",
            blob_graft.token, "--private",
        )  # fmt: skip
    return {"big": big, "small": small}


def file_url(srv: GraftServer, wheel: Path, project: str) -> str:
    return f"{srv.url}/pypi/files/{project}/{wheel.name}"


def test_large_download_redirects_to_a_signed_url(
    blob_graft: GraftServer, wheels: dict[str, Path]
) -> None:
    auth = ("rootio", blob_graft.token)
    url = file_url(blob_graft, wheels["big"], BIG)
    r = httpx.get(url, auth=auth)
    assert r.status_code == 302
    location = urlsplit(r.headers["location"])
    assert location.port == blob_graft.env_port("BLOB_SERVER_PORT")
    assert location.path.startswith("/_blob/")
    assert r.headers["cache-control"] == "no-store"
    assert blob_graft.token not in r.headers["location"]
    followed = httpx.get(url, auth=auth, follow_redirects=True)
    assert followed.status_code == 200
    assert hashlib.sha256(followed.content).hexdigest() == sha256_file(wheels["big"])
    assert followed.headers["content-type"] == "application/octet-stream"
    # A range goes the same way and the blob server answers it.
    part = httpx.get(url, auth=auth, headers={"Range": "bytes=10-109"}, follow_redirects=True)
    assert part.status_code == 206 and part.content == wheels["big"].read_bytes()[10:110]
    # HEAD and conditional GETs are answered by Graft itself, without a redirect.
    head = httpx.head(url, auth=auth)
    assert head.status_code == 200
    assert int(head.headers["content-length"]) == wheels["big"].stat().st_size
    etag = head.headers["etag"]
    assert httpx.get(url, auth=auth, headers={"If-None-Match": etag}).status_code == 304
    # Without a token there is no redirect, only the challenge.
    assert httpx.get(url).status_code == 401


def test_one_connection_carries_several_downloads(
    blob_graft: GraftServer, wheels: dict[str, Path]
) -> None:
    # The body goes out from a thread straight to the socket: the connection must stay usable
    # for the next request (whole, ranged, whole again) on the same keep-alive connection.
    location = httpx.get(
        file_url(blob_graft, wheels["big"], BIG), auth=("rootio", blob_graft.token)
    ).headers["location"]
    data = wheels["big"].read_bytes()
    with httpx.Client(limits=httpx.Limits(max_connections=1)) as client:
        for headers, want in (
            ({}, data),
            ({"Range": f"bytes={len(data) - 1000}-"}, data[-1000:]),
            ({"Range": "bytes=0-0"}, data[:1]),
            ({}, data),
        ):
            r = client.get(location, headers=headers)
            assert r.status_code == (206 if headers else 200)
            assert int(r.headers["content-length"]) == len(want) and r.content == want


def test_small_downloads_stay_on_the_main_port(
    blob_graft: GraftServer, wheels: dict[str, Path]
) -> None:
    r = httpx.get(
        file_url(blob_graft, wheels["small"], "small-private"), auth=("", blob_graft.token)
    )
    assert r.status_code == 200 and r.content == wheels["small"].read_bytes()


def test_blob_server_refuses_forged_or_foreign_links(
    blob_graft: GraftServer, wheels: dict[str, Path]
) -> None:
    r = httpx.get(file_url(blob_graft, wheels["big"], BIG), auth=("", blob_graft.token))
    location = urlsplit(r.headers["location"])
    base = f"{location.scheme}://{location.netloc}"
    q = {k: v[0] for k, v in parse_qs(location.query).items()}
    forged = dict(q, s=q["s"][:-2] + ("AA" if not q["s"].endswith("AA") else "BB"))
    bad = httpx.get(f"{base}{location.path}?{urlencode(forged)}")
    assert bad.status_code == 403 and "invalid or expired download link" in bad.text
    retyped = dict(q, t="text/html")  # the content type is signed too
    assert httpx.get(f"{base}{location.path}?{urlencode(retyped)}").status_code == 403
    other = "/_blob/" + "0" * 64
    assert httpx.get(f"{base}{other}?{location.query}").status_code == 403
    assert httpx.get(f"{base}/pypi/simple/").status_code == 404  # nothing else is served


def test_pip_follows_the_redirect(
    blob_graft: GraftServer, wheels: dict[str, Path], tmp_path: Path
) -> None:
    host = blob_graft.url.removeprefix("http://")
    index = f"http://rootio:{blob_graft.token}@{host}/pypi/simple/"
    target = tmp_path / "target"
    proc = subprocess.run(
        [sys.executable, "-m", "pip", "install", "--no-cache-dir", "--no-deps", "--target",
         str(target), "--index-url", index, BIG, "small-private"],
        env=isolated_env(tmp_path / "home"), capture_output=True, text=True, timeout=240,
        stdin=subprocess.DEVNULL, check=False,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stdout + proc.stderr
    blob = target / "big_private" / "blob.txt"
    assert blob.stat().st_size > 2 << 20
    assert (target / "small_private").is_dir()


def test_blob_server_stops_with_graft(tmp_path: Path) -> None:
    port = free_port()
    srv = GraftServer(tmp_path / "data", blob_server_port=port).start()
    assert httpx.get(f"http://127.0.0.1:{port}/_blob/x").status_code == 403
    srv.stop()
    with pytest.raises(httpx.TransportError):
        httpx.get(f"http://127.0.0.1:{port}/_blob/x", timeout=2)
