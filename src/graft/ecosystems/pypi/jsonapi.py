"""`/pypi/pypi/<project>/json` and `/pypi/pypi/<project>/<version>/json` in the shape of the
PyPI JSON API (`info`, `urls`, `vulnerabilities`), so tools that read that shape (pip-audit's
PyPI service, dependency dashboards) work against Graft. `vulnerabilities` comes from Graft's
advisories; for a patched build, the advisories it declares fixed are left out.
"""

from __future__ import annotations

from typing import Any

from graft.ecosystems.pypi.project import DistFile, Project
from graft.ecosystems.pypi.versions import parse
from graft.errors import NotFound
from graft.vulns.models import AdvisoryMatch


def _same(a: str, b: str) -> bool:
    pa, pb = parse(a), parse(b)
    return a == b if pa is None or pb is None else pa == pb


def latest(project: Project) -> str:
    """The highest final release (a prerelease only when there is nothing else)."""
    parsed = [(p, f.version) for f in project.files if (p := parse(f.version)) is not None]
    if not parsed:
        raise NotFound(f"project {project.name!r} has no version")
    finals = [item for item in parsed if not item[0].is_prerelease] or parsed
    return max(finals)[1]


def _url(f: DistFile, base: str, project: str) -> dict[str, Any]:
    sdist = not f.filename.endswith(".whl")
    py = "source"
    if not sdist:
        parts = f.filename[:-4].split("-")
        py = parts[-3] if len(parts) >= 5 else "py3"
    return {
        "filename": f.filename,
        "url": f"{base}/files/{project}/{f.filename}",
        "digests": {"sha256": f.sha256} if f.sha256 else {},
        "packagetype": "sdist" if sdist else "bdist_wheel",
        "python_version": py,
        "requires_python": f.requires_python,
        "size": f.size,
        "upload_time_iso_8601": f.upload_time,
        "yanked": bool(f.yanked),
        "yanked_reason": f.yanked if isinstance(f.yanked, str) else None,
    }


def vulnerability(match: AdvisoryMatch) -> dict[str, Any]:
    adv = match.advisory
    return {
        "id": adv.id,
        "aliases": adv.aliases,
        "summary": adv.summary,
        "details": adv.summary,
        "fixed_in": adv.fixed_in + match.patched_versions,
        "link": adv.references[0] if adv.references else None,
        "source": "osv",
        "withdrawn": None,
    }


def render(
    project: Project, version: str, base: str, matches: list[AdvisoryMatch]
) -> dict[str, Any]:
    files = [f for f in project.files if _same(f.version, version)]
    if not files:
        raise NotFound(f"{project.name} has no version {version!r}")
    shown = files[0].version
    return {
        "info": {
            "name": project.name,
            "version": shown,
            "summary": None,
            "requires_python": next((f.requires_python for f in files if f.requires_python), None),
            "yanked": all(bool(f.yanked) for f in files),
            "package_url": f"{base}/simple/{project.name}/",
            "project_url": f"{base}/simple/{project.name}/",
            "release_url": f"{base}/pypi/{project.name}/{shown}/json",
        },
        "last_serial": 0,
        "urls": [_url(f, base, project.name) for f in files],
        "vulnerabilities": [vulnerability(m) for m in matches if not m.fixed_by_patch],
    }
