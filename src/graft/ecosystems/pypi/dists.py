"""Distribution files: names, file-name parsing, and the metadata inside wheels and sdists."""

from __future__ import annotations

import functools
import io
import re
import tarfile
import zipfile
from dataclasses import dataclass
from email.parser import BytesParser
from pathlib import Path

from packaging.utils import (
    InvalidSdistFilename,
    InvalidWheelFilename,
    canonicalize_name,
    parse_sdist_filename,
    parse_wheel_filename,
)
from packaging.version import Version

from graft.errors import InvalidInput

MAX_METADATA_BYTES = 4 << 20


def normalize(name: str) -> str:
    """PEP 503 normalized project name."""
    return canonicalize_name(name)


@dataclass(frozen=True, slots=True)
class DistName:
    project: str  # normalized
    version: Version
    kind: str  # "wheel" | "sdist"


_SAFE_FILENAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._+!-]*$")


@functools.lru_cache(maxsize=16_384)  # every download parses its file name
def parse_filename(filename: str) -> DistName:
    """Project and version from a wheel or sdist file name; InvalidInput for anything else,
    including names with path separators or other tricks."""
    if not _SAFE_FILENAME.match(filename) or ".." in filename or len(filename) > 255:
        raise InvalidInput(f"invalid distribution file name {filename!r}")
    try:
        if filename.endswith(".whl"):
            name, version, _build, _tags = parse_wheel_filename(filename)
            return DistName(str(name), version, "wheel")
        if filename.endswith((".tar.gz", ".zip")):
            name, version = parse_sdist_filename(filename)
            return DistName(str(name), version, "sdist")
    except (InvalidWheelFilename, InvalidSdistFilename) as exc:
        raise InvalidInput(f"invalid distribution file name {filename!r}: {exc}") from None
    raise InvalidInput(
        f"{filename!r} is not a Python distribution: upload a wheel (.whl) or an sdist "
        "(.tar.gz or .zip)"
    )


@dataclass(frozen=True, slots=True)
class CoreMetadata:
    raw: bytes
    name: str
    version: str
    requires_python: str | None
    summary: str | None


def _parse_metadata(raw: bytes, where: str) -> CoreMetadata:
    msg = BytesParser().parsebytes(raw, headersonly=True)
    name, version = msg.get("Name"), msg.get("Version")
    if not name or not version:
        raise InvalidInput(f"{where} has no Name or Version field")
    return CoreMetadata(
        raw=raw,
        name=str(name).strip(),
        version=str(version).strip(),
        requires_python=str(msg["Requires-Python"]).strip() if msg.get("Requires-Python") else None,
        summary=str(msg["Summary"]).strip() if msg.get("Summary") else None,
    )


def read_metadata(path: Path, dist: DistName) -> CoreMetadata:
    """The core metadata (METADATA of a wheel, PKG-INFO of an sdist); InvalidInput if the
    archive is damaged or the file is missing."""
    try:
        if dist.kind == "wheel" or path.name.endswith(".zip"):
            with zipfile.ZipFile(path) as zf:
                suffix = ".dist-info/METADATA" if dist.kind == "wheel" else "/PKG-INFO"
                names = [n for n in zf.namelist() if n.endswith(suffix) and n.count("/") == 1]
                if len(names) != 1:
                    raise InvalidInput(f"{path.name} has no single {suffix.lstrip('/')} file")
                info = zf.getinfo(names[0])
                if info.file_size > MAX_METADATA_BYTES:
                    raise InvalidInput(f"{names[0]} is too large")
                return _parse_metadata(zf.read(info), names[0])
        with tarfile.open(path, mode="r:gz") as tf:
            for member in tf:
                parts = member.name.split("/")
                if len(parts) == 2 and parts[1] == "PKG-INFO" and member.isfile():
                    if member.size > MAX_METADATA_BYTES:
                        raise InvalidInput("PKG-INFO is too large")
                    fh = tf.extractfile(member)
                    assert fh is not None
                    return _parse_metadata(fh.read(), member.name)
        raise InvalidInput(f"{path.name} has no top-level PKG-INFO")
    except (zipfile.BadZipFile, tarfile.TarError, EOFError, OSError, io.UnsupportedOperation):
        raise InvalidInput(f"{path.name} is not a readable {dist.kind} archive") from None


def check_agrees(dist: DistName, meta: CoreMetadata, filename: str) -> None:
    if normalize(meta.name) != dist.project:
        raise InvalidInput(
            f"{filename}: metadata name {meta.name!r} does not match the file name "
            f"({dist.project!r})"
        )
    try:
        meta_version = Version(meta.version)
    except ValueError:
        raise InvalidInput(f"{filename}: metadata version {meta.version!r} is invalid") from None
    if meta_version != dist.version:
        raise InvalidInput(
            f"{filename}: metadata version {meta.version} does not match the file name "
            f"({dist.version})"
        )
