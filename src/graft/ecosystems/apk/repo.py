"""One Alpine repository as an organization sees it: `/alpine/<release>/<arch>/`.

Its signed APKINDEX lists, per architecture, `rootio-X` transitional packages (depending on
exactly upstream X) for every upstream package without a patched build of that version, and the
organization's patched builds under their own name and as `rootio-X` (provides `X=<upstream
version>`, replaces X). The upstream index is verified against the configured Alpine keys.
"""

from __future__ import annotations

import asyncio
import logging
import re
import time
from collections import OrderedDict
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urljoin

from cryptography.hazmat.primitives.asymmetric import rsa

from graft.catalog import CatalogFile
from graft.context import AppContext
from graft.ecosystems.apk import apks
from graft.ecosystems.apk.apkindex import (
    ApkUntrusted,
    build_signed_index,
    parse_apkindex,
    read_signed_index,
    render_apkindex,
)
from graft.ecosystems.apk.keys import ApkKey, load_public_keys
from graft.errors import NotFound
from graft.upstream.config import UpstreamConfig
from graft.upstream.pages import UpstreamUnavailable

log = logging.getLogger("graft.apk")

RELEASES = ("3.18", "3.19", "3.20", "3.21", "3.22")
ARCHITECTURES = ("x86_64", "aarch64")
_PATCHED_REL = re.compile(r"^(?P<base>.+)-r(?P<rel>\d+?)007(?P<n>\d+)$")


def patch_marker(version: str) -> tuple[str, int] | None:
    """`8.9.1-r10071` → (`8.9.1-r1`, 1): upstream pkgrel, then `007`, then the build number."""
    m = _PATCHED_REL.match(version)
    if m is None:
        return None
    return f"{m.group('base')}-r{m.group('rel')}", int(m.group("n"))


@dataclass(frozen=True, slots=True)
class PoolFile:
    filename: str  # <name>-<version>.apk
    kind: str  # patched | fallback
    package: str  # upstream name X
    version: str
    digest: str | None  # blob digest (patched); fallbacks are kept in memory
    blob: bytes | None
    entry: dict[str, str]
    source: str | None = None  # the origin package advisories name (None: `package`)


def origin_of(entry: dict[str, str]) -> str | None:
    """The APKINDEX origin (`o:`, the source package of subpackages such as `libcurl`),
    None where it is the package itself or unknown."""
    origin = entry.get("o", "")
    return origin if origin and origin != entry.get("P") else None


@dataclass(frozen=True, slots=True)
class Rendered:
    index: bytes  # APKINDEX.tar.gz
    pool: dict[str, PoolFile]
    identity: str
    built: float = field(default_factory=time.time)  # Last-Modified of the index


class AlpineRepository:
    def __init__(self, ctx: AppContext) -> None:
        self.ctx = ctx
        self.prefix = ctx.settings.os_package_prefix
        self._key: ApkKey | None = None
        self._upstream: dict[str, tuple[str, list[dict[str, str]]]] = {}
        self._fallbacks: dict[tuple[str, str], tuple[str, dict[str, PoolFile]]] = {}
        self._rendered: OrderedDict[tuple[int, str, str], Rendered] = OrderedDict()
        self._locks: dict[tuple[int, str, str], asyncio.Lock] = {}
        self._keys: dict[str, dict[str, rsa.RSAPublicKey]] = {}

    @property
    def key(self) -> ApkKey:
        if self._key is None:
            self._key = ApkKey.load_or_create(self.ctx.settings.keys_dir)
        return self._key

    @staticmethod
    def check(release: str, arch: str | None = None) -> None:
        if release not in RELEASES:
            raise NotFound(f"unknown Alpine release {release!r}; known: {', '.join(RELEASES)}")
        if arch is not None and arch not in ARCHITECTURES:
            raise NotFound(f"unknown architecture {arch!r}; known: {', '.join(ARCHITECTURES)}")

    def _trusted(self, upstream: UpstreamConfig) -> dict[str, rsa.RSAPublicKey]:
        if not upstream.keyring:
            raise UpstreamUnavailable(f"upstream {upstream.name} has no keyring (keys) configured")
        found = self._keys.get(upstream.keyring)
        if found is None:
            path = Path(upstream.keyring)
            files = sorted(path.glob("*.pub")) if path.is_dir() else [path]
            found = self._keys[upstream.keyring] = load_public_keys(files)
        return found

    async def upstream_entries(self, release: str, arch: str) -> tuple[str, list[dict[str, str]]]:
        failure: Exception | None = None
        for upstream in await self.ctx.upstreams.for_ecosystem("alpine"):
            url = urljoin(upstream.url, f"v{release}/main/{arch}/APKINDEX.tar.gz")
            try:
                page = await self.ctx.pages.get(upstream, url, accept="*/*")
            except UpstreamUnavailable as exc:
                failure = failure or exc
                continue
            if not page.found:
                continue
            cached = self._upstream.get(url)
            if cached is not None and cached[0] == page.identity:
                return cached
            try:
                keys = await asyncio.to_thread(self._trusted, upstream)
                text = read_signed_index(page.body, keys)
            except ApkUntrusted:
                if cached is None:
                    raise
                log.error(
                    "upstream %s %s/%s failed verification; serving the last good state",
                    upstream.name,
                    release,
                    arch,
                )
                return cached
            result = (page.identity, parse_apkindex(text))
            self._upstream[url] = result
            return result
        if failure is not None:
            raise failure
        return "", []

    def _fallbacks_for(
        self, release: str, arch: str, identity: str, entries: list[dict[str, str]]
    ) -> dict[str, PoolFile]:
        cached = self._fallbacks.get((release, arch))
        if cached is not None and cached[0] == identity:
            return cached[1]
        out: dict[str, PoolFile] = {}
        for e in entries:
            name, version = e.get("P", ""), e.get("V", "")
            if not name or not version or name.startswith(self.prefix):
                continue
            blob = apks.transitional_apk(name, version, e.get("A", arch), self.prefix, self.key)
            filename = f"{self.prefix}{name}-{version}.apk"
            out[name] = PoolFile(
                filename,
                "fallback",
                name,
                version,
                None,
                blob,
                apks.index_entry(blob),
                source=origin_of(e),
            )
        self._fallbacks[(release, arch)] = (identity, out)
        return out

    async def render(self, org_id: int, release: str, arch: str) -> Rendered:
        self.check(release, arch)
        identity, entries = await self.upstream_entries(release, arch)
        patched = [
            f
            for f in await self.ctx.catalog.packages_files(org_id, "alpine")
            if f.attrs.get("release") == release and f.attrs.get("arch") in (arch, "noarch")
        ]
        ident = identity + "|" + ",".join(str(f.id) for f in patched)
        key = (org_id, release, arch)
        hit = self._rendered.get(key)
        if hit is not None and hit.identity == ident:
            return hit
        async with self._locks.setdefault(key, asyncio.Lock()):
            hit = self._rendered.get(key)
            if hit is not None and hit.identity == ident:
                return hit
            rendered = await asyncio.to_thread(
                self._build, release, arch, identity, entries, patched, ident
            )
            self._rendered[key] = rendered
            while len(self._rendered) > 256:
                self._rendered.popitem(last=False)
            return rendered

    def _build(
        self,
        release: str,
        arch: str,
        identity: str,
        entries: list[dict[str, str]],
        patched: list[CatalogFile],
        ident: str,
    ) -> Rendered:
        pool: dict[str, PoolFile] = {}
        for f in patched:
            source = origin_of(dict(f.attrs["original_entry"]))
            for variant in ("original", "rootio"):
                entry = dict(f.attrs[f"{variant}_entry"])
                filename = f"{entry['P']}-{entry['V']}.apk"
                pool[filename] = PoolFile(
                    filename,
                    "patched",
                    f.package,
                    f.version,
                    str(f.attrs[f"{variant}_digest"]),
                    None,
                    entry,
                    source=source,
                )
        # A patched build replaces the fallback of the upstream version it patches; when the
        # upstream moves on, the newer fallback is listed again and `apk upgrade` follows it.
        replaced = {(f.package, f.upstream_version) for f in patched}
        for name, fb in self._fallbacks_for(release, arch, identity, entries).items():
            if (name, fb.version) not in replaced:
                pool[fb.filename] = fb
        text = render_apkindex([p.entry for p in sorted(pool.values(), key=lambda p: p.filename)])
        index = build_signed_index(text, f"Graft patched packages for Alpine v{release}", self.key)
        return Rendered(index, pool, ident)
