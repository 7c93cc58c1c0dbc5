"""maven-metadata.xml: reading upstream copies, merging, deterministic rendering; POMs."""

from __future__ import annotations

import pytest

from graft.ecosystems.maven import checksums, metadata, pom
from graft.errors import InvalidInput

UPSTREAM = b"""<?xml version="1.0" encoding="UTF-8"?>
<metadata xmlns="http://maven.apache.org/METADATA/1.1.0" modelVersion="1.1.0">
  <groupId>org.sample</groupId>
  <artifactId>lib</artifactId>
  <versioning>
    <latest>1.10</latest>
    <release>1.9</release>
    <versions><version>1.9</version><version>1.10</version><version>2.0-SNAPSHOT</version>
      <version>1.2</version></versions>
    <lastUpdated>20240102030405</lastUpdated>
  </versioning>
</metadata>"""


def test_parse_and_merge_orders_the_maven_way() -> None:
    m = metadata.parse(UPSTREAM)
    assert m.versions == ("1.9", "1.10", "2.0-SNAPSHOT", "1.2")
    other = metadata.parse(
        b"<metadata><versioning><versions><version>1.2</version><version>0.5</version>"
        b"</versions><lastUpdated>20250101000000</lastUpdated></versioning></metadata>"
    )
    merged = metadata.merge("org.sample", "lib", [m, other], ["1.10-graft.1"], "20230101000000")
    assert merged.versions == ("0.5", "1.2", "1.9", "1.10", "1.10-graft.1", "2.0-SNAPSHOT")
    assert merged.latest == "2.0-SNAPSHOT" and merged.release == "1.10-graft.1"
    assert merged.last_updated == "20250101000000"
    body = metadata.render(merged)
    assert body == metadata.render(merged)  # deterministic: the .sha1 always matches
    again = metadata.parse(body)
    assert again.versions == merged.versions and again.group_id == "org.sample"
    assert b"<latest>2.0-SNAPSHOT</latest>" in body and b"<release>1.10-graft.1</release>" in body


def test_group_and_snapshot_metadata_survive_a_round_trip() -> None:
    group = metadata.parse(
        b"<metadata><plugins><plugin><name>Deploy</name><prefix>deploy</prefix>"
        b"<artifactId>maven-deploy-plugin</artifactId></plugin><plugin><prefix>clean</prefix>"
        b"<artifactId>maven-clean-plugin</artifactId></plugin></plugins></metadata>"
    )
    merged = metadata.merge("", "", [group])
    assert [p.prefix for p in metadata.parse(metadata.render(merged)).plugins] == [
        "clean",
        "deploy",
    ]
    snap = metadata.parse(
        b"<metadata><groupId>g</groupId><artifactId>a</artifactId><version>1.0-SNAPSHOT</version>"
        b"<versioning><snapshot><timestamp>20240101.120000</timestamp><buildNumber>3</buildNumber>"
        b"</snapshot><lastUpdated>20240101120000</lastUpdated><snapshotVersions><snapshotVersion>"
        b"<extension>jar</extension><value>1.0-20240101.120000-3</value>"
        b"<updated>20240101120000</updated></snapshotVersion></snapshotVersions></versioning>"
        b"</metadata>"
    )
    out = metadata.parse(metadata.render(metadata.merge("g", "a", [snap])))
    assert out.version == "1.0-SNAPSHOT" and out.snapshot == snap.snapshot
    assert out.snapshot_versions == snap.snapshot_versions


@pytest.mark.parametrize(
    "body",
    [
        b"<metadata>",
        b"<html>gateway timeout</html>",
        b'<!DOCTYPE m [<!ENTITY x "y">]><metadata>&x;</metadata>',
        b"x" * (metadata.MAX_BYTES + 1),
    ],
)
def test_bad_metadata_is_refused(body: bytes) -> None:
    with pytest.raises(InvalidInput):
        metadata.parse(body)


def test_checksum_files() -> None:
    sha1 = "a" * 40
    assert checksums.parse(sha1.upper().encode(), "sha1") == sha1
    assert checksums.parse(f"{sha1}  lib-1.0.jar\n".encode(), "sha1") == sha1
    assert checksums.parse(f"MD5 (lib-1.0.jar) = {'b' * 32}".encode(), "md5") == "b" * 32
    assert checksums.parse(b"<html>not found</html>", "sha1") is None
    assert checksums.parse(("c" * 64).encode(), "sha1") is None  # a sha256 is not a sha1
    assert checksums.digests(b"")["md5"] == "d41d8cd98f00b204e9800998ecf8427e"


POM = b"""<project xmlns="http://maven.apache.org/POM/4.0.0">
  <parent><groupId>org.sample</groupId><artifactId>parent</artifactId><version>7</version></parent>
  <artifactId>lib</artifactId>
  <version>${base}-graft.1</version>
  <packaging>bundle</packaging>
  <properties>
    <base>2.15.2</base>
    <graft.fixes>CVE-2021-44228, ${extra}</graft.fixes>
    <extra>CVE-2021-45046</extra>
    <unrelated>${env.HOME}</unrelated>
  </properties>
</project>"""


def test_pom_coordinates_inherit_and_resolve() -> None:
    p = pom.parse(POM)
    assert (p.group_id, p.artifact_id, p.version, p.packaging) == (
        "org.sample",
        "lib",
        "2.15.2-graft.1",
        "bundle",
    )
    assert p.fixes == ["CVE-2021-44228", "CVE-2021-45046"]


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (b"<project><artifactId>x</artifactId>", "does not parse"),
        (b"<settings/>", "not <project>"),
        (b"<project><groupId>g</groupId><version>1</version></project>", "no artifactId"),
        (
            b"<project><groupId>g</groupId><artifactId>a</artifactId>"
            b"<version>${revision}</version></project>",
            "flatten",
        ),
        (b'<?xml version="1.0"?><!DOCTYPE p SYSTEM "file:///etc/passwd"><project/>', "parse"),
    ],
)
def test_bad_poms(body: bytes, message: str) -> None:
    with pytest.raises(InvalidInput, match=message):
        pom.parse(body)
