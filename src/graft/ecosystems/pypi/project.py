"""One project as a client sees it: upstream files plus the organization's own files."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

Source = Literal["upstream", "patched", "private"]


@dataclass(frozen=True, slots=True)
class DistFile:
    filename: str
    version: str  # from the file name, as published
    source: Source
    sha256: str | None  # hex
    url: str  # upstream URL; empty for files held by Graft
    requires_python: str | None = None
    yanked: bool | str = False
    size: int | None = None
    upload_time: str | None = None  # ISO 8601, e.g. 2024-01-02T03:04:05.000000Z
    # PEP 658: sha256 hex of the core metadata file, "" when present without a hash,
    # None when the index offers no metadata file.
    metadata_sha256: str | None = None


@dataclass(frozen=True, slots=True)
class Project:
    name: str  # normalized
    files: tuple[DistFile, ...]

    def file(self, filename: str) -> DistFile | None:
        for f in self.files:
            if f.filename == filename:
                return f
        return None
