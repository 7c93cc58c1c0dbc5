"""Reading one OSV record (the OSV schema) into what Graft stores.

A record that breaks the schema raises `Malformed` with a one-line reason; the importer reports
it and goes on. `affected` entries of ecosystems Graft does not serve are left out and named.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from typing import Any

from graft.vulns import severity
from graft.vulns.schemes import VersionScheme

RANGE_TYPES = ("ECOSYSTEM", "SEMVER")  # GIT ranges name commits, not versions
EVENT_KINDS = ("introduced", "fixed", "last_affected", "limit")


class Malformed(ValueError):
    pass


@dataclass(frozen=True, slots=True)
class Affected:
    ecosystem: str  # Graft's name: "pypi", "debian" …
    distribution: str  # the library's ("bookworm"), "" when the record names none
    package: str  # normalized as the library stores it
    ranges: list[dict[str, Any]]  # [{"type": "ECOSYSTEM", "events": [{"introduced": "0"}, …]}]
    versions: list[str]


@dataclass(slots=True)
class Record:
    osv_id: str
    modified: dt.datetime
    published: dt.datetime | None
    withdrawn: dt.datetime | None
    aliases: list[str]
    summary: str
    details: str
    severity: severity.Severity
    references: list[str]
    affected: list[Affected] = field(default_factory=list)
    unknown: list[str] = field(default_factory=list)  # OSV ecosystems left out


def timestamp(value: Any, what: str, *, required: bool = False) -> dt.datetime | None:
    if value is None and not required:
        return None
    if not isinstance(value, str):
        raise Malformed(f"{what} must be an RFC 3339 timestamp")
    try:
        parsed = dt.datetime.fromisoformat(value.strip())
    except ValueError:
        raise Malformed(f"{what} {value!r} is not an RFC 3339 timestamp") from None
    return parsed.replace(tzinfo=dt.UTC) if parsed.tzinfo is None else parsed.astimezone(dt.UTC)


def _strings(value: Any, what: str) -> list[str]:
    if value is None:
        return []
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise Malformed(f"{what} must be a list of strings")
    return list(value)


def parse_ranges(raw: Any, where: str) -> list[dict[str, Any]]:
    if raw is None:
        return []
    if not isinstance(raw, list):
        raise Malformed(f"{where}.ranges must be a list")
    out = []
    for i, rng in enumerate(raw):
        if not isinstance(rng, dict) or not isinstance(rng.get("type"), str):
            raise Malformed(f"{where}.ranges[{i}] needs a type")
        events = rng.get("events")
        if not isinstance(events, list) or not events:
            raise Malformed(f"{where}.ranges[{i}].events must be a non-empty list")
        clean = []
        for event in events:
            if not isinstance(event, dict) or len(event) != 1:
                raise Malformed(f"{where}.ranges[{i}]: an event has exactly one of {EVENT_KINDS}")
            ((kind, version),) = event.items()
            if kind not in EVENT_KINDS or not isinstance(version, str) or not version:
                raise Malformed(f"{where}.ranges[{i}]: bad event {event!r}")
            clean.append({kind: version})
        if rng["type"] in RANGE_TYPES:
            out.append({"type": rng["type"], "events": clean})
    return out


def parse(record: Any, schemes: dict[str, VersionScheme]) -> Record:
    """`schemes`: by OSV ecosystem name (`schemes.by_osv_name`)."""
    if not isinstance(record, dict):
        raise Malformed("a record is a JSON object")
    osv_id = record.get("id")
    if not isinstance(osv_id, str) or not osv_id.strip() or len(osv_id) > 128:
        raise Malformed("id must be a non-empty string")
    modified = timestamp(record.get("modified"), "modified", required=True)
    assert modified is not None
    refs = record.get("references") or []
    if not isinstance(refs, list):
        raise Malformed("references must be a list")
    out = Record(
        osv_id=osv_id,
        modified=modified,
        published=timestamp(record.get("published"), "published"),
        withdrawn=timestamp(record.get("withdrawn"), "withdrawn"),
        aliases=_strings(record.get("aliases"), "aliases"),
        summary=str(record.get("summary") or "")[:1024],
        details=str(record.get("details") or ""),
        severity=severity.of_record(record),
        references=[
            r["url"] for r in refs if isinstance(r, dict) and isinstance(r.get("url"), str)
        ],
    )
    affected = record.get("affected") or []
    if not isinstance(affected, list):
        raise Malformed("affected must be a list")
    for i, item in enumerate(affected):
        where = f"affected[{i}]"
        if not isinstance(item, dict):
            raise Malformed(f"{where} must be an object")
        package = item.get("package")
        if not isinstance(package, dict):
            if item.get("ranges") and all(r.get("type") == "GIT" for r in item["ranges"]):
                continue  # a repository-only entry (no package)
            raise Malformed(f"{where}.package is missing")
        eco_name, name = package.get("ecosystem"), package.get("name")
        if not isinstance(eco_name, str) or not isinstance(name, str) or not name:
            raise Malformed(f"{where}.package needs an ecosystem and a name")
        ranges = parse_ranges(item.get("ranges"), where)
        versions = _strings(item.get("versions"), f"{where}.versions")
        base, _, suffix = eco_name.partition(":")
        scheme = schemes.get(base)
        distribution = scheme.distribution(suffix) if scheme is not None and suffix else ""
        if scheme is None or distribution is None:
            out.unknown.append(eco_name)
            continue
        out.affected.append(
            Affected(scheme.ecosystem, distribution, scheme.normalize(name), ranges, versions)
        )
    return out
