"""What a path under /maven/ names, and which paths are refused before any lookup."""

from __future__ import annotations

import pytest

from graft.ecosystems.maven import layout


def test_an_artifact_path() -> None:
    p = layout.parse_path(
        "org/apache/logging/log4j/log4j-core/2.15.2-graft.1/log4j-core-2.15.2-graft.1.jar"
    )
    assert p.artifact is not None and p.metadata_dir is None
    a = p.artifact
    assert (a.group_id, a.artifact_id, a.version) == (
        "org.apache.logging.log4j",
        "log4j-core",
        "2.15.2-graft.1",
    )
    assert (a.classifier, a.extension, a.package) == (
        "",
        "jar",
        "org.apache.logging.log4j:log4j-core",
    )
    assert a.path == p.path and not p.checksum and not p.signature


@pytest.mark.parametrize(
    ("name", "classifier", "extension"),
    [
        ("lib-1.0-sources.jar", "sources", "jar"),
        ("lib-1.0.tar.gz", "", "tar.gz"),
        ("lib-1.0-bin.tar.gz", "bin", "tar.gz"),
        ("lib-1.0.pom", "", "pom"),
        ("lib-1.0.module", "", "module"),
    ],
)
def test_classifiers_and_extensions(name: str, classifier: str, extension: str) -> None:
    a = layout.parse_path(f"g/lib/1.0/{name}").artifact
    assert a is not None and (a.classifier, a.extension) == (classifier, extension)


def test_checksums_and_signatures() -> None:
    p = layout.parse_path("g/lib/1.0/lib-1.0.jar.asc.sha256")
    assert p.signature and p.checksum == "sha256"
    assert p.target == "g/lib/1.0/lib-1.0.jar.asc" and p.content == "g/lib/1.0/lib-1.0.jar"
    m = layout.parse_path("org/sample/lib/maven-metadata.xml.sha1")
    assert m.metadata_dir == ("org", "sample", "lib") and m.checksum == "sha1"
    assert layout.metadata_coordinates(m.metadata_dir) == ("org.sample", "lib")


def test_snapshot_builds() -> None:
    a = layout.parse_path("g/lib/1.0-SNAPSHOT/lib-1.0-20240101.120000-3-tests.jar").artifact
    assert a is not None and (a.version, a.classifier) == ("1.0-SNAPSHOT", "tests")
    assert a.snapshot_build == ("20240101.120000", 3)
    assert a.snapshot_value == "1.0-20240101.120000-3"
    plain = layout.parse_path("g/lib/1.0-SNAPSHOT/lib-1.0-SNAPSHOT.pom").artifact
    assert plain is not None and plain.snapshot_build is None
    assert plain.snapshot_value == "1.0-SNAPSHOT"
    release = layout.parse_path("g/lib/1.0/lib-1.0.jar").artifact
    assert release is not None and release.snapshot_build is None
    assert layout.parse_path("g/lib/1.0-SNAPSHOT/maven-metadata.xml").metadata_dir == (
        "g",
        "lib",
        "1.0-SNAPSHOT",
    )


@pytest.mark.parametrize(
    "path",
    [
        "",
        "/etc/passwd",
        "g//lib/1.0/lib-1.0.jar",
        "g/lib/1.0/lib-1.0.jar/",
        "g/../lib/1.0/lib-1.0.jar",
        "g/./lib/1.0/lib-1.0.jar",
        "g/lib/1.0/..",
        "g\\..\\lib/1.0/lib-1.0.jar",
        "g/lib/1.0/lib-1.0.jar\x00",
        "g/lib/.git/config",
        "g/lib/1.0/lib 1.0.jar",
        "g/li:b/1.0/li:b-1.0.jar",
        "g/lib/1.0/-lib.jar",
        "a" * 500,
    ],
)
def test_tricks_are_bad_paths(path: str) -> None:
    with pytest.raises(layout.BadPath) as info:
        layout.parse_path(path)
    assert info.value.status_code == 400


@pytest.mark.parametrize(
    "path",
    [
        "g/lib/1.0/other-1.0.jar",
        "g/lib/1.0/lib-1.0",
        "g/lib/1.0/lib-1.0x.jar",
        "lib/1.0/lib-1.0.jar",
        "archetype-catalog.xml",
        "g/maven-metadata.xml.asc",
    ],
)
def test_outside_the_layout(path: str) -> None:
    with pytest.raises(layout.NotInLayout):
        layout.parse_path(path)


@pytest.mark.parametrize(
    "raw",
    [b"/maven/g/%2e%2e/x", b"/maven/g/a%2Fb", b"/maven/g/%5c", b"/maven/g/%00", b"/maven/%252e"],
)
def test_encoded_tricks(raw: bytes) -> None:
    with pytest.raises(layout.BadPath):
        layout.check_raw_path(raw)
    layout.check_raw_path(b"/maven/g/lib/1.0/lib-1.0%2Bbuild.jar")  # %2B (+) is fine
