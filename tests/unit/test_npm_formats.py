"""npm names, tarballs, integrity strings, publish documents, Accept negotiation, and the
packument overlay, without a server."""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import io
import json
import tarfile
from pathlib import Path

import pytest

from graft.catalog import CatalogFile
from graft.ecosystems.npm import packument
from graft.ecosystems.npm.names import parse_name
from graft.ecosystems.npm.publish import check_tag, read_publish_document
from graft.ecosystems.npm.routes import wants_abbreviated
from graft.ecosystems.npm.tarballs import parse_integrity, read_tarball, sri
from graft.errors import InvalidInput
from graft.upstream.pages import Page


def tgz(path: Path, manifest: dict[str, object] | bytes, folder: str = "package") -> Path:
    data = manifest if isinstance(manifest, bytes) else json.dumps(manifest).encode()
    with tarfile.open(path, "w:gz") as tar:
        for name, content in ((f"{folder}/package.json", data), (f"{folder}/index.js", b"1")):
            info = tarfile.TarInfo(name)
            info.size = len(content)
            tar.addfile(info, io.BytesIO(content))
    return path


@pytest.mark.parametrize(
    ("text", "scope", "basename"),
    [
        ("left-pad", None, "left-pad"),
        ("@acme/util", "acme", "util"),
        ("JSONStream", None, "JSONStream"),
    ],
)
def test_names(text: str, scope: str | None, basename: str) -> None:
    name = parse_name(text)
    assert (name.scope, name.basename) == (scope, basename)
    assert name.version_of(name.tarball("1.2.3-graft.1")) == "1.2.3-graft.1"
    assert name.version_of("other-1.0.0.tgz") is None


@pytest.mark.parametrize(
    "text",
    [
        "",
        ".hidden",
        "_under",
        "a b",
        "@acme",
        "@acme/",
        "@/x",
        "a/b",
        "@a/b/c",
        "%2e",
        "x" * 215,
        "node_modules",
    ],
)
def test_bad_names(text: str) -> None:
    with pytest.raises(InvalidInput):
        parse_name(text)


def test_new_names_must_be_lowercase() -> None:
    with pytest.raises(InvalidInput, match="lowercase"):
        parse_name("JSONStream", new=True)
    assert parse_name("@acme/util").escaped == "@acme%2Futil"


def test_parse_integrity() -> None:
    data = b"tarball bytes"
    s512 = hashlib.sha512(data).hexdigest()
    s1 = hashlib.sha1(data).hexdigest()
    both = f"{sri('sha512', s512)} sha1-{base64.b64encode(bytes.fromhex(s1)).decode()}"
    assert parse_integrity(both) == {"sha512": s512, "sha1": s1}
    assert parse_integrity(None, s1.upper()) == {"sha1": s1}
    assert parse_integrity("sha512-notbase64!!", "xyz") == {}
    assert parse_integrity("md5-AAAA sha512-" + base64.b64encode(b"short").decode()) == {}


def test_read_tarball(tmp_path: Path) -> None:
    path = tgz(tmp_path / "a.tgz", {"name": "a", "version": "1.0.0"}, folder="weird-folder")
    info = read_tarball(path)
    assert info.manifest["name"] == "a" and info.file_count == 2
    assert info.sha512 == hashlib.sha512(path.read_bytes()).hexdigest()
    for bad, message in [
        (b"not json", "not JSON"),
        (json.dumps({"name": "a"}).encode(), "no 'version'"),
        (b"[1]", "not a JSON object"),
    ]:
        with pytest.raises(InvalidInput, match=message):
            read_tarball(tgz(tmp_path / "b.tgz", bad))
    (tmp_path / "c.tgz").write_bytes(b"\x1f\x8b garbage")
    with pytest.raises(InvalidInput, match="gzip"):
        read_tarball(tmp_path / "c.tgz")


def test_publish_document() -> None:
    name = parse_name("@acme/util")
    data = b"\x1f\x8bdata"
    doc = {
        "name": "@acme/util",
        "dist-tags": {"next": "1.0.0", "latest": "0.9.0"},
        "versions": {"1.0.0": {"dist": {"shasum": hashlib.sha1(data).hexdigest()}}},
        "_attachments": {
            "@acme/util-1.0.0.tgz": {"data": base64.b64encode(data).decode(), "length": len(data)},
            "@acme/util-1.0.0.sigstore": {"data": "{}"},
        },
    }
    sent = read_publish_document(doc, name)
    assert (sent.version, sent.tarball, sent.tags) == ("1.0.0", data, ("next",))
    assert sent.claimed == {"sha1": hashlib.sha1(data).hexdigest()}
    with pytest.raises(InvalidInput, match="not a JSON object"):
        read_publish_document([], name)
    with pytest.raises(InvalidInput, match="publishes only"):
        read_publish_document({**doc, "_attachments": {}}, name)
    with pytest.raises(InvalidInput, match="not '@acme/util'"):
        read_publish_document({**doc, "name": "@acme/other"}, name)


@pytest.mark.parametrize(
    ("accept", "abbreviated"),
    [
        ("application/vnd.npm.install-v1+json; q=1.0, application/json; q=0.8, */*", True),
        ("application/vnd.npm.install-v1+json", True),
        ("application/json", False),
        ("application/json, application/vnd.npm.install-v1+json; q=0.5", False),
        ("application/vnd.npm.install-v1+json; q=0", False),
        (None, False),
    ],
)
def test_accept(accept: str | None, abbreviated: bool) -> None:
    assert wants_abbreviated(accept) is abbreviated


@pytest.mark.parametrize("tag", ["latest", "next", "patched", "beta-2"])
def test_good_tags(tag: str) -> None:
    assert check_tag(tag) == tag


@pytest.mark.parametrize("tag", ["1.x", "1", "^2", "", "-x", "a/b", "x" * 129])
def test_bad_tags(tag: str) -> None:
    with pytest.raises(InvalidInput):
        check_tag(tag)


def _page(doc: object) -> Page:
    body = json.dumps(doc).encode()
    return Page("http://up.example.com/left-pad", 200, body, "application/json", None, None, 0.0)


def test_overlay_merges_patched_versions_and_rewrites_tarballs() -> None:
    name = parse_name("left-pad")
    upstream = packument.parse_upstream(
        _page(
            {
                "name": "left-pad",
                "_rev": "3-x",
                "dist-tags": {"latest": "1.0.0", "gone": "0.0.1"},
                "versions": {
                    "1.0.0": {
                        "version": "1.0.0",
                        "dist": {"tarball": "/t/left-pad-1.0.0.tgz", "shasum": "a" * 40},
                    },
                    "not-semver": {"dist": {"tarball": "x"}},
                    "2.0.0": {"version": "2.0.0"},  # no dist: left out
                },
            }
        ),
        name,
    )
    assert list(upstream.versions) == ["1.0.0"]
    assert upstream.versions["1.0.0"].upstream_url == "http://up.example.com/t/left-pad-1.0.0.tgz"
    assert upstream.dist_tags == {"latest": "1.0.0"}
    patched = CatalogFile(
        id=1,
        org_id=1,
        ecosystem="npm",
        package="left-pad",
        version="1.0.0-graft.1",
        upstream_version="1.0.0",
        kind="patched",
        filename="left-pad-1.0.0-graft.1.tgz",
        digest="sha256:" + "0" * 64,
        size=1,
        fixes=("CVE-2024-1",),
        attrs={
            "document": {
                "name": "left-pad",
                "version": "1.0.0-graft.1",
                "dist": {"integrity": "sha512-x"},
            }
        },
        created_at=dt.datetime(2025, 1, 1, tzinfo=dt.UTC),
    )
    view = packument.merge(name, upstream, [patched], {"patched": "1.0.0-graft.1", "bad": "9.9.9"})
    assert view.dist_tags == {"latest": "1.0.0", "patched": "1.0.0-graft.1"}
    full = json.loads(packument.render(view, "https://graft.example.com/npm", abbreviated=False))
    assert "_rev" not in full
    assert list(full["versions"]) == ["1.0.0-graft.1", "1.0.0"]  # semver order
    v = full["versions"]["1.0.0-graft.1"]
    assert (
        v["dist"]["tarball"]
        == "https://graft.example.com/npm/left-pad/-/left-pad-1.0.0-graft.1.tgz"
    )
    assert v["_graft"]["fixes"] == ["CVE-2024-1"]
    assert full["time"]["1.0.0-graft.1"] == "2025-01-01T00:00:00.000Z"


def test_upstream_packument_for_another_name_is_refused() -> None:
    from graft.upstream.pages import UpstreamUnavailable

    with pytest.raises(UpstreamUnavailable, match="is for"):
        packument.parse_upstream(_page({"name": "evil", "versions": {}}), parse_name("left-pad"))
    with pytest.raises(UpstreamUnavailable, match="not a packument"):
        packument.parse_upstream(_page([1, 2]), parse_name("left-pad"))


def test_service_caches_are_bounded_by_bytes() -> None:
    from graft.ecosystems.npm.service import NpmService

    service = NpmService(None, max_parsed_bytes=3000)  # type: ignore[arg-type]
    name = parse_name("left-pad")
    for i in range(5):
        doc = {"name": "left-pad", "versions": {}, "readme": "x" * 1000, "n": i}
        page = _page(doc)
        page = Page(
            f"http://up.example.com/p{i}", 200, page.body, "", None, None, 0.0, identity=str(i)
        )
        assert service._parse(page, name).meta == {}  # kept light: no documents
    assert len(service._parsed) == 2 and service._parsed_bytes <= 3000
