"""The OCI distribution spec 1.1 against a running `graft serve`, written from the spec text:
pull, push (monolithic, chunked, mount, cancel), content discovery, content management, the
Docker token flow and Basic credentials, error codes, and that bad input stores nothing."""

from __future__ import annotations

import hashlib
import json
import sqlite3
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.fixtures.oci import OCI_INDEX, OCI_MANIFEST, canonical, make_image, sha256
from tests.integration.graftserver import GraftServer

DOCKER_MANIFEST = "application/vnd.docker.distribution.manifest.v2+json"


@pytest.fixture(scope="module")
def graft(tmp_path_factory: pytest.TempPathFactory) -> Iterator[GraftServer]:
    srv = GraftServer(
        tmp_path_factory.mktemp("graft-oci") / "data",
        auth_failure_limit=1000,
        usage_flush_seconds=0.2,
        oci_gc_seconds=0,
    ).start()
    yield srv
    srv.stop()


def token_for(graft: GraftServer, org: str, scope: str) -> str:
    graft.cli("org", "create", org, check=False)
    graft.cli("account", "create", "ci", "--org", org, "--service", check=False)
    out = graft.cli("token", "create", "--org", org, "--account", "ci", "--scope", scope, "--json")
    return str(json.loads(out.stdout)["token"])


@pytest.fixture(scope="module")
def basic(graft: GraftServer) -> httpx.Client:
    return httpx.Client(base_url=graft.url, auth=("rootio", graft.token), timeout=30)


def bearer(graft: GraftServer, secret: str, *scopes: str) -> httpx.Client:
    r = httpx.get(
        f"{graft.url}/v2/token",
        params=[("service", "graft"), *(("scope", s) for s in scopes)],
        auth=("rootio", secret),
    )
    assert r.status_code == 200, r.text
    return httpx.Client(
        base_url=graft.url, headers={"Authorization": f"Bearer {r.json()['token']}"}, timeout=30
    )


def error_code(r: httpx.Response) -> str:
    return str(r.json()["errors"][0]["code"])


def push_blob(c: httpx.Client, name: str, data: bytes) -> str:
    digest = sha256(data)
    r = c.post(f"/v2/{name}/blobs/uploads/", params={"digest": digest}, content=data)
    assert r.status_code == 201, r.text
    assert r.headers["location"] == f"/v2/{name}/blobs/{digest}"
    assert r.headers["docker-content-digest"] == digest
    return digest


def push_image(c: httpx.Client, name: str, tag: str, label: str = "a") -> tuple[str, bytes]:
    img = make_image(label)
    for data in img.blobs.values():
        push_blob(c, name, data)
    r = c.put(
        f"/v2/{name}/manifests/{tag}", content=img.manifest, headers={"Content-Type": OCI_MANIFEST}
    )
    assert r.status_code == 201, r.text
    assert r.headers["docker-content-digest"] == img.digest
    return img.digest, img.manifest


# --- auth ----------------------------------------------------------------------------------


def test_base_endpoint_challenges_then_accepts_basic_and_bearer(
    graft: GraftServer, basic: httpx.Client
) -> None:
    r = httpx.get(f"{graft.url}/v2/")
    assert r.status_code == 401
    assert r.headers["www-authenticate"] == (f'Bearer realm="{graft.url}/v2/token",service="graft"')
    assert error_code(r) == "UNAUTHORIZED"
    assert basic.get("/v2/").status_code == 200
    assert basic.get("/v2/").headers["docker-distribution-api-version"] == "registry/2.0"
    assert bearer(graft, graft.token).get("/v2/").status_code == 200
    bad = httpx.get(f"{graft.url}/v2/", headers={"Authorization": "Bearer a.b.c"})
    assert bad.status_code == 401 and 'error="invalid_token"' in bad.headers["www-authenticate"]


def test_challenge_names_the_repository_scope(graft: GraftServer) -> None:
    r = httpx.get(f"{graft.url}/v2/team/app/manifests/latest")
    assert r.status_code == 401
    assert 'scope="repository:team/app:pull"' in r.headers["www-authenticate"]


def test_token_is_limited_to_what_the_graft_token_allows(graft: GraftServer) -> None:
    read = token_for(graft, "readers", "read")
    r = httpx.get(
        f"{graft.url}/v2/token",
        params={"service": "graft", "scope": "repository:team/app:pull,push"},
        auth=("anyone", read),
    )
    assert r.status_code == 200
    claims = json.loads(
        __import__("base64").urlsafe_b64decode(r.json()["token"].split(".")[1] + "==")
    )
    assert claims["access"] == [{"type": "repository", "name": "team/app", "actions": ["pull"]}]
    assert r.json()["expires_in"] <= 300
    c = bearer(graft, read, "repository:team/app:pull,push")
    denied = c.post("/v2/team/app/blobs/uploads/")
    assert denied.status_code == 403 and error_code(denied) == "DENIED"
    # a token for one repository does not open another
    other = c.get("/v2/team/other/tags/list")
    assert other.status_code == 401
    assert 'scope="repository:team/other:pull"' in other.headers["www-authenticate"]
    assert 'error="insufficient_scope"' in other.headers["www-authenticate"]
    # wrong credentials at the token endpoint
    assert httpx.get(f"{graft.url}/v2/token", auth=("x", "graft_nope")).status_code == 401


def test_token_endpoint_post_form(graft: GraftServer) -> None:
    r = httpx.post(
        f"{graft.url}/v2/token",
        data={
            "grant_type": "password",
            "username": "rootio",
            "password": graft.token,
            "service": "graft",
            "scope": "repository:form/app:pull",
        },
    )
    assert r.status_code == 200, r.text
    assert r.json()["access_token"]


def test_read_token_sent_straight_cannot_push(graft: GraftServer) -> None:
    read = token_for(graft, "readers", "read")
    c = httpx.Client(base_url=graft.url, auth=("u", read))
    r = c.post("/v2/team/app/blobs/uploads/")
    assert r.status_code == 403 and error_code(r) == "DENIED"


# --- pull and push -----------------------------------------------------------------------


def test_push_then_pull_by_tag_and_digest(basic: httpx.Client) -> None:
    digest, manifest = push_image(basic, "library/python", "3.12-slim")
    for ref in ("3.12-slim", digest):
        r = basic.get(f"/v2/library/python/manifests/{ref}", headers={"Accept": OCI_MANIFEST})
        assert r.status_code == 200
        assert r.content == manifest
        assert r.headers["content-type"] == OCI_MANIFEST
        assert r.headers["docker-content-digest"] == digest
        h = basic.head(f"/v2/library/python/manifests/{ref}")
        assert h.status_code == 200 and h.content == b""
        assert h.headers["content-length"] == str(len(manifest))
    etag = r.headers["etag"]
    assert (
        basic.get(
            f"/v2/library/python/manifests/{digest}", headers={"If-None-Match": etag}
        ).status_code
        == 304
    )
    missing = basic.get("/v2/library/python/manifests/nope")
    assert missing.status_code == 404 and error_code(missing) == "MANIFEST_UNKNOWN"


def test_blob_get_head_and_range(basic: httpx.Client) -> None:
    data = bytes(range(256)) * 40
    digest = push_blob(basic, "ranged/blob", data)
    r = basic.get(f"/v2/ranged/blob/blobs/{digest}")
    assert r.status_code == 200 and r.content == data
    assert r.headers["docker-content-digest"] == digest
    h = basic.head(f"/v2/ranged/blob/blobs/{digest}")
    assert h.status_code == 200 and h.headers["content-length"] == str(len(data))
    part = basic.get(f"/v2/ranged/blob/blobs/{digest}", headers={"Range": "bytes=10-19"})
    assert part.status_code == 206 and part.content == data[10:20]
    other = basic.get(f"/v2/ranged/other/blobs/{digest}")  # never linked there
    assert other.status_code == 404 and error_code(other) == "BLOB_UNKNOWN"


def test_chunked_upload_contract(basic: httpx.Client) -> None:
    data = b"0123456789" * 1000
    r = basic.post("/v2/chunked/app/blobs/uploads/")
    assert r.status_code == 202
    loc = r.headers["location"]
    assert r.headers["range"] == "0-0" and r.headers["docker-upload-uuid"] in loc
    r = basic.patch(
        loc,
        content=data[:4000],
        headers={"Content-Range": "0-3999", "Content-Type": "application/octet-stream"},
    )
    assert r.status_code == 202 and r.headers["range"] == "0-3999"
    loc = r.headers["location"]
    # out of order: 416 and the upload is unchanged
    bad = basic.patch(loc, content=data[5000:6000], headers={"Content-Range": "5000-5999"})
    assert bad.status_code == 416 and error_code(bad) == "BLOB_UPLOAD_INVALID"
    status = basic.get(loc)
    assert status.status_code == 204 and status.headers["range"] == "0-3999"
    r = basic.patch(loc, content=data[4000:9000], headers={"Content-Range": "4000-8999"})
    assert r.status_code == 202 and r.headers["range"] == "0-8999"
    done = basic.put(r.headers["location"], params={"digest": sha256(data)}, content=data[9000:])
    assert done.status_code == 201, done.text
    assert basic.get(f"/v2/chunked/app/blobs/{sha256(data)}").content == data
    assert basic.get(loc).status_code == 404  # the session is gone


def test_streamed_patch_then_put(basic: httpx.Client) -> None:
    data = b"x" * 300_000
    loc = basic.post("/v2/streamed/app/blobs/uploads/").headers["location"]
    r = basic.patch(loc, content=iter([data[:100_000], data[100_000:]]))
    assert r.status_code == 202 and r.headers["range"] == f"0-{len(data) - 1}"
    assert basic.put(r.headers["location"], params={"digest": sha256(data)}).status_code == 201


def test_wrong_digest_stores_nothing(graft: GraftServer, basic: httpx.Client) -> None:
    data = b"real bytes"
    wrong = sha256(b"other bytes")
    r = basic.post("/v2/bad/digest/blobs/uploads/", params={"digest": wrong}, content=data)
    assert r.status_code == 400 and error_code(r) == "DIGEST_INVALID"
    loc = basic.post("/v2/bad/digest/blobs/uploads/").headers["location"]
    r = basic.put(loc, params={"digest": wrong}, content=data)
    assert r.status_code == 400 and error_code(r) == "DIGEST_INVALID"
    assert basic.head(f"/v2/bad/digest/blobs/{wrong}").status_code == 404
    assert basic.head(f"/v2/bad/digest/blobs/{sha256(data)}").status_code == 404
    assert not list((graft.data_dir / "blobs" / "sha256").rglob(wrong.split(":")[1]))
    malformed = basic.post("/v2/bad/digest/blobs/uploads/", params={"digest": "sha256:xyz"})
    assert malformed.status_code == 400 and error_code(malformed) == "DIGEST_INVALID"
    put_without = basic.put(basic.post("/v2/bad/digest/blobs/uploads/").headers["location"])
    assert put_without.status_code == 400 and error_code(put_without) == "DIGEST_INVALID"


def test_cancel_upload(basic: httpx.Client) -> None:
    loc = basic.post("/v2/cancel/app/blobs/uploads/").headers["location"]
    basic.patch(loc, content=b"abc")
    assert basic.delete(loc).status_code == 204
    r = basic.get(loc)
    assert r.status_code == 404 and error_code(r) == "BLOB_UPLOAD_UNKNOWN"


def test_cross_repository_mount(basic: httpx.Client) -> None:
    digest = push_blob(basic, "mount/source", b"shared layer")
    r = basic.post(
        "/v2/mount/target/blobs/uploads/", params={"mount": digest, "from": "mount/source"}
    )
    assert r.status_code == 201 and r.headers["location"] == f"/v2/mount/target/blobs/{digest}"
    assert basic.get(f"/v2/mount/target/blobs/{digest}").content == b"shared layer"
    unknown = sha256(b"nobody has this")
    r = basic.post(
        "/v2/mount/target/blobs/uploads/", params={"mount": unknown, "from": "mount/source"}
    )
    assert r.status_code == 202 and "/blobs/uploads/" in r.headers["location"]


def test_mount_with_a_registry_token_asks_for_pull_on_the_source(
    graft: GraftServer, basic: httpx.Client
) -> None:
    digest = push_blob(basic, "mount/src2", b"layer mounted over the token flow")
    params = {"mount": digest, "from": "mount/src2"}
    # The first challenge already names the source, so one token request covers the mount
    # (the OCI conformance suite's client asks once per request).
    first = httpx.post(f"{graft.url}/v2/mount/dst2/blobs/uploads/", params=params)
    assert first.status_code == 401
    assert (
        'scope="repository:mount/dst2:pull,push repository:mount/src2:pull"'
        in first.headers["www-authenticate"]
    )
    plain = httpx.post(f"{graft.url}/v2/mount/dst2/blobs/uploads/")
    assert 'scope="repository:mount/dst2:pull,push"' in plain.headers["www-authenticate"]
    # A token for the target only (asked for before the client knew of the mount): 401 again,
    # naming both.
    only_target = bearer(graft, graft.token, "repository:mount/dst2:pull,push")
    r = only_target.post("/v2/mount/dst2/blobs/uploads/", params=params)
    assert r.status_code == 401 and error_code(r) == "UNAUTHORIZED"
    challenge = r.headers["www-authenticate"]
    assert 'scope="repository:mount/dst2:pull,push repository:mount/src2:pull"' in challenge
    assert 'error="insufficient_scope"' in challenge
    # the client asks again with the challenge's scopes, as a registry client does
    both = bearer(graft, graft.token, "repository:mount/dst2:pull,push repository:mount/src2:pull")
    r = both.post("/v2/mount/dst2/blobs/uploads/", params=params)
    assert r.status_code == 201 and r.headers["location"] == f"/v2/mount/dst2/blobs/{digest}"


def test_sha512_blob_and_manifest(basic: httpx.Client) -> None:
    data = b"sha512 content"
    d512 = "sha512:" + hashlib.sha512(data).hexdigest()
    r = basic.post("/v2/algo/app/blobs/uploads/", params={"digest": d512}, content=data)
    assert r.status_code == 201, r.text
    assert basic.get(f"/v2/algo/app/blobs/{d512}").content == data
    img = make_image("sha512")
    for blob in img.blobs.values():
        push_blob(basic, "algo/app", blob)
    m512 = "sha512:" + hashlib.sha512(img.manifest).hexdigest()
    r = basic.put(
        f"/v2/algo/app/manifests/{m512}",
        content=img.manifest,
        headers={"Content-Type": OCI_MANIFEST},
    )
    assert r.status_code == 201 and r.headers["docker-content-digest"] == m512
    assert basic.get(f"/v2/algo/app/manifests/{m512}").content == img.manifest


def test_docker_media_type_is_kept_byte_for_byte(basic: httpx.Client) -> None:
    img = make_image("docker")
    for blob in img.blobs.values():
        push_blob(basic, "docker/app", blob)
    doc = json.loads(img.manifest)
    doc["mediaType"] = DOCKER_MANIFEST
    doc["config"]["mediaType"] = "application/vnd.docker.container.image.v1+json"
    body = json.dumps(doc, indent=3).encode() + b"\n"  # odd formatting survives as is
    r = basic.put(
        "/v2/docker/app/manifests/v1", content=body, headers={"Content-Type": DOCKER_MANIFEST}
    )
    assert r.status_code == 201
    got = basic.get("/v2/docker/app/manifests/v1")
    assert got.content == body and got.headers["content-type"] == DOCKER_MANIFEST
    assert got.headers["docker-content-digest"] == sha256(body)


def test_bad_manifests_store_nothing(basic: httpx.Client) -> None:
    img = make_image("bad")
    name = "bad/manifests"
    push_blob(basic, name, img.config)  # layers missing
    r = basic.put(
        f"/v2/{name}/manifests/v1", content=img.manifest, headers={"Content-Type": OCI_MANIFEST}
    )
    assert r.status_code == 400 and error_code(r) == "MANIFEST_BLOB_UNKNOWN"
    r = basic.put(
        f"/v2/{name}/manifests/v1", content=b"{not json", headers={"Content-Type": OCI_MANIFEST}
    )
    assert r.status_code == 400 and error_code(r) == "MANIFEST_INVALID"
    r = basic.put(
        f"/v2/{name}/manifests/v1",
        content=img.manifest,
        headers={"Content-Type": "application/x-nope"},
    )
    assert r.status_code == 400 and error_code(r) == "MANIFEST_INVALID"
    wrong = sha256(b"x")
    r = basic.put(
        f"/v2/{name}/manifests/{wrong}",
        content=img.manifest,
        headers={"Content-Type": OCI_MANIFEST},
    )
    assert r.status_code == 400 and error_code(r) == "DIGEST_INVALID"
    big = b'{"schemaVersion":2,"pad":"' + b"a" * (4 << 20) + b'"}'
    r = basic.put(f"/v2/{name}/manifests/big", content=big, headers={"Content-Type": OCI_MANIFEST})
    assert r.status_code == 413 and error_code(r) == "SIZE_INVALID"
    r = basic.put(
        f"/v2/{name}/manifests/bad:tag",
        content=img.manifest,
        headers={"Content-Type": OCI_MANIFEST},
    )
    assert r.status_code == 400
    assert basic.get(f"/v2/{name}/manifests/v1").status_code == 404
    assert basic.get(f"/v2/{name}/tags/list").status_code == 404


@pytest.mark.parametrize("name", ["Upper/case", "a//b", "-lead", "a/b-", "a" * 256])
def test_invalid_names(basic: httpx.Client, name: str) -> None:
    r = basic.post(f"/v2/{name}/blobs/uploads/")
    assert r.status_code in (400, 404)
    if r.status_code == 400:
        assert error_code(r) == "NAME_INVALID"


def test_name_with_dotdot_is_refused(basic: httpx.Client) -> None:
    r = basic.get("/v2/a/%2E%2E/b/tags/list")
    assert r.status_code == 400 and error_code(r) == "NAME_INVALID"
    r = basic.post("/v2/Team/App/blobs/uploads/")
    assert r.status_code == 400 and error_code(r) == "NAME_INVALID"


# --- content discovery ---------------------------------------------------------------------


def test_tags_list_pagination(basic: httpx.Client) -> None:
    name = "paged/app"
    img = make_image("paged")
    for blob in img.blobs.values():
        push_blob(basic, name, blob)
    tags = ["a", "b", "c", "d", "e"]
    for tag in tags:
        r = basic.put(
            f"/v2/{name}/manifests/{tag}",
            content=img.manifest,
            headers={"Content-Type": OCI_MANIFEST},
        )
        assert r.status_code == 201
    assert basic.get(f"/v2/{name}/tags/list").json() == {"name": name, "tags": tags}
    r = basic.get(f"/v2/{name}/tags/list", params={"n": 2})
    assert r.json()["tags"] == ["a", "b"]
    assert r.headers["link"] == f'</v2/{name}/tags/list?n=2&last=b>; rel="next"'
    r = basic.get(f"/v2/{name}/tags/list", params={"n": 2, "last": "b"})
    assert r.json()["tags"] == ["c", "d"]
    r = basic.get(f"/v2/{name}/tags/list", params={"n": 2, "last": "d"})
    assert r.json()["tags"] == ["e"] and "link" not in r.headers
    assert basic.get(f"/v2/{name}/tags/list", params={"n": 0}).json()["tags"] == []
    unknown = basic.get("/v2/nobody/here/tags/list")
    assert unknown.status_code == 404 and error_code(unknown) == "NAME_UNKNOWN"


def test_referrers_with_artifact_type_filter(basic: httpx.Client) -> None:
    name = "refs/app"
    subject_digest, subject = push_image(basic, name, "v1", "subject")
    empty = b"{}"
    push_blob(basic, name, empty)
    descriptors = []
    for artifact_type in ("application/vnd.example.sbom", "application/vnd.example.sig"):
        doc = {
            "schemaVersion": 2,
            "mediaType": OCI_MANIFEST,
            "artifactType": artifact_type,
            "config": {
                "mediaType": "application/vnd.oci.empty.v1+json",
                "digest": sha256(empty),
                "size": 2,
            },
            "layers": [],
            "subject": {"mediaType": OCI_MANIFEST, "digest": subject_digest, "size": len(subject)},
            "annotations": {"org.example.kind": artifact_type},
        }
        body = canonical(doc)
        r = basic.put(
            f"/v2/{name}/manifests/{sha256(body)}",
            content=body,
            headers={"Content-Type": OCI_MANIFEST},
        )
        assert r.status_code == 201 and r.headers["oci-subject"] == subject_digest
        descriptors.append((artifact_type, sha256(body)))
    r = basic.get(f"/v2/{name}/referrers/{subject_digest}")
    assert r.status_code == 200 and r.headers["content-type"] == OCI_INDEX
    listed = r.json()["manifests"]
    assert {(m["artifactType"], m["digest"]) for m in listed} == set(descriptors)
    assert all(m["annotations"]["org.example.kind"] == m["artifactType"] for m in listed)
    r = basic.get(
        f"/v2/{name}/referrers/{subject_digest}", params={"artifactType": descriptors[1][0]}
    )
    assert [m["digest"] for m in r.json()["manifests"]] == [descriptors[1][1]]
    assert r.headers["oci-filters-applied"] == "artifactType"
    nothing = basic.get(f"/v2/{name}/referrers/{sha256(b'none')}")
    assert nothing.status_code == 200 and nothing.json()["manifests"] == []


def test_catalog_lists_only_the_organizations_repositories(
    graft: GraftServer, basic: httpx.Client
) -> None:
    push_image(basic, "catalog/mine", "v1")
    other = token_for(graft, "otherorg", "publish")
    oc = httpx.Client(base_url=graft.url, auth=("u", other))
    push_image(oc, "catalog/theirs", "v1")
    mine = basic.get("/v2/_catalog").json()["repositories"]
    assert "catalog/mine" in mine and "catalog/theirs" not in mine
    assert oc.get("/v2/_catalog").json()["repositories"] == ["catalog/theirs"]
    # another organization does not see (or pull) this one's images
    assert oc.get("/v2/catalog/mine/manifests/v1").status_code == 404
    page = basic.get("/v2/_catalog", params={"n": 1})
    assert len(page.json()["repositories"]) == 1 and 'rel="next"' in page.headers["link"]


# --- content management --------------------------------------------------------------------


def test_delete_tag_manifest_and_blob(basic: httpx.Client) -> None:
    name = "delete/app"
    digest, _ = push_image(basic, name, "v1", "del")
    r = basic.put(
        f"/v2/{name}/manifests/v2",
        content=basic.get(f"/v2/{name}/manifests/v1").content,
        headers={"Content-Type": OCI_MANIFEST},
    )
    assert r.status_code == 201
    assert basic.delete(f"/v2/{name}/manifests/v2").status_code == 202
    assert basic.get(f"/v2/{name}/manifests/v2").status_code == 404
    assert basic.get(f"/v2/{name}/manifests/v1").status_code == 200
    assert basic.delete(f"/v2/{name}/manifests/{digest}").status_code == 202
    time.sleep(0.05)
    for ref in ("v1", digest):
        r = basic.get(f"/v2/{name}/manifests/{ref}")
        assert r.status_code == 404 and error_code(r) == "MANIFEST_UNKNOWN"
    assert basic.delete(f"/v2/{name}/manifests/{digest}").status_code == 404
    layer = make_image("del").layers[0]
    assert basic.delete(f"/v2/{name}/blobs/{sha256(layer)}").status_code == 202
    assert basic.get(f"/v2/{name}/blobs/{sha256(layer)}").status_code == 404
    r = basic.delete(f"/v2/{name}/blobs/{sha256(layer)}")
    assert r.status_code == 404 and error_code(r) == "BLOB_UNKNOWN"


def test_a_pull_is_recorded_as_usage(graft: GraftServer, basic: httpx.Client) -> None:
    digest, _ = push_image(basic, "usage/python", "3.12-slim-graft", "usage")
    assert basic.get("/v2/usage/python/manifests/3.12-slim-graft").status_code == 200
    rows: list[tuple[str, str, str, str]] = []
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        with sqlite3.connect(Path(graft.data_dir) / "graft.db") as db:
            rows = db.execute(
                "SELECT ecosystem, package, version, served FROM library_entries "
                "WHERE ecosystem = 'oci' AND package = 'usage/python'"
            ).fetchall()
        if rows:
            break
        time.sleep(0.2)
    assert rows == [("oci", "usage/python", f"3.12-slim-graft@{digest}", "patched")]
