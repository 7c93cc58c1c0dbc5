"""One APT repository as an organization sees it: `/<distro>/<codename>`.

Its `main` component lists, per architecture:
- for every upstream package X without a patched build: `rootio-X`, a generated transitional
  package that depends on exactly X (so `apt-get install rootio-X` always works);
- for every patched build of the organization: the build under its own name X (for users who
  pin Graft's origin) and as `rootio-X` (Provides/Replaces/Conflicts X).

The upstream set comes from the configured mirror: InRelease verified against the upstream's
keyring, Packages.xz checked against the signed Release (graft.ecosystems.apt.upstream), both
through the shared page cache (TTL, revalidation, stale-if-error). Rendered indexes and the
signed InRelease are cached per organization and rebuilt only when an input changes.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import hashlib
import logging
from collections import OrderedDict
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urljoin

from graft.catalog import CatalogFile
from graft.context import AppContext
from graft.ecosystems.apt import debs
from graft.ecosystems.apt.index import (
    ReleaseInfo,
    by_hash_path,
    compressed_variants,
    render_packages,
    render_release,
)
from graft.ecosystems.apt.signing import ArchiveKey
from graft.ecosystems.apt.upstream import (
    UpstreamUntrusted,
    decompress,
    load_keyring,
    parse_packages,
    parse_release,
    verify_inrelease,
)
from graft.errors import NotFound
from graft.upstream.config import UpstreamConfig
from graft.upstream.pages import Page, UpstreamUnavailable

log = logging.getLogger("graft.apt")

ARCHITECTURES = ("amd64", "arm64")
COMPONENT = "main"
CODENAMES = {
    "debian": ("bullseye", "bookworm", "trixie", "forky"),
    "ubuntu": ("focal", "jammy", "noble", "oracular", "plucky", "questing"),
}


@dataclass(frozen=True, slots=True)
class UpstreamPackage:
    name: str
    version: str
    architecture: str
    multi_arch: str | None


@dataclass(frozen=True, slots=True)
class PoolFile:
    """A file the repository lists: where it lives and how to produce its bytes."""

    filename: str  # pool/main/r/rootio-x/rootio-x_1.0-1_amd64.deb
    sha256: str
    size: int
    kind: str  # patched | fallback
    package: str  # the upstream name X
    version: str
    architecture: str
    digest: str | None = None  # blob digest for patched files
    stanza: dict[str, str] = field(default_factory=dict, compare=False)


@dataclass(frozen=True, slots=True)
class Rendered:
    files: dict[str, bytes]  # path under dists/<codename>/ → bytes (indexes, Release, InRelease…)
    pool: dict[str, PoolFile]  # pool path → file
    identity: str


def pool_path(name: str, version: str, arch: str) -> str:
    first = name[:4] if name.startswith("lib") else name[:1]
    file_version = version.split(":", 1)[-1]  # pool file names drop the epoch
    return f"pool/{COMPONENT}/{first}/{name}/{name}_{file_version}_{arch}.deb"


class AptRepository:
    """Shared by every organization for one distro (debian or ubuntu)."""

    def __init__(self, ctx: AppContext, distro: str) -> None:
        self.ctx = ctx
        self.distro = distro
        self.prefix = ctx.settings.os_package_prefix
        self._fallbacks: dict[str, tuple[str, dict[tuple[str, str], PoolFile]]] = {}
        self._upstream: dict[str, tuple[str, tuple[str, list[UpstreamPackage]]]] = {}
        self._rejected: dict[str, str] = {}  # base URL → identity of an InRelease that failed
        self._rendered: OrderedDict[tuple[int, str], Rendered] = OrderedDict()
        self._locks: dict[tuple[int, str], asyncio.Lock] = {}
        self._key: ArchiveKey | None = None

    @property
    def key(self) -> ArchiveKey:
        if self._key is None:
            self._key = ArchiveKey.load_or_create(self.ctx.settings.keys_dir)
        return self._key

    def check_codename(self, codename: str) -> None:
        if codename not in CODENAMES[self.distro]:
            raise NotFound(
                f"unknown {self.distro} codename {codename!r}; known: "
                f"{', '.join(CODENAMES[self.distro])}"
            )

    # -- upstream -------------------------------------------------------------------------
    async def upstream_packages(self, codename: str) -> tuple[str, list[UpstreamPackage]]:
        """(identity, packages) of the first upstream that has the codename."""
        failure: Exception | None = None
        for upstream in await self.ctx.upstreams.for_ecosystem(self.distro):
            try:
                return await self._from_upstream(upstream, codename)
            except (UpstreamUnavailable, NotFound) as exc:
                failure = failure or exc
        if isinstance(failure, UpstreamUnavailable):
            raise failure
        return "", []

    async def _from_upstream(
        self, upstream: UpstreamConfig, codename: str
    ) -> tuple[str, list[UpstreamPackage]]:
        base = urljoin(upstream.url, f"dists/{codename}/")
        inrelease = await self.ctx.pages.get(upstream, base + "InRelease", accept="*/*")
        if not inrelease.found:
            raise NotFound(f"{upstream.name} has no {codename}")
        cached = self._upstream.get(base)
        if cached is not None and inrelease.identity in (cached[0], self._rejected.get(base)):
            return cached[1]  # unchanged (or the same bad copy as before): nothing to verify
        try:
            result = await self._verified(upstream, base, inrelease)
        except UpstreamUntrusted:
            if cached is None:
                raise
            # A bad signature or hash upstream: keep serving the last verified state.
            self._rejected[base] = inrelease.identity
            log.error(
                "upstream %s %s failed verification; serving the last good state",
                upstream.name,
                codename,
            )
            return cached[1]
        self._upstream[base] = (inrelease.identity, result)
        return result

    async def _verified(
        self, upstream: UpstreamConfig, base: str, inrelease: Page
    ) -> tuple[str, list[UpstreamPackage]]:
        if not upstream.keyring:
            raise UpstreamUnavailable(f"upstream {upstream.name} has no keyring configured")
        keyring = load_keyring(await asyncio.to_thread(Path(upstream.keyring).read_bytes))
        release = parse_release(verify_inrelease(inrelease.body, keyring, source=upstream.name))
        packages: list[UpstreamPackage] = []
        identity = [inrelease.identity]
        for arch in ARCHITECTURES:
            path = next(
                (
                    p
                    for p in (
                        f"{COMPONENT}/binary-{arch}/Packages.xz",
                        f"{COMPONENT}/binary-{arch}/Packages.gz",
                        f"{COMPONENT}/binary-{arch}/Packages",
                    )
                    if p in release.sha256
                ),
                None,
            )
            if path is None:
                continue
            page = await self.ctx.pages.get(upstream, base + path, accept="*/*")
            if not page.found:
                raise UpstreamUnavailable(f"{upstream.name}: {path} listed but missing")
            data = release.check(path, page.body, source=upstream.name)
            identity.append(page.identity)
            for stanza in parse_packages(decompress(path, data)):
                packages.append(
                    UpstreamPackage(
                        stanza["Package"],
                        stanza["Version"],
                        stanza.get("Architecture", arch),
                        stanza.get("Multi-Arch"),
                    )
                )
        return "|".join(identity), packages

    # -- fallbacks ------------------------------------------------------------------------
    def fallbacks(
        self, codename: str, identity: str, packages: list[UpstreamPackage]
    ) -> dict[tuple[str, str], PoolFile]:
        """(name, arch) → the transitional package, built once per upstream state."""
        cached = self._fallbacks.get(codename)
        if cached is not None and cached[0] == identity:
            return cached[1]
        out: dict[tuple[str, str], PoolFile] = {}
        for pkg in packages:
            if pkg.name.startswith(self.prefix):
                continue
            blob = debs.transitional_deb(pkg.name, pkg.version, pkg.architecture, self.prefix)
            name = f"{self.prefix}{pkg.name}"
            path = pool_path(name, pkg.version, pkg.architecture)
            stanza = {
                "Package": name,
                "Version": pkg.version,
                "Architecture": pkg.architecture,
                "Depends": f"{pkg.name} (= {pkg.version})",
                "Section": "oldlibs",
                "Priority": "optional",
                "Description": f"transitional package for {pkg.name} (no patched build yet)",
                "Filename": path,
                "Size": str(len(blob)),
                "SHA256": hashlib.sha256(blob).hexdigest(),
            }
            out[(pkg.name, pkg.architecture)] = PoolFile(
                path,
                stanza["SHA256"],
                len(blob),
                "fallback",
                pkg.name,
                pkg.version,
                pkg.architecture,
                stanza=stanza,
            )
        self._fallbacks[codename] = (identity, out)
        return out

    # -- rendering ------------------------------------------------------------------------
    async def render(self, org_id: int, codename: str) -> Rendered:
        self.check_codename(codename)
        identity, packages = await self.upstream_packages(codename)
        patched = [
            f
            for f in await self.ctx.catalog.packages_files(org_id, self.distro)
            if f.attrs.get("codename") == codename
        ]
        ident = identity + "|" + ",".join(str(f.id) for f in patched)
        key = (org_id, codename)
        hit = self._rendered.get(key)
        if hit is not None and hit.identity == ident:
            return hit
        lock = self._locks.setdefault(key, asyncio.Lock())
        async with lock:  # one rebuild at a time per repository
            hit = self._rendered.get(key)
            if hit is not None and hit.identity == ident:
                return hit
            rendered = await asyncio.to_thread(
                self._build, codename, ident, packages, identity, patched
            )
            self._rendered[key] = rendered
            while len(self._rendered) > 256:
                self._rendered.popitem(last=False)
            return rendered

    def _build(
        self,
        codename: str,
        ident: str,
        packages: list[UpstreamPackage],
        identity: str,
        patched: list[CatalogFile],
    ) -> Rendered:
        fallbacks = self.fallbacks(codename, identity, packages)
        pool: dict[str, PoolFile] = {}
        patched_keys = set()
        for f in patched:
            arch = str(f.attrs["architecture"])
            patched_keys.add((f.package, arch))
            for variant in ("original", "rootio"):
                stanza = dict(f.attrs[f"{variant}_stanza"])
                pool_file = PoolFile(
                    stanza["Filename"],
                    stanza["SHA256"],
                    int(stanza["Size"]),
                    "patched",
                    f.package,
                    f.version,
                    arch,
                    digest=str(f.attrs[f"{variant}_digest"]),
                    stanza=stanza,
                )
                pool[pool_file.filename] = pool_file
        for (name, arch), fb in fallbacks.items():
            if (name, arch) not in patched_keys:
                pool[fb.filename] = fb
        files: dict[str, bytes] = {}
        for arch in (*ARCHITECTURES, "all"):
            stanzas = [
                p.stanza
                for p in pool.values()
                if p.architecture == arch or (p.architecture == "all" and arch != "all")
            ]
            files.update(
                compressed_variants(f"{COMPONENT}/binary-{arch}/Packages", render_packages(stanzas))
            )
        info = ReleaseInfo(
            origin="Graft",
            label="Graft",
            suite=codename,
            codename=codename,
            components=[COMPONENT],
            architectures=[*ARCHITECTURES, "all"],
            description=f"Graft patched packages for {self.distro} {codename}",
        )
        release = render_release(info, files, dt.datetime.now(dt.UTC))
        for path, data in list(files.items()):
            files[by_hash_path(path, data)] = data
        files["Release"] = release
        files["Release.gpg"] = self.key.detach_sign(release)
        files["InRelease"] = self.key.clearsign(release)
        return Rendered(files, pool, ident)
