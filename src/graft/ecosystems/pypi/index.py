"""Rendering simple-index pages: PEP 503 HTML and PEP 691 JSON (with PEP 658/700/714 fields),
and choosing between them from the Accept header."""

from __future__ import annotations

import json
from functools import lru_cache
from html import escape

from graft.ecosystems.pypi import versions
from graft.ecosystems.pypi.project import DistFile, Project

JSON_V1 = "application/vnd.pypi.simple.v1+json"
HTML_V1 = "application/vnd.pypi.simple.v1+html"
TEXT_HTML = "text/html"
API_VERSION = "1.1"
_ALIASES = {
    "application/vnd.pypi.simple.latest+json": JSON_V1,
    "application/vnd.pypi.simple.latest+html": HTML_V1,
}


@lru_cache(maxsize=256)  # clients send the same few Accept strings over and over
def negotiate(accept: str | None) -> str | None:
    """The media type to answer with, or None when nothing acceptable is offered (406).

    Follows PEP 691: q-values decide, the server's preference breaks ties (JSON first), and
    a missing Accept header means HTML."""
    if not accept or not accept.strip():
        return TEXT_HTML
    best: tuple[float, int, str] | None = None
    preference = {JSON_V1: 3, HTML_V1: 2, TEXT_HTML: 1}
    for part in accept.split(","):
        fields = [f.strip() for f in part.split(";")]
        media = fields[0].lower()
        q = 1.0
        for param in fields[1:]:
            name, _, value = param.partition("=")
            if name.strip().lower() == "q":
                try:
                    q = float(value)
                except ValueError:
                    q = 0.0
        if q <= 0:
            continue
        media = _ALIASES.get(media, media)
        if media in ("*/*", "application/*"):
            candidates = [TEXT_HTML] if media == "*/*" else [JSON_V1]
        elif media == "text/*":
            candidates = [TEXT_HTML]
        elif media in preference:
            candidates = [media]
        else:
            continue
        for cand in candidates:
            rank = (q, preference[cand], cand)
            if best is None or rank > best:
                best = rank
    return best[2] if best else None


def file_url(prefix: str, project: str, f: DistFile) -> str:
    url = f"{prefix}/files/{project}/{f.filename}"
    return f"{url}#sha256={f.sha256}" if f.sha256 else url


def _versions(project: Project) -> list[str]:
    return sorted({f.version for f in project.files}, key=versions.sort_key)


def render_project_json(project: Project, prefix: str) -> bytes:
    files = []
    for f in project.files:
        entry: dict[str, object] = {
            "filename": f.filename,
            "url": f"{prefix}/files/{project.name}/{f.filename}",
            "hashes": {"sha256": f.sha256} if f.sha256 else {},
        }
        if f.requires_python:
            entry["requires-python"] = f.requires_python
        if f.metadata_sha256 is not None:
            meta: object = {"sha256": f.metadata_sha256} if f.metadata_sha256 else True
            entry["core-metadata"] = meta
            entry["dist-info-metadata"] = meta  # PEP 714: older clients read this key
        entry["yanked"] = f.yanked
        if f.size is not None:
            entry["size"] = f.size
        if f.upload_time:
            entry["upload-time"] = f.upload_time
        files.append(entry)
    doc = {
        "meta": {"api-version": API_VERSION},
        "name": project.name,
        "versions": _versions(project),
        "files": files,
    }
    return json.dumps(doc, separators=(",", ":")).encode()


def render_project_html(project: Project, prefix: str) -> bytes:
    lines = [
        "<!DOCTYPE html>",
        "<html>",
        "<head>",
        f'<meta name="pypi:repository-version" content="{API_VERSION}">',
        f"<title>Links for {escape(project.name)}</title>",
        "</head>",
        "<body>",
        f"<h1>Links for {escape(project.name)}</h1>",
    ]
    for f in project.files:
        attrs = [f'href="{escape(file_url(prefix, project.name, f))}"']
        if f.requires_python:
            attrs.append(f'data-requires-python="{escape(f.requires_python)}"')
        if f.yanked is not False:
            reason = f.yanked if isinstance(f.yanked, str) else ""
            attrs.append(f'data-yanked="{escape(reason)}"')
        if f.metadata_sha256 is not None:
            value = f"sha256={f.metadata_sha256}" if f.metadata_sha256 else "true"
            attrs.append(f'data-core-metadata="{value}"')
            attrs.append(f'data-dist-info-metadata="{value}"')
        lines.append(f"<a {' '.join(attrs)}>{escape(f.filename)}</a><br>")
    lines += ["</body>", "</html>", ""]
    return "\n".join(lines).encode()


def render_list_json(names: list[str]) -> bytes:
    doc = {"meta": {"api-version": API_VERSION}, "projects": [{"name": n} for n in names]}
    return json.dumps(doc, separators=(",", ":")).encode()


def render_list_html(names: list[str], prefix: str) -> bytes:
    lines = [
        "<!DOCTYPE html>",
        "<html>",
        "<head>",
        f'<meta name="pypi:repository-version" content="{API_VERSION}">',
        "<title>Simple index</title>",
        "</head>",
        "<body>",
    ]
    lines += [f'<a href="{prefix}/simple/{escape(n)}/">{escape(n)}</a><br>' for n in names]
    lines += ["</body>", "</html>", ""]
    return "\n".join(lines).encode()
