"""`maven-metadata.xml`: read upstream copies, merge them with the organization's versions,
render one deterministic document.

One model covers the three kinds of directory: an artifact (`versioning` with the versions),
a group of plugins (`plugins` with their prefixes) and a SNAPSHOT version (`snapshot` and
`snapshotVersions`). The merge is the union of versions (ordered the way Maven orders them),
with `latest` the highest version and `release` the highest that is not a SNAPSHOT, so a
patched build that sorts above its upstream version is what `RELEASE` and ranges resolve to.

The rendering depends on its inputs only (no clock): `maven-metadata.xml` and its `.sha1`
fetched a moment apart always agree.
"""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from collections.abc import Iterable
from dataclasses import dataclass, field
from xml.sax.saxutils import escape

from defusedxml import DefusedXmlException
from defusedxml.ElementTree import fromstring

from graft.ecosystems.maven import versions
from graft.errors import InvalidInput

MAX_BYTES = 16 << 20
_TIMESTAMP = re.compile(r"\d{14}")


@dataclass(frozen=True, slots=True)
class Plugin:
    prefix: str
    artifact_id: str
    name: str = ""


@dataclass(frozen=True, slots=True)
class SnapshotVersion:
    classifier: str
    extension: str
    value: str
    updated: str


@dataclass(frozen=True, slots=True)
class Snapshot:
    timestamp: str
    build_number: int
    local_copy: bool = False


@dataclass(frozen=True, slots=True)
class Metadata:
    group_id: str = ""
    artifact_id: str = ""
    version: str = ""  # SNAPSHOT directories only
    versions: tuple[str, ...] = ()
    last_updated: str = ""  # yyyyMMddHHmmss, UTC
    plugins: tuple[Plugin, ...] = ()
    snapshot: Snapshot | None = None
    snapshot_versions: tuple[SnapshotVersion, ...] = field(default=())

    @property
    def latest(self) -> str | None:
        return max(self.versions, key=versions.sort_key) if self.versions else None

    @property
    def release(self) -> str | None:
        released = [v for v in self.versions if not versions.is_snapshot(v)]
        return max(released, key=versions.sort_key) if released else None


def _local(tag: str) -> str:
    return tag.rsplit("}", 1)[-1]  # with or without the METADATA/1.1.0 namespace


def _child(el: ET.Element | None, name: str) -> ET.Element | None:
    if el is None:
        return None
    for c in el:
        if _local(c.tag) == name:
            return c
    return None


def _text(el: ET.Element | None, name: str) -> str:
    c = _child(el, name)
    return (c.text or "").strip() if c is not None else ""


def _children(el: ET.Element | None, name: str) -> list[ET.Element]:
    return [c for c in el if _local(c.tag) == name] if el is not None else []


def parse(data: bytes) -> Metadata:
    """Parse a maven-metadata.xml; raises InvalidInput when it is not one."""
    if len(data) > MAX_BYTES:
        raise InvalidInput("maven-metadata.xml is larger than allowed")
    try:
        root = fromstring(data, forbid_dtd=True)
    except (ET.ParseError, DefusedXmlException, ValueError) as exc:
        raise InvalidInput(f"maven-metadata.xml does not parse: {exc}") from None
    if _local(root.tag) != "metadata":
        raise InvalidInput(f"maven-metadata.xml has root <{_local(root.tag)}>, not <metadata>")
    versioning = _child(root, "versioning")
    found = [(v.text or "").strip() for v in _children(_child(versioning, "versions"), "version")]
    plugins = tuple(
        Plugin(_text(p, "prefix"), _text(p, "artifactId"), _text(p, "name"))
        for p in _children(_child(root, "plugins"), "plugin")
        if _text(p, "prefix") and _text(p, "artifactId")
    )
    snapshot = None
    snap = _child(versioning, "snapshot") if versioning is not None else None
    if snap is not None:
        number = _text(snap, "buildNumber")
        snapshot = Snapshot(
            _text(snap, "timestamp"),
            int(number) if number.isdigit() else 0,
            _text(snap, "localCopy") == "true",
        )
    snapshot_versions = tuple(
        SnapshotVersion(
            _text(s, "classifier"), _text(s, "extension"), _text(s, "value"), _text(s, "updated")
        )
        for s in _children(_child(versioning, "snapshotVersions"), "snapshotVersion")
    )
    last_updated = _text(versioning, "lastUpdated")
    return Metadata(
        group_id=_text(root, "groupId"),
        artifact_id=_text(root, "artifactId"),
        version=_text(root, "version"),
        versions=tuple(dict.fromkeys(v for v in found if v)),
        last_updated=last_updated if _TIMESTAMP.fullmatch(last_updated) else "",
        plugins=plugins,
        snapshot=snapshot,
        snapshot_versions=snapshot_versions,
    )


def merge(
    group_id: str,
    artifact_id: str,
    sources: Iterable[Metadata],
    extra_versions: Iterable[str] = (),
    extra_updated: str = "",
) -> Metadata:
    """One document from several upstream copies (in priority order) and the organization's
    own versions. Versions are deduplicated by text and sorted in Maven order; for plugins and
    snapshot builds the first source that names one wins."""
    sources = list(sources)
    all_versions: dict[str, None] = {}
    plugins: dict[str, Plugin] = {}
    snapshot_versions: dict[tuple[str, str], SnapshotVersion] = {}
    snapshot: Snapshot | None = None
    version = ""
    stamps = [extra_updated] if extra_updated else []
    for src in sources:
        all_versions.update(dict.fromkeys(src.versions))
        for p in src.plugins:
            plugins.setdefault(p.prefix, p)
        for s in src.snapshot_versions:
            snapshot_versions.setdefault((s.classifier, s.extension), s)
        snapshot = snapshot or src.snapshot
        version = version or src.version
        if src.last_updated:
            stamps.append(src.last_updated)
    all_versions.update(dict.fromkeys(extra_versions))
    ordered = tuple(sorted(all_versions, key=versions.sort_key))
    return Metadata(
        group_id=group_id,
        artifact_id=artifact_id,
        version=version,
        versions=ordered,
        last_updated=max(stamps) if stamps else "",
        plugins=tuple(sorted(plugins.values(), key=lambda p: p.prefix)),
        snapshot=snapshot,
        snapshot_versions=tuple(sorted(snapshot_versions.values(), key=_snapshot_order)),
    )


def _snapshot_order(s: SnapshotVersion) -> tuple[str, str]:
    return (s.extension, s.classifier)


def render(m: Metadata) -> bytes:
    """The document, in the element order Maven itself writes."""
    out = ['<?xml version="1.0" encoding="UTF-8"?>', '<metadata modelVersion="1.1.0">']

    def line(depth: int, tag: str, value: str) -> None:
        out.append(f"{'  ' * depth}<{tag}>{escape(value)}</{tag}>")

    if m.group_id:
        line(1, "groupId", m.group_id)
    if m.artifact_id:
        line(1, "artifactId", m.artifact_id)
    if m.version:
        line(1, "version", m.version)
    if m.versions or m.snapshot or m.snapshot_versions or m.last_updated:
        out.append("  <versioning>")
        if m.latest:
            line(2, "latest", m.latest)
        if m.release:
            line(2, "release", m.release)
        if m.snapshot is not None:
            out.append("    <snapshot>")
            if m.snapshot.timestamp:
                line(3, "timestamp", m.snapshot.timestamp)
            if m.snapshot.build_number:
                line(3, "buildNumber", str(m.snapshot.build_number))
            if m.snapshot.local_copy:
                line(3, "localCopy", "true")
            out.append("    </snapshot>")
        if m.versions:
            out.append("    <versions>")
            for v in m.versions:
                line(3, "version", v)
            out.append("    </versions>")
        if m.last_updated:
            line(2, "lastUpdated", m.last_updated)
        if m.snapshot_versions:
            out.append("    <snapshotVersions>")
            for s in m.snapshot_versions:
                out.append("      <snapshotVersion>")
                if s.classifier:
                    line(4, "classifier", s.classifier)
                line(4, "extension", s.extension)
                line(4, "value", s.value)
                if s.updated:
                    line(4, "updated", s.updated)
                out.append("      </snapshotVersion>")
            out.append("    </snapshotVersions>")
        out.append("  </versioning>")
    if m.plugins:
        out.append("  <plugins>")
        for p in m.plugins:
            out.append("    <plugin>")
            if p.name:
                line(3, "name", p.name)
            line(3, "prefix", p.prefix)
            line(3, "artifactId", p.artifact_id)
            out.append("    </plugin>")
        out.append("  </plugins>")
    out.append("</metadata>")
    return ("\n".join(out) + "\n").encode()
