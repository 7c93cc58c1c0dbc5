"""Severity of an OSV record: a CVSS v3/v4 vector → score and level (the `cvss` library), or
the database's own word (GitHub's `MODERATE`, Debian's urgency) when there is no vector."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from cvss import CVSS3, CVSS4
from cvss.exceptions import CVSSError

from graft.vulns.models import Level

_WORDS: dict[str, Level] = {
    "critical": "critical",
    "high": "high",
    "important": "high",
    "moderate": "medium",
    "medium": "medium",
    "low": "low",
    "negligible": "low",
    "unimportant": "low",
    "none": "none",
}


@dataclass(frozen=True, slots=True)
class Severity:
    level: Level
    score: float | None = None
    vector: str | None = None


UNKNOWN = Severity("unknown")


def from_score(score: float) -> Level:
    """CVSS v3/v4 qualitative rating."""
    if score >= 9.0:
        return "critical"
    if score >= 7.0:
        return "high"
    if score >= 4.0:
        return "medium"
    if score > 0.0:
        return "low"
    return "none"


def from_vector(vector: str) -> Severity | None:
    """A CVSS:3.x or CVSS:4.0 vector's base score and level; None if it is not one."""
    try:
        if vector.startswith("CVSS:4."):
            score = float(CVSS4(vector).base_score)
        elif vector.startswith("CVSS:3."):
            score = float(CVSS3(vector).base_score)
        else:
            return None
    except (CVSSError, ValueError, KeyError, IndexError):
        return None
    return Severity(from_score(score), score, vector)


def of_record(record: dict[str, Any]) -> Severity:
    """The record's severity: the highest-versioned CVSS vector, else a severity word."""
    best: Severity | None = None
    entries = list(record.get("severity") or [])
    for affected in record.get("affected") or []:
        if isinstance(affected, dict):
            entries += affected.get("severity") or []
    for item in sorted(
        (e for e in entries if isinstance(e, dict)), key=lambda e: str(e.get("type")), reverse=True
    ):
        score = item.get("score")
        if isinstance(score, str) and (found := from_vector(score.strip())) is not None:
            best = found
            break
    if best is not None:
        return best
    words = []
    db = record.get("database_specific")
    if isinstance(db, dict):
        words.append(db.get("severity"))
    for affected in record.get("affected") or []:
        if isinstance(affected, dict):
            for key in ("ecosystem_specific", "database_specific"):
                extra = affected.get(key)
                if isinstance(extra, dict):
                    words += [extra.get("severity"), extra.get("urgency")]
    for word in words:
        if isinstance(word, str) and word.strip().lower() in _WORDS:
            return Severity(_WORDS[word.strip().lower()])
    return UNKNOWN
