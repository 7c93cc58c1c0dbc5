"""Typed results of `graft.vulns`: what the API returns and the web pages render.

The service functions (`graft.vulns.service.VulnService`) return these; `graft.api.vulns`
only turns HTTP parameters into calls.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Literal

from pydantic import BaseModel, Field

Status = Literal["patched available", "patched in use", "no patch available", "not affected"]
STATUSES: tuple[Status, ...] = (
    "patched available",
    "patched in use",
    "no patch available",
    "not affected",
)
Level = Literal["none", "unknown", "low", "medium", "high", "critical"]
#: rank of each level, stored in library_entries.severity (the highest unfixed one)
LEVELS: tuple[Level, ...] = ("none", "unknown", "low", "medium", "high", "critical")
RequestStatus = Literal["open", "in progress", "published", "declined"]
REQUEST_STATUSES: tuple[RequestStatus, ...] = ("open", "in progress", "published", "declined")
Sort = Literal[
    "package", "-package", "last_seen", "-last_seen", "count", "-count", "severity", "-severity"
]


def level_rank(level: str) -> int:
    return LEVELS.index(level) if level in LEVELS else 1  # type: ignore[arg-type,unused-ignore]


class AdvisoryView(BaseModel):
    id: str
    aliases: list[str]
    summary: str
    severity_level: Level
    severity_score: float | None
    severity_vector: str | None
    published: dt.datetime | None
    modified: dt.datetime
    #: versions named as fixed in the advisory's ranges for this package
    fixed_in: list[str] = Field(default_factory=list)
    references: list[str] = Field(default_factory=list)
    #: True when the organization's patched build declares it fixed
    fixed_by_patch: bool = False


class LibraryEntryView(BaseModel):
    id: int
    ecosystem: str
    distribution: str
    package: str
    version: str
    #: OS packages: the source package (and version) advisories are matched by, when they
    #: differ from the package's own
    source: str | None = None
    source_version: str | None = None
    served: str  # upstream | patched | fallback | private
    first_seen: dt.datetime
    last_seen: dt.datetime
    count: int
    #: None until the background job has looked at the entry (seconds after first use)
    status: Status | None
    critical: int  # unfixed critical advisories
    high: int  # unfixed high advisories
    severity: Level  # the highest unfixed level
    advisories: int  # unfixed advisories
    patched_version: str | None  # the patched build for this version, if any
    install_command: str | None  # how to install that build with the ecosystem's client


class LibraryPage(BaseModel):
    items: list[LibraryEntryView]
    #: pass as `cursor` for the next page; None on the last page
    next_cursor: str | None
    total: int  # entries matching the filters


class EntryAccount(BaseModel):
    account: str
    count: int
    last_seen: dt.datetime


class PatchedBuildView(BaseModel):
    version: str
    upstream_version: str | None
    fixes: list[str]
    published_at: dt.datetime
    install_command: str | None


class LibraryEntryDetail(LibraryEntryView):
    accounts: list[EntryAccount]
    #: advisories affecting the upstream build of this version
    advisories_before: list[AdvisoryView]
    #: those still open with the patched build (None when there is no patched build)
    advisories_after: list[AdvisoryView] | None
    patched_build: PatchedBuildView | None


@dataclass(frozen=True, slots=True)
class LibraryQuery:
    ecosystem: str | None = None
    status: Status | None = None
    #: entries whose highest unfixed advisory is at least this level
    severity: Level | None = None
    #: substring of the package name (case-insensitive)
    text: str | None = None
    sort: Sort = "-last_seen"
    cursor: str | None = None
    limit: int = 50


class ImportSummary(BaseModel):
    source: str
    records: int  # records read
    imported: int  # new or changed (by `modified`)
    unchanged: int  # already held with the same or a newer `modified`
    skipped: int  # only ecosystems Graft does not serve
    withdrawn: int  # among the imported
    malformed: list[str]  # "<file>: <problem>", skipped
    unknown_ecosystems: dict[str, int]  # OSV ecosystem → affected entries skipped
    entries_to_refresh: int  # library entries whose status is computed again


class RequestView(BaseModel):
    id: int
    ecosystem: str
    package: str
    version: str
    reason: str
    status: RequestStatus
    created_by: str | None
    created_at: dt.datetime
    updated_at: dt.datetime
    published_version: str | None


class RemediationItem(BaseModel):
    name: str
    version: str
    #: "patched": use `patched_version`; "not affected": nothing known; "no patch": affected,
    #: no patched build yet; "unknown": not a version of this ecosystem
    result: Literal["patched", "not affected", "no patch", "unknown"]
    patched_version: str | None = None
    fixes: list[str] = Field(default_factory=list)
    #: advisories affecting the version, and those the patched build does not fix
    advisories: list[str] = Field(default_factory=list)
    unfixed: list[str] = Field(default_factory=list)
    install_command: str | None = None
    reason: str = ""


class RemediationResult(BaseModel):
    ecosystem: str
    packages: list[RemediationItem]


class AdvisoryMatch(BaseModel):
    """One advisory affecting one version (the interface ecosystems' audit routes use)."""

    advisory: AdvisoryView
    #: a range of affected versions in OSV event form, for clients that print one
    vulnerable_range: str
    #: the version asked about is a patched build that declares this advisory fixed
    fixed_by_patch: bool
    #: every patched build of the organization that declares it fixed
    patched_versions: list[str] = Field(default_factory=list)
