"""One APT repository as an organization sees it: `/<distro>/<codename>`.

Its `main` component lists, per architecture:
- for every upstream package X without a patched build of its current version: `rootio-X`, a
  generated transitional package that depends on exactly X (so `apt-get install rootio-X`
  always works, and follows the upstream once it moves past a patched version);
- for every patched build of the organization: the build under its own name X (for users who
  pin Graft's origin) and as `rootio-X` (Provides/Replaces/Conflicts X).

The upstream set comes from the configured mirror: InRelease verified against the upstream's
keyring, Packages.xz checked against the signed Release (graft.ecosystems.apt.upstream), both
through the shared page cache (TTL, revalidation, stale-if-error).

Two levels, so that a publish costs a few chunks instead of the whole repository:
- `BaseIndex`, once per upstream state and shared by every organization: the fallback
  stanzas of every upstream package, sorted, rendered and compressed in chunks
  (graft.ecosystems.apt.index). Building it for 63,000 packages takes seconds; while a new
  upstream state is being built, organizations keep the repository they had.
- `Rendered`, per organization: the base chunks, with the few chunks that hold a package the
  organization patched rebuilt without its fallback, plus one chunk of the organization's
  patched stanzas; then Release and its signatures. A publish re-renders only this.

Every replica renders the same Release from the same inputs: its `Date` is not the time of
rendering but the newest input (the upstream Release's Date, the organization's latest
publish), and with Valid-Until the start of the current half-validity period. Replicas behind
a load balancer thus agree byte for byte on every index and on Release (only the signature
packets, which carry their own creation time, differ), so an apt client may fetch InRelease
from one and by-hash indexes from another, and never sees the repository go back in time.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import email.utils
import hashlib
import logging
import time
from collections import OrderedDict, defaultdict
from collections.abc import Hashable, Mapping
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urljoin

from graft.catalog import CatalogFile
from graft.context import AppContext
from graft.ecosystems.apt import debs
from graft.ecosystems.apt.index import (
    Chunk,
    IndexFile,
    ReleaseInfo,
    by_hash_path,
    make_chunk,
    make_chunks,
    packages_files,
    render_release,
    render_stanza,
)
from graft.ecosystems.apt.signing import ArchiveKeyring
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
INDEX_ARCHITECTURES = (*ARCHITECTURES, "all")
COMPONENT = "main"
# How long a request waits for a new upstream state to be indexed before it is answered from
# the previous one (63,000 packages take several seconds; apt's own timeouts are longer).
BASE_WAIT_SECONDS = 2.0
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
    source: str | None = None  # see `source_of`
    source_version: str | None = None


def source_of(stanza: Mapping[str, str]) -> tuple[str | None, str | None]:
    """(source name, source version) of a binary stanza, each None where it is the binary's own
    (Debian policy: no `Source` field means the source is named like the package; `Source:
    foo (1.2-3)` gives the source version where it differs, as in a binNMU)."""
    name, _, rest = stanza.get("Source", "").strip().partition(" ")
    version = rest.strip()[1:-1].strip() if rest.strip().startswith("(") else ""
    return (
        name if name and name != stanza.get("Package") else None,
        version if version and version != stanza.get("Version") else None,
    )


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
    digest: str | None = None  # blob digest of a patched file; fallbacks are rebuilt
    source: str | None = None  # the source package advisories name (None: `package`)
    source_version: str | None = None  # None: `version`


@dataclass(frozen=True, slots=True)
class BaseIndex:
    """The fallbacks of one upstream state, shared by every organization."""

    identity: str
    # index architecture → chunks, stanzas keyed (upstream name, version, architecture)
    chunks: dict[str, tuple[Chunk, ...]]
    pool: dict[str, PoolFile]  # pool path → fallback


@dataclass(frozen=True, slots=True)
class Rendered:
    files: dict[str, IndexFile]  # path under dists/<codename>/ → file (indexes, Release …)
    patched: dict[str, PoolFile]  # pool path → patched file
    # (name, version, arch) of upstream builds whose fallback a patched build replaced
    hidden: frozenset[tuple[str, str, str]]
    base: BaseIndex
    identity: str
    signed_at: float  # the Release Date (epoch seconds)

    def pool_file(self, path: str) -> PoolFile | None:
        found = self.patched.get(path)
        if found is not None:
            return found
        fallback = self.base.pool.get(path)
        key = (fallback.package, fallback.version, fallback.architecture) if fallback else None
        if fallback is None or key in self.hidden:
            return None
        return fallback


def _release_date(value: str) -> float:
    """Epoch seconds of a Release `Date` field (0 when absent or unreadable)."""
    try:
        return email.utils.parsedate_to_datetime(value.replace("UTC", "+0000")).timestamp()
    except (TypeError, ValueError, IndexError):
        return 0.0


def pool_path(name: str, version: str, arch: str) -> str:
    first = name[:4] if name.startswith("lib") else name[:1]
    file_version = version.split(":", 1)[-1]  # pool file names drop the epoch
    return f"pool/{COMPONENT}/{first}/{name}/{name}_{file_version}_{arch}.deb"


def _parse_index(path: str, data: bytes) -> list[dict[str, str]]:
    return parse_packages(decompress(path, data))


def _listed_in(arch: str, index_arch: str) -> bool:
    """Architecture-independent packages appear in every architecture's index too."""
    return arch == index_arch or (arch == "all" and index_arch != "all")


def build_base(identity: str, packages: list[UpstreamPackage], prefix: str) -> BaseIndex:
    """Every upstream package's `rootio-X` fallback (one per version the upstream lists),
    rendered and chunked (CPU-bound: runs in a worker thread)."""
    pool: dict[str, PoolFile] = {}
    items: dict[str, list[tuple[tuple[str, str, str], Hashable, bytes]]] = defaultdict(list)
    seen: set[tuple[str, str, str]] = set()
    for pkg in packages:
        key = (pkg.name, pkg.version, pkg.architecture)
        if pkg.name.startswith(prefix) or key in seen:
            continue
        seen.add(key)
        blob = debs.transitional_deb(pkg.name, pkg.version, pkg.architecture, prefix)
        name = f"{prefix}{pkg.name}"
        path = pool_path(name, pkg.version, pkg.architecture)
        sha256 = hashlib.sha256(blob).hexdigest()
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
            "SHA256": sha256,
        }
        text = (render_stanza(stanza) + "\n").encode()
        pool[path] = PoolFile(
            path,
            sha256,
            len(blob),
            "fallback",
            pkg.name,
            pkg.version,
            pkg.architecture,
            source=pkg.source,
            source_version=pkg.source_version,
        )
        for index_arch in INDEX_ARCHITECTURES:
            if _listed_in(pkg.architecture, index_arch):
                items[index_arch].append(((name, pkg.version, pkg.architecture), key, text))
    chunks = {}
    for index_arch in INDEX_ARCHITECTURES:
        ordered = sorted(items[index_arch], key=lambda item: item[0])
        chunks[index_arch] = make_chunks([(key, text) for _, key, text in ordered])
    return BaseIndex(identity, chunks, pool)


class AptRepository:
    """Shared by every organization for one distro (debian or ubuntu)."""

    def __init__(self, ctx: AppContext, distro: str) -> None:
        self.ctx = ctx
        self.distro = distro
        self.prefix = ctx.settings.os_package_prefix
        valid = ctx.settings.apt_release_valid_seconds
        self.valid_for = dt.timedelta(seconds=valid) if valid else None
        self._upstream: dict[str, tuple[str, tuple[str, list[UpstreamPackage]]]] = {}
        self._upstream_dates: dict[str, float] = {}  # upstream identity → its Release Date
        self._rejected: dict[str, str] = {}  # base URL → identity of an InRelease that failed
        self._bases: dict[str, BaseIndex] = {}  # codename → the latest built base
        self._building: dict[tuple[str, str], asyncio.Task[BaseIndex]] = {}
        self._rendered: OrderedDict[tuple[int, str], Rendered] = OrderedDict()
        self._locks: dict[tuple[int, str], asyncio.Lock] = {}
        self._keyring: ArchiveKeyring | None = None

    @property
    def keyring(self) -> ArchiveKeyring:
        if self._keyring is None:
            self._keyring = ArchiveKeyring(self.ctx.settings.keys_dir)
        return self._keyring

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
        upstream_date = _release_date(release.fields.get("Date", ""))
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
            stanzas = await asyncio.to_thread(_parse_index, path, data)
            for stanza in stanzas:
                packages.append(
                    UpstreamPackage(
                        stanza["Package"],
                        stanza["Version"],
                        stanza.get("Architecture", arch),
                        stanza.get("Multi-Arch"),
                        *source_of(stanza),
                    )
                )
        joined = "|".join(identity)
        self._upstream_dates[joined] = upstream_date
        return joined, packages

    # -- the shared base ------------------------------------------------------------------
    def _base_task(
        self, codename: str, identity: str, packages: list[UpstreamPackage]
    ) -> asyncio.Task[BaseIndex]:
        """One build per upstream state, however many requests want it."""
        key = (codename, identity)
        task = self._building.get(key)
        if task is None:

            async def build() -> BaseIndex:
                started = time.monotonic()
                try:
                    base = await asyncio.to_thread(build_base, identity, packages, self.prefix)
                finally:
                    del self._building[key]
                self._bases[codename] = base
                log.info(
                    "%s %s: fallbacks of %d upstream packages indexed in %.1f s",
                    self.distro,
                    codename,
                    len(base.pool),
                    time.monotonic() - started,
                )
                return base

            task = self._building[key] = asyncio.create_task(build(), name=f"apt base {key}")
        return task

    # -- rendering ------------------------------------------------------------------------
    async def render(self, org_id: int, codename: str) -> Rendered:
        self.check_codename(codename)
        identity, packages = await self.upstream_packages(codename)
        patched = [
            f
            for f in await self.ctx.catalog.packages_files(org_id, self.distro)
            if f.attrs.get("codename") == codename
        ]
        date = self._date(identity, patched)
        ident = "|".join(
            (identity, ",".join(str(f.id) for f in patched), self.keyring.identity(), str(date))
        )
        key = (org_id, codename)
        hit = self._rendered.get(key)
        if hit is not None and hit.identity == ident:
            return hit
        base = self._bases.get(codename)
        if base is None or base.identity != identity:
            task = self._base_task(codename, identity, packages)
            if hit is None:
                base = await asyncio.shield(task)
            else:
                try:  # small repositories index in well under this
                    base = await asyncio.wait_for(asyncio.shield(task), BASE_WAIT_SECONDS)
                except TimeoutError:
                    return hit  # a big new upstream state: keep serving the last one meanwhile
        lock = self._locks.setdefault(key, asyncio.Lock())
        async with lock:  # one render at a time per organization and repository
            hit = self._rendered.get(key)
            if hit is not None and hit.identity == ident:
                return hit
            rendered = await asyncio.to_thread(self._render, codename, ident, base, patched, date)
            self._rendered[key] = rendered
            self._rendered.move_to_end(key)
            while len(self._rendered) > 256:
                self._rendered.popitem(last=False)
            return rendered

    def _date(self, identity: str, patched: list[CatalogFile]) -> int:
        """The Release Date, the same on every replica for the same inputs; with
        Valid-Until it moves on (and the repository is re-signed) every half validity."""
        date = max(
            [self._upstream_dates.get(identity, 0.0), *(f.created_at.timestamp() for f in patched)]
        )
        if self.valid_for is not None:
            half = self.valid_for.total_seconds() / 2
            date = max(date, time.time() // half * half)
        return int(date)

    def _render(
        self,
        codename: str,
        ident: str,
        base: BaseIndex,
        patched: list[CatalogFile],
        date: int,
    ) -> Rendered:
        pool: dict[str, PoolFile] = {}
        hidden: set[tuple[str, str, str]] = set()
        own: dict[str, list[tuple[tuple[str, str, str], Hashable, bytes]]] = defaultdict(list)
        for f in patched:
            arch = str(f.attrs["architecture"])
            # A patched build replaces the fallback of the upstream version it patches; when
            # the upstream moves on, the newer fallback is listed again and apt follows it.
            hidden.add((f.package, str(f.upstream_version), arch))
            # the source name only: a patched build is matched by the upstream version it patches
            source, _ = source_of(f.attrs["original_stanza"])
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
                    source=source,
                )
                pool[pool_file.filename] = pool_file
                text = (render_stanza(stanza) + "\n").encode()
                order = (stanza["Package"], stanza["Version"], arch)
                for index_arch in INDEX_ARCHITECTURES:
                    if _listed_in(arch, index_arch):
                        own[index_arch].append((order, (f.package, f.version, arch), text))
        files: dict[str, IndexFile] = {}
        for index_arch in INDEX_ARCHITECTURES:
            chunks = [
                c.without(hidden) if hidden.intersection(c.keys) else c
                for c in base.chunks[index_arch]
            ]
            if own[index_arch]:
                ordered = sorted(own[index_arch], key=lambda item: item[0])
                chunks.append(make_chunk([(key, text) for _, key, text in ordered]))
            files.update(packages_files(f"{COMPONENT}/binary-{index_arch}/Packages", chunks))
        info = ReleaseInfo(
            origin="Graft",
            label="Graft",
            suite=codename,
            codename=codename,
            components=[COMPONENT],
            architectures=list(INDEX_ARCHITECTURES),
            description=f"Graft patched packages for {self.distro} {codename}",
            valid_for=self.valid_for,
        )
        release = render_release(info, files, dt.datetime.fromtimestamp(date, dt.UTC))
        for path, index_file in list(files.items()):
            files[by_hash_path(path, index_file.sha256)] = index_file
        files["Release"] = IndexFile.of([release])
        files["Release.gpg"] = IndexFile.of([self.keyring.detach_sign(release)])
        files["InRelease"] = IndexFile.of([self.keyring.clearsign(release)])
        return Rendered(files, pool, frozenset(hidden), base, ident, date)
