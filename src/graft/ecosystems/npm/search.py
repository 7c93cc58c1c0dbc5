"""`npm search`: the organization's own packages first, then the first upstream's answer
(minus names the organization holds privately)."""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from typing import Any
from urllib.parse import urlencode

import httpx

from graft.accounts.models import Principal
from graft.catalog import CatalogFile
from graft.context import AppContext
from graft.ecosystems.npm import versions
from graft.ecosystems.npm.service import ECOSYSTEM

MAX_SIZE = 250
UPSTREAM_TIMEOUT = 10.0


def _int(value: str | None, default: int, low: int, high: int) -> int:
    try:
        return max(low, min(high, int(value))) if value is not None else default
    except ValueError:
        return default


def _local_object(name: str, files: list[CatalogFile]) -> dict[str, Any]:
    newest = max(files, key=lambda f: versions.sort_key(f.version))
    doc = newest.attrs.get("document") or {}
    scope = name[1:].split("/", 1)[0] if name.startswith("@") else "unscoped"
    return {
        "package": {
            "name": name,
            "scope": scope,
            "version": newest.version,
            "description": doc.get("description", ""),
            "keywords": doc.get("keywords") if isinstance(doc.get("keywords"), list) else [],
            "date": newest.created_at.astimezone(dt.UTC).isoformat().replace("+00:00", "Z"),
            "links": {},
            "publisher": {"username": "graft"},
            "maintainers": [],
        },
        "flags": {},
        "score": {"final": 1.0, "detail": {"quality": 1.0, "popularity": 1.0, "maintenance": 1.0}},
        "searchScore": 1.0,
    }


def _complete(obj: dict[str, Any], name: str) -> dict[str, Any]:
    """An upstream search result with the fields npm's output reads (it fails on a missing
    `maintainers` or `keywords` list), whatever the upstream left out."""
    pkg = dict(obj["package"])
    pkg.setdefault("scope", name[1:].split("/", 1)[0] if name.startswith("@") else "unscoped")
    pkg.setdefault("description", "")
    pkg.setdefault("links", {})
    for key in ("keywords", "maintainers"):
        if not isinstance(pkg.get(key), list):
            pkg[key] = []
    score = obj.get("score") or {"final": 0.0, "detail": {}}
    return {**obj, "package": pkg, "score": score, "searchScore": obj.get("searchScore", 0.0)}


def _matches(text: str, name: str, files: list[CatalogFile]) -> bool:
    if not text:
        return True
    doc = max(files, key=lambda f: f.id).attrs.get("document") or {}
    words = [name, str(doc.get("description", ""))]
    if isinstance(doc.get("keywords"), list):
        words += [str(k) for k in doc["keywords"]]
    haystack = " ".join(words).lower()
    return all(term in haystack for term in text.lower().split())


async def search(ctx: AppContext, principal: Principal, query: Mapping[str, str]) -> dict[str, Any]:
    text = query.get("text", "")
    size = _int(query.get("size"), 20, 1, MAX_SIZE)
    start = _int(query.get("from"), 0, 0, 10_000)
    by_name: dict[str, list[CatalogFile]] = {}
    for f in await ctx.catalog.packages_files(principal.org_id, ECOSYSTEM):
        by_name.setdefault(f.package, []).append(f)
    private = {n for n, fs in by_name.items() if any(f.kind == "private" for f in fs)}
    local = [_local_object(n, fs) for n, fs in sorted(by_name.items()) if _matches(text, n, fs)]
    objects = local[start : start + size]
    total = len(local)
    wanted = size - len(objects)
    upstreams = await ctx.upstreams.for_ecosystem(ECOSYSTEM)
    if upstreams and text:
        upstream = upstreams[0]
        params = {"text": text, "size": str(wanted or 1), "from": str(max(0, start - len(local)))}
        try:
            resp = await ctx.http.get(
                f"{upstream.url}-/v1/search?{urlencode(params)}",
                headers={"Accept": "application/json", **upstream.auth_headers()},
                timeout=UPSTREAM_TIMEOUT,
            )
            found = resp.json() if resp.status_code == 200 else {}
        except (httpx.HTTPError, ValueError):
            found = {}  # the organization's own results are still worth answering with
        extra = found.get("objects") if isinstance(found, dict) else None
        if isinstance(extra, list):
            seen = {o["package"]["name"] for o in local}
            for obj in extra:
                pkg = obj.get("package") if isinstance(obj, dict) else None
                name = pkg.get("name") if isinstance(pkg, dict) else None
                if not isinstance(name, str) or name in private or name in seen:
                    continue
                if wanted > 0:
                    objects.append(_complete(obj, name))
                    wanted -= 1
            upstream_total = found.get("total")
            total += upstream_total if isinstance(upstream_total, int) else len(extra)
    return {"objects": objects, "total": total, "time": dt.datetime.now(dt.UTC).isoformat()}
