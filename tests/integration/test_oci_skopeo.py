"""Real clients: skopeo (from Debian) against `graft serve`, and pull-through from a local
upstream registry (Debian's `docker-registry`, CNCF distribution) started on loopback."""

from __future__ import annotations

import base64
import hashlib
import json
import os
import shutil
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.fixtures.oci import DockerRegistry, make_image, make_index, sha256, write_layout
from tests.integration.graftserver import GraftServer

SKOPEO = shutil.which("skopeo")
if SKOPEO is None:
    if os.environ.get("CI"):
        raise RuntimeError("skopeo is missing: `make system-deps` installs it (Debian skopeo)")
    pytest.skip("skopeo is not installed", allow_module_level=True)


def skopeo(*args: str, home: Path, check: bool = True) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("REGISTRY_", "XDG_"))}
    env.update(HOME=str(home), XDG_RUNTIME_DIR=str(home / "run"))
    (home / "run").mkdir(parents=True, exist_ok=True)
    # a policy that accepts everything, so the machine's /etc/containers is never needed
    policy = home / "policy.json"
    policy.write_text('{"default": [{"type": "insecureAcceptAnything"}]}')
    proc = subprocess.run(
        [str(SKOPEO), "--policy", str(policy), *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        stdin=subprocess.DEVNULL,
    )
    if check and proc.returncode != 0:
        raise AssertionError(f"skopeo {' '.join(args)} failed:\n{proc.stdout}\n{proc.stderr}")
    return proc


@pytest.fixture(scope="module")
def upstream(tmp_path_factory: pytest.TempPathFactory) -> Iterator[DockerRegistry]:
    reg = DockerRegistry(tmp_path_factory.mktemp("upstream-registry")).start()
    yield reg
    reg.stop()


@pytest.fixture(scope="module")
def graft(
    tmp_path_factory: pytest.TempPathFactory, upstream: DockerRegistry
) -> Iterator[GraftServer]:
    config = [
        {
            "ecosystem": "oci",
            "name": "hub",
            "url": upstream.url,
            "ttl_seconds": 1,
            "namespaces": ["*=library/*", "library/*"],
        }
    ]
    srv = GraftServer(
        tmp_path_factory.mktemp("graft-skopeo") / "data",
        auth_failure_limit=1000,
        usage_flush_seconds=0.2,
        upstream=json.dumps(config),
        oci_gc_seconds=0,
    ).start()
    yield srv
    srv.stop()


@pytest.fixture
def home(tmp_path: Path) -> Path:
    return tmp_path / "home"


def host(graft: GraftServer) -> str:
    return graft.url.removeprefix("http://")


def creds(graft: GraftServer) -> str:
    return f"rootio:{graft.token}"


def raw_manifest_digest(text: str) -> str:
    return "sha256:" + hashlib.sha256(text.encode()).hexdigest()


def test_copy_to_graft_with_dest_creds_inspect_list_and_back(
    graft: GraftServer, tmp_path: Path, home: Path
) -> None:
    img = make_image("skopeo", layer_sizes=(4096, 300_000))
    layout = write_layout(tmp_path / "layout", "v1", [img])
    dest = f"docker://{host(graft)}/team/app:1.0"
    skopeo(
        "copy",
        "--preserve-digests",
        "--dest-tls-verify=false",
        "--dest-creds",
        creds(graft),
        f"oci:{layout}:v1",
        dest,
        home=home,
    )
    raw = skopeo(
        "inspect", "--raw", "--tls-verify=false", "--creds", creds(graft), dest, home=home
    ).stdout
    assert raw.encode() == img.manifest  # stored and served byte for byte
    pushed = img.digest
    info = json.loads(
        skopeo("inspect", "--tls-verify=false", "--creds", creds(graft), dest, home=home).stdout
    )
    assert info["Digest"] == pushed
    assert info["Architecture"] == "amd64"
    tags = json.loads(
        skopeo(
            "list-tags",
            "--tls-verify=false",
            "--creds",
            creds(graft),
            f"docker://{host(graft)}/team/app",
            home=home,
        ).stdout
    )
    assert tags["Tags"] == ["1.0"]
    back = tmp_path / "back"
    skopeo(
        "copy",
        "--preserve-digests",
        "--src-tls-verify=false",
        "--src-creds",
        creds(graft),
        dest,
        f"oci:{back}:copied",
        home=home,
    )
    index = json.loads((back / "index.json").read_text())
    assert index["manifests"][0]["digest"] == pushed
    for digest, data in img.blobs.items():
        assert (back / "blobs" / "sha256" / digest.split(":")[1]).read_bytes() == data
    # a wrong token is refused with the registry's message
    bad = skopeo(
        "inspect",
        "--tls-verify=false",
        "--creds",
        "rootio:graft_wrong",
        dest,
        home=home,
        check=False,
    )
    assert bad.returncode != 0 and ("unauthorized" in bad.stderr.lower() or "401" in bad.stderr)


def test_copy_with_an_authfile_in_dockerconfigjson_form(
    graft: GraftServer, tmp_path: Path, home: Path
) -> None:
    auth = base64.b64encode(creds(graft).encode()).decode()
    authfile = tmp_path / "config.json"
    authfile.write_text(json.dumps({"auths": {host(graft): {"auth": auth}}}))
    img = make_image("authfile")
    layout = write_layout(tmp_path / "layout", "v1", [img])
    dest = f"docker://{host(graft)}/team/authfile:v1"
    skopeo(
        "copy",
        "--dest-tls-verify=false",
        "--authfile",
        str(authfile),
        f"oci:{layout}:v1",
        dest,
        home=home,
    )
    info = json.loads(
        skopeo("inspect", "--tls-verify=false", "--authfile", str(authfile), dest, home=home).stdout
    )
    assert info["Labels"] == {"test": "authfile"}


def test_multi_arch_index(graft: GraftServer, tmp_path: Path, home: Path) -> None:
    images = [make_image("multi", arch="amd64"), make_image("multi", arch="arm64")]
    index = make_index(images)
    layout = write_layout(tmp_path / "layout", "v1", images, index=index)
    dest = f"docker://{host(graft)}/team/multi:v1"
    skopeo(
        "copy",
        "--all",
        "--preserve-digests",
        "--dest-tls-verify=false",
        "--dest-creds",
        creds(graft),
        f"oci:{layout}:v1",
        dest,
        home=home,
    )
    raw = skopeo(
        "inspect", "--raw", "--tls-verify=false", "--creds", creds(graft), dest, home=home
    ).stdout
    assert raw.encode() == index
    pushed = json.loads(raw)
    assert pushed["mediaType"] == "application/vnd.oci.image.index.v1+json"
    children = {m["platform"]["architecture"]: m["digest"] for m in pushed["manifests"]}
    assert set(children) == {"amd64", "arm64"}
    for arch in ("amd64", "arm64"):
        info = json.loads(
            skopeo(
                "--override-arch",
                arch,
                "inspect",
                "--tls-verify=false",
                "--creds",
                creds(graft),
                dest,
                home=home,
            ).stdout
        )
        assert info["Architecture"] == arch
    c = httpx.Client(base_url=graft.url, auth=("rootio", graft.token))
    for img in images:
        arch = img.platform["architecture"]
        got = c.get(f"/v2/team/multi/manifests/{children[arch]}")
        assert got.status_code == 200 and got.content == img.manifest
    back = tmp_path / "back"
    skopeo(
        "copy",
        "--all",
        "--preserve-digests",
        "--src-tls-verify=false",
        "--src-creds",
        creds(graft),
        dest,
        f"oci:{back}:v1",
        home=home,
    )
    top = json.loads((back / "index.json").read_text())["manifests"][0]["digest"]
    assert top == raw_manifest_digest(raw)
    for digest in children.values():
        assert (back / "blobs" / "sha256" / digest.split(":")[1]).exists()


def test_pull_through_from_a_local_upstream_registry(
    graft: GraftServer, upstream: DockerRegistry, tmp_path: Path, home: Path
) -> None:
    first = make_image("upstream-1", layer_sizes=(10_000, 2_000_000))
    upstream.push("library/python", "3.12-slim", first)
    # `python` maps to library/python upstream (the '*=library/*' rule)
    src = f"docker://{host(graft)}/python:3.12-slim"
    out = tmp_path / "pulled"
    skopeo(
        "copy",
        "--preserve-digests",
        "--src-tls-verify=false",
        "--src-creds",
        creds(graft),
        src,
        f"oci:{out}:x",
        home=home,
    )
    assert json.loads((out / "index.json").read_text())["manifests"][0]["digest"] == first.digest
    for digest, data in first.blobs.items():
        assert (out / "blobs" / "sha256" / digest.split(":")[1]).read_bytes() == data
    tags = json.loads(
        skopeo(
            "list-tags",
            "--tls-verify=false",
            "--creds",
            creds(graft),
            f"docker://{host(graft)}/library/python",
            home=home,
        ).stdout
    )
    assert "3.12-slim" in tags["Tags"]
    # the tag moves upstream: after the TTL (1 s) Graft revalidates and serves the new image
    second = make_image("upstream-2")
    upstream.push("library/python", "3.12-slim", second)
    time.sleep(1.5)
    info = json.loads(
        skopeo("inspect", "--tls-verify=false", "--creds", creds(graft), src, home=home).stdout
    )
    assert info["Digest"] == second.digest
    skopeo(
        "copy",
        "--preserve-digests",
        "--src-tls-verify=false",
        "--src-creds",
        creds(graft),
        src,
        f"oci:{tmp_path / 'second'}:x",
        home=home,
    )
    # the organization's patched tag sits next to the upstream's
    layout = write_layout(tmp_path / "patched", "p", [make_image("patched")])
    skopeo(
        "copy",
        "--preserve-digests",
        "--dest-tls-verify=false",
        "--dest-creds",
        creds(graft),
        f"oci:{layout}:p",
        f"docker://{host(graft)}/python:3.12-slim-graft",
        home=home,
    )
    tags = json.loads(
        skopeo(
            "list-tags",
            "--tls-verify=false",
            "--creds",
            creds(graft),
            f"docker://{host(graft)}/python",
            home=home,
        ).stdout
    )
    assert {"3.12-slim", "3.12-slim-graft"} <= set(tags["Tags"])
    # upstream down: the cached manifest and blobs keep being served
    upstream.stop()
    try:
        time.sleep(1.5)
        info = json.loads(
            skopeo("inspect", "--tls-verify=false", "--creds", creds(graft), src, home=home).stdout
        )
        assert info["Digest"] == second.digest
        again = tmp_path / "offline"
        skopeo(
            "copy",
            "--preserve-digests",
            "--src-tls-verify=false",
            "--src-creds",
            creds(graft),
            src,
            f"oci:{again}:x",
            home=home,
        )
        assert (
            json.loads((again / "index.json").read_text())["manifests"][0]["digest"]
            == second.digest
        )
    finally:
        upstream.start()


def test_upstream_digest_is_verified(graft: GraftServer, upstream: DockerRegistry) -> None:
    img = make_image("verify")
    upstream.push("library/verified", "v1", img)
    c = httpx.Client(base_url=graft.url, auth=("rootio", graft.token))
    r = c.get("/v2/verified/manifests/v1")
    assert r.status_code == 200 and r.content == img.manifest
    layer = sha256(img.layers[0])
    assert c.get(f"/v2/verified/blobs/{layer}").content == img.layers[0]
    # asking for a digest the upstream does not have is a clean 404, nothing cached
    missing = c.get(f"/v2/verified/manifests/{sha256(b'nothing')}")
    assert missing.status_code == 404
