"""The Maven 2 repository layout: what a path under `/maven/` names.

    <group as dirs>/<artifactId>/<version>/<artifactId>-<version>[-<classifier>].<ext>
    <group as dirs>/<artifactId>/maven-metadata.xml        versions of one artifact
    <group as dirs>/maven-metadata.xml                     plugin prefixes of a group
    <group as dirs>/<artifactId>/<version>/maven-metadata.xml   a SNAPSHOT's builds
    any of these + .md5 | .sha1 | .sha256 | .sha512        its checksum
    an artifact + .asc                                     its detached PGP signature

Every segment is checked before anything else happens: no empty, `.` or `..` segment, no
backslash or control character, nothing percent-encoded that decodes to a separator, and only
the characters Maven allows in coordinates. A path that breaks a rule is a 400, never a lookup.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from graft.errors import GraftError

CHECKSUMS = ("md5", "sha1", "sha256", "sha512")  # hashlib names, also the file suffixes
METADATA = "maven-metadata.xml"
SIGNATURE = "asc"
MAX_PATH = 480  # fits the catalog's file name column with room to spare

# groupId/artifactId: what Maven's model validator allows; versions may also hold + and ~.
_SEGMENT = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.+~-]{0,199}")
_ID = re.compile(r"[A-Za-z0-9_.-]+")
_ENCODED_TRICK = re.compile(rb"%(2f|5c|00|25|2e)", re.I)
_TIMESTAMP = re.compile(r"\d{8}\.\d{6}-\d+")


class BadPath(GraftError):
    """A path that no repository holds: a trick, or a character Maven never sends (400)."""

    status_code = 400
    code = "bad_path"


class NotInLayout(BadPath):
    """Well-formed segments that do not name a file of the Maven layout (404 on GET)."""


@dataclass(frozen=True, slots=True)
class Artifact:
    """One file of one version: `group:artifact:version[:classifier]:extension`."""

    group_id: str
    artifact_id: str
    version: str  # the directory: 1.0, or 1.0-SNAPSHOT for every build of that snapshot
    filename: str
    classifier: str
    extension: str

    @property
    def package(self) -> str:
        return f"{self.group_id}:{self.artifact_id}"

    @property
    def directory(self) -> str:
        return "/".join((*self.group_id.split("."), self.artifact_id, self.version))

    @property
    def path(self) -> str:
        return f"{self.directory}/{self.filename}"

    @property
    def is_pom(self) -> bool:
        return self.extension == "pom" and not self.classifier

    @property
    def snapshot_build(self) -> tuple[str, int] | None:
        """(timestamp `yyyyMMdd.HHmmss`, build number) of a timestamped SNAPSHOT file."""
        if not self.version.endswith("-SNAPSHOT"):
            return None
        base = self.version.removesuffix("-SNAPSHOT")
        stamped = rf"{re.escape(self.artifact_id)}-{re.escape(base)}-(\d{{8}}\.\d{{6}})-(\d+)"
        m = re.match(stamped, self.filename)
        return (m.group(1), int(m.group(2))) if m else None

    @property
    def snapshot_value(self) -> str:
        """What maven-metadata.xml calls this file's version: `1.0-20240101.120000-3`, or
        `1.0-SNAPSHOT` for a file without a timestamp."""
        build = self.snapshot_build
        if build is None:
            return self.version
        return f"{self.version.removesuffix('-SNAPSHOT')}-{build[0]}-{build[1]}"


@dataclass(frozen=True, slots=True)
class RepoPath:
    """A parsed request path. Exactly one of `artifact` and `metadata_dir` is set."""

    path: str  # as requested, without the /maven/ prefix
    artifact: Artifact | None
    metadata_dir: tuple[str, ...] | None  # the directory holding maven-metadata.xml
    signature: bool  # .asc (of the artifact), possibly with a checksum after it
    checksum: str | None  # md5 | sha1 | sha256 | sha512

    @property
    def target(self) -> str:
        """The path of the file this one is about (itself, or what its checksum covers)."""
        return self.path.removesuffix(f".{self.checksum}") if self.checksum else self.path

    @property
    def content(self) -> str:
        """The artifact or metadata path, without .asc and checksum suffixes."""
        base = self.target
        return base.removesuffix(f".{SIGNATURE}") if self.signature else base


def check_raw_path(raw_path: bytes) -> None:
    """Refuse percent-encoded separators, dots and NULs before the path is decoded."""
    if _ENCODED_TRICK.search(raw_path):
        raise BadPath("percent-encoded '/', '\\', '.', '%' or NUL are not allowed in a path")


def parse_path(path: str) -> RepoPath:
    """Parse a path relative to the repository root; raises BadPath (400) or NotInLayout."""
    if len(path) > MAX_PATH:
        raise BadPath(f"path longer than {MAX_PATH} characters")
    if path.startswith("/") or "\\" in path or "\x00" in path:
        raise BadPath("absolute paths, backslashes and NUL are not allowed")
    segments = path.split("/")
    for segment in segments:
        if not segment:
            raise BadPath("empty path segment ('//' or a trailing '/')")
        if segment in (".", "..") or not _SEGMENT.fullmatch(segment):
            raise BadPath(f"invalid path segment {segment!r}")
    name = segments[-1]
    checksum = next((a for a in CHECKSUMS if name.endswith(f".{a}")), None)
    if checksum:
        name = name.removesuffix(f".{checksum}")
    signature = name.endswith(f".{SIGNATURE}")
    if signature:
        name = name.removesuffix(f".{SIGNATURE}")
    if name == METADATA:
        if signature or len(segments) < 2:
            raise NotInLayout(f"{path!r} is not a metadata path")
        return RepoPath(path, None, tuple(segments[:-1]), False, checksum)
    if len(segments) < 4:
        raise NotInLayout(
            f"{path!r} is not in the Maven layout "
            "<group>/<artifactId>/<version>/<artifactId>-<version>[-<classifier>].<ext>"
        )
    *group, artifact_id, version, _ = segments
    artifact = parse_filename(".".join(group), artifact_id, version, name)
    return RepoPath(path, artifact, None, signature, checksum)


def parse_filename(group_id: str, artifact_id: str, version: str, filename: str) -> Artifact:
    """Split `<artifactId>-<version>[-<classifier>].<ext>`; a SNAPSHOT directory also holds
    timestamped builds (`a-1.0-20240101.120000-1.jar`)."""
    for ident, what in ((group_id, "groupId"), (artifact_id, "artifactId")):
        if not _ID.fullmatch(ident):
            raise BadPath(f"invalid {what} {ident!r}")
    stems = [f"{artifact_id}-{version}"]
    if version.endswith("-SNAPSHOT"):
        base = version.removesuffix("-SNAPSHOT")
        m = re.match(
            rf"{re.escape(artifact_id)}-{re.escape(base)}-({_TIMESTAMP.pattern})", filename
        )
        if m:
            stems.insert(0, m.group(0))
    for stem in stems:
        if not filename.startswith(stem):
            continue
        rest = filename[len(stem) :]
        classifier = ""
        if rest.startswith("-"):
            classifier, dot, extension = rest[1:].partition(".")
            if not dot:
                continue
        elif rest.startswith("."):
            extension = rest[1:]
        else:
            continue
        if extension and classifier.strip(".") == classifier and not extension.endswith("."):
            return Artifact(group_id, artifact_id, version, filename, classifier, extension)
    raise NotInLayout(
        f"{filename!r} is not a file of {group_id}:{artifact_id}:{version} "
        f"(expected {artifact_id}-{version}[-<classifier>].<ext>)"
    )


def metadata_coordinates(directory: tuple[str, ...]) -> tuple[str, str]:
    """(groupId, artifactId) for artifact-level metadata at `directory`. For group-level
    metadata this reads the last group segment as an artifactId, which is harmless: such a
    package has no versions of its own."""
    return ".".join(directory[:-1]), directory[-1]
