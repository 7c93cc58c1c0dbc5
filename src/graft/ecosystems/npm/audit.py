"""`npm audit` against Graft: the bulk advisory endpoint (npm 7+) and the older quick audit,
answered from Graft's advisories through `ctx.vulns`.

npm tests every installed version against an advisory's `vulnerable_versions` itself (semver,
prereleases included), so a patched build that declares the advisory fixed is cut out of that
range: `>=1.0.0 <1.1.1` with build `1.1.0-graft.1` becomes
`>=1.0.0 <1.1.1 <1.1.0-graft.1 || >=1.0.0 <1.1.1 >1.1.0-graft.1`.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable
from typing import Any

from graft.context import AppContext
from graft.ecosystems.npm import versions
from graft.vulns.models import AdvisoryMatch

ECOSYSTEM = "npm"
MAX_PACKAGES = 10_000
_NPM_SEVERITY = {
    "critical": "critical",
    "high": "high",
    "medium": "moderate",
    "low": "low",
    "none": "info",
    "unknown": "moderate",
}


def exclude(range_: str, cut: Iterable[str]) -> str:
    """`range_` without the versions in `cut` (each comparator set split around each one)."""
    sets = [s.strip() for s in range_.split("||")]
    for version in cut:
        out = []
        for comparators in sets:
            if versions.satisfies(version, comparators or "*", include_prerelease=True):
                base = "" if comparators in ("", "*") else comparators + " "
                out += [f"{base}<{version}", f"{base}>{version}"]
            else:
                out.append(comparators)
        sets = out
    return " || ".join(sets)


def _advisory(match: AdvisoryMatch, name: str) -> dict[str, Any]:
    adv = match.advisory
    vulnerable = exclude(match.vulnerable_range, match.patched_versions)
    body: dict[str, Any] = {
        "id": _numeric_id(adv.id),
        "url": adv.references[0] if adv.references else "",
        "title": adv.summary or adv.id,
        "severity": _NPM_SEVERITY.get(adv.severity_level, "moderate"),
        "vulnerable_versions": vulnerable,
        "cwe": [],
        "cvss": {"score": adv.severity_score or 0, "vectorString": adv.severity_vector},
        "module_name": name,
        "github_advisory_id": adv.id,
        "cves": [a for a in adv.aliases if a.startswith("CVE-")],
    }
    if match.patched_versions:
        body["patched_versions"] = " || ".join(match.patched_versions)
    return body


def _numeric_id(osv_id: str) -> int:
    """npm wants a number: a stable one from the advisory id (crc32)."""
    import zlib

    return zlib.crc32(osv_id.encode())


async def bulk(ctx: AppContext, org_id: int, body: dict[str, Any]) -> dict[str, Any]:
    """`{name: [versions]}` → `{name: [advisory, …]}` for the advisories affecting any of
    those versions."""
    items = [
        (name, [v for v in vers if isinstance(v, str)])
        for name, vers in list(body.items())[:MAX_PACKAGES]
        if isinstance(name, str) and isinstance(vers, list)
    ]

    async def one(name: str, vers: list[str]) -> tuple[str, list[dict[str, Any]]]:
        found = await ctx.vulns.advisories_for(org_id, ECOSYSTEM, name, vers)
        seen: dict[str, AdvisoryMatch] = {}
        for matches in found.values():
            for m in matches:
                if not m.fixed_by_patch:  # a version still affected
                    seen.setdefault(m.advisory.id, m)
        return name, [_advisory(m, name) for m in seen.values()]

    out: dict[str, Any] = {}
    for name, advisories in await asyncio.gather(*(one(n, v) for n, v in items)):
        if advisories:
            out[name] = advisories
    return out


def _flatten(deps: Any, into: dict[str, set[str]], depth: int = 0) -> None:
    if not isinstance(deps, dict) or depth > 64:
        return
    for name, info in deps.items():
        if isinstance(info, dict):
            if isinstance(info.get("version"), str):
                into.setdefault(name, set()).add(info["version"])
            _flatten(info.get("dependencies"), into, depth + 1)


async def quick(ctx: AppContext, org_id: int, body: dict[str, Any]) -> dict[str, Any]:
    """The older `audits/quick` report: advisories by id, with findings and counts."""
    installed: dict[str, set[str]] = {}
    _flatten(body.get("dependencies"), installed)
    counts = dict.fromkeys(("info", "low", "moderate", "high", "critical"), 0)
    advisories: dict[str, Any] = {}
    for name, vers in list(installed.items())[:MAX_PACKAGES]:
        found = await ctx.vulns.advisories_for(org_id, ECOSYSTEM, name, sorted(vers))
        for version, matches in found.items():
            for m in matches:
                if m.fixed_by_patch:
                    continue
                adv = _advisory(m, name)
                entry = advisories.setdefault(
                    str(adv["id"]), {**adv, "findings": [], "patched_versions": ""}
                )
                entry["findings"].append({"version": version, "paths": [name]})
                counts[adv["severity"]] += 1
    return {
        "actions": [],
        "advisories": advisories,
        "muted": [],
        "metadata": {
            "vulnerabilities": counts,
            "dependencies": len(installed),
            "devDependencies": 0,
            "optionalDependencies": 0,
            "totalDependencies": len(installed),
        },
    }
