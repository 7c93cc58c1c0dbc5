"""Packuments: reading an upstream one, building version documents for published tarballs, and
rendering the organization's view (full JSON, or the abbreviated `install-v1` form that npm,
pnpm and Yarn ask for when installing).

Every `dist.tarball` is rewritten to Graft's own `/npm/<name>/-/<file>` so that clients send
their token there (npm sends it only to URLs under the registry it was configured with) and
downloads go through the verified pull-through cache. `dist.integrity` and `dist.shasum` are
kept as the upstream gave them: they are what Graft checks the upstream file against.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal
from urllib.parse import urljoin

from graft.catalog import CatalogFile
from graft.ecosystems.npm import versions
from graft.ecosystems.npm.names import PackageName
from graft.ecosystems.npm.tarballs import TarballInfo, parse_integrity
from graft.upstream.pages import Page, UpstreamUnavailable

Source = Literal["upstream", "patched", "private"]
ABBREVIATED = "application/vnd.npm.install-v1+json"
FULL = "application/json"

# What an abbreviated ("corgi") version document keeps: the fields an installer needs.
_ABBREVIATED_FIELDS = (
    "name",
    "version",
    "deprecated",
    "dependencies",
    "optionalDependencies",
    "devDependencies",
    "bundleDependencies",
    "peerDependencies",
    "peerDependenciesMeta",
    "acceptDependencies",
    "bin",
    "directories",
    "dist",
    "engines",
    "os",
    "cpu",
    "libc",
    "funding",
    "license",
    "_hasShrinkwrap",
    "hasInstallScript",
)
_INSTALL_SCRIPTS = ("preinstall", "install", "postinstall")
# Top-level fields of a full packument that are the registry's bookkeeping, not the package's.
_DROPPED = frozenset({"_rev", "_attachments", "versions", "dist-tags", "time", "users"})


@dataclass(frozen=True, slots=True)
class VersionEntry:
    version: str
    doc: Mapping[str, Any]  # the version document (dist.tarball not yet rewritten)
    source: Source
    upstream_url: str | None = None  # where the upstream tarball is
    checks: Mapping[str, str] = field(default_factory=dict)  # algorithm -> hex, to verify
    file: CatalogFile | None = None  # the organization's tarball


@dataclass(frozen=True, slots=True)
class UpstreamPackument:
    name: str
    meta: Mapping[str, Any]
    versions: Mapping[str, VersionEntry]
    dist_tags: Mapping[str, str]
    time: Mapping[str, str]


_EMPTY: Mapping[str, Any] = {}


def parse_upstream(page: Page, name: PackageName, *, documents: bool = True) -> UpstreamPackument:
    """An upstream packument; raises UpstreamUnavailable when it is not one for `name`.
    Versions that are not valid semver or have no tarball are left out, as npm ignores them.

    `documents=False` keeps only what tarball downloads need (URLs and digests), not the
    version documents and top-level fields: that form is what stays cached, because a big
    packument parsed into Python objects costs many times its size in memory and makes every
    full garbage collection walk it."""
    try:
        doc = json.loads(page.body)
    except ValueError:
        raise UpstreamUnavailable(f"upstream packument {page.url} is not valid JSON") from None
    if not isinstance(doc, dict) or not isinstance(doc.get("versions", {}), dict):
        raise UpstreamUnavailable(f"upstream packument {page.url} is not a packument object")
    if doc.get("name", name.name) != name.name:
        raise UpstreamUnavailable(
            f"upstream packument {page.url} is for {doc.get('name')!r}, not {name.name!r}"
        )
    entries: dict[str, VersionEntry] = {}
    for version, vdoc in (doc.get("versions") or {}).items():
        if not isinstance(vdoc, dict) or versions.parse(version, True) is None:
            continue
        dist = vdoc.get("dist")
        if not isinstance(dist, dict) or not isinstance(dist.get("tarball"), str):
            continue
        entries[version] = VersionEntry(
            version=version,
            doc=vdoc if documents else _EMPTY,
            source="upstream",
            upstream_url=urljoin(page.url, dist["tarball"]),
            checks=parse_integrity(dist.get("integrity"), dist.get("shasum")),
        )
    tags = doc.get("dist-tags")
    time = doc.get("time")
    return UpstreamPackument(
        name=name.name,
        meta={k: v for k, v in doc.items() if k not in _DROPPED} if documents else _EMPTY,
        versions=entries,
        dist_tags={k: v for k, v in tags.items() if isinstance(v, str) and v in entries}
        if isinstance(tags, dict)
        else {},
        time={k: v for k, v in time.items() if isinstance(v, str)}
        if isinstance(time, dict)
        else {},
    )


def version_document(name: PackageName, info: TarballInfo) -> dict[str, Any]:
    """The version document of a published tarball, built from the package.json inside it
    (never from what the client claims, so the metadata cannot differ from the contents)."""
    manifest = info.manifest
    doc: dict[str, Any] = {k: v for k, v in manifest.items() if not k.startswith("_")}
    doc["name"], doc["version"] = name.name, manifest["version"]
    doc["_id"] = f"{name.name}@{manifest['version']}"
    bin_ = doc.get("bin")
    if isinstance(bin_, str):  # `"bin": "cli.js"` means a command named after the package
        doc["bin"] = {name.basename: bin_}
    if "bundledDependencies" in doc and "bundleDependencies" not in doc:
        doc["bundleDependencies"] = doc.pop("bundledDependencies")
    if _has_install_script(doc.get("scripts")):
        doc["hasInstallScript"] = True
    doc["dist"] = {
        "integrity": info.integrity,
        "shasum": info.sha1,
        "fileCount": info.file_count,
        "unpackedSize": info.unpacked_size,
    }
    return doc


def _has_install_script(scripts: object) -> bool:
    return isinstance(scripts, dict) and any(s in scripts for s in _INSTALL_SCRIPTS)


def local_entry(f: CatalogFile) -> VersionEntry:
    return VersionEntry(version=f.version, doc=f.attrs.get("document") or {}, source=f.kind, file=f)


@dataclass(frozen=True, slots=True)
class View:
    """What one organization sees for one package: inputs of the rendering."""

    name: PackageName
    meta: Mapping[str, Any]
    versions: Mapping[str, VersionEntry]
    dist_tags: Mapping[str, str]
    time: Mapping[str, str]


def merge(
    name: PackageName,
    upstream: UpstreamPackument | None,
    local: Iterable[CatalogFile],
    tags: Mapping[str, str],
) -> View:
    """Upstream versions plus the organization's (which win on a clash: they are refused at
    publish, so a clash means the upstream added the version later), tags overlaid."""
    entries: dict[str, VersionEntry] = dict(upstream.versions) if upstream else {}
    time: dict[str, str] = dict(upstream.time) if upstream else {}
    meta: dict[str, Any] = dict(upstream.meta) if upstream else {"_id": name.name}
    dist_tags: dict[str, str] = dict(upstream.dist_tags) if upstream else {}
    newest: CatalogFile | None = None
    for f in local:
        entries[f.version] = local_entry(f)
        time[f.version] = _iso(f.created_at)
        if newest is None or f.created_at > newest.created_at:
            newest = f
    if newest is not None:
        modified = _iso(newest.created_at)
        time["modified"] = max(time.get("modified", modified), modified)
        time.setdefault("created", modified)
        if upstream is None:  # a private package: describe it from its newest version
            doc = newest.attrs.get("document") or {}
            for key in ("description", "license", "keywords", "repository", "homepage"):
                if key in doc:
                    meta[key] = doc[key]
    for tag, version in tags.items():
        if version in entries:
            dist_tags[tag] = version
    meta["name"] = name.name
    return View(name, meta, entries, dist_tags, time)


def tarball_url(prefix: str, name: PackageName, version: str) -> str:
    return f"{prefix}/{name.name}/-/{name.tarball(version)}"


def _version_out(
    entry: VersionEntry, prefix: str, name: PackageName, *, abbreviated: bool
) -> dict[str, Any]:
    doc = entry.doc
    if abbreviated:
        out = {k: doc[k] for k in _ABBREVIATED_FIELDS if k in doc}
        scripts = doc.get("scripts")
        if "hasInstallScript" not in out and _has_install_script(scripts):
            out["hasInstallScript"] = True
    else:
        out = dict(doc)
    out["dist"] = {**(doc.get("dist") or {}), "tarball": tarball_url(prefix, name, entry.version)}
    if not abbreviated and entry.file is not None and entry.source == "patched":
        out["_graft"] = {
            "patched": True,
            "upstream_version": entry.file.upstream_version,
            "fixes": list(entry.file.fixes),
        }
    return out


def render(view: View, prefix: str, *, abbreviated: bool) -> bytes:
    name = view.name
    ordered = sorted(view.versions.values(), key=lambda e: versions.sort_key(e.version))
    out_versions = {
        e.version: _version_out(e, prefix, name, abbreviated=abbreviated) for e in ordered
    }
    if abbreviated:
        doc: dict[str, Any] = {
            "name": name.name,
            "modified": view.time.get("modified") or _iso(dt.datetime.now(dt.UTC)),
            "dist-tags": dict(view.dist_tags),
            "versions": out_versions,
        }
    else:
        doc = dict(view.meta)
        doc["dist-tags"] = dict(view.dist_tags)
        doc["versions"] = out_versions
        doc["time"] = dict(view.time)
    return json.dumps(doc, separators=(",", ":"), ensure_ascii=False).encode()


def render_version(view: View, version: str, prefix: str) -> bytes:
    entry = view.versions[version]
    body = _version_out(entry, prefix, view.name, abbreviated=False)
    return json.dumps(body, separators=(",", ":"), ensure_ascii=False).encode()


def _iso(when: dt.datetime) -> str:
    return (
        when.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%S.") + f"{when.microsecond // 1000:03d}Z"
    )
