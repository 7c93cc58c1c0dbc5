"""Publishing a patched `.apk`: version `<upstream version>007<N>` in the pkgrel (e.g.
`8.9.1-r1` → `8.9.1-r10071`), a valid apk version, stored re-signed with Graft's key under its
own name and as `rootio-<name>`."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from graft.accounts.models import Principal
from graft.catalog import CatalogFile
from graft.context import AppContext
from graft.ecosystems.apk import apks, versions
from graft.ecosystems.apk.repo import ARCHITECTURES, AlpineRepository, patch_marker
from graft.errors import Conflict, InvalidInput


@dataclass(frozen=True, slots=True)
class ApkOptions:
    release: str
    fixes: tuple[str, ...] = ()
    allow_missing_upstream: bool = False


async def publish_apk(
    ctx: AppContext, repo: AlpineRepository, principal: Principal, path: Path, options: ApkOptions
) -> CatalogFile:
    repo.check(options.release)
    blob = path.read_bytes()  # noqa: ASYNC240 - bounded by the upload limit
    pkg = apks.read_apk(blob)
    name, version, arch = pkg.first("pkgname"), pkg.first("pkgver"), pkg.first("arch")
    prefix = ctx.settings.os_package_prefix
    if not name or not version:
        raise InvalidInput(".PKGINFO has no pkgname or pkgver")
    if name.startswith(prefix):
        raise InvalidInput(f"publish the package under its own name; Graft creates {name} itself")
    if arch not in (*ARCHITECTURES, "noarch"):
        raise InvalidInput(f"architecture {arch!r} is not served; use {', '.join(ARCHITECTURES)}")
    if not versions.is_valid(version):
        raise InvalidInput(f"{version!r} is not a valid apk version (apk would ignore it)")
    if not versions.is_valid_apk2(version):
        # every served release (3.18-3.22) ships apk-tools 2.14
        raise InvalidInput(
            f"{version!r} is not a valid apk version for apk-tools 2.14, the apk of Alpine "
            "3.18 to 3.22 (no ~<commit hash>, numbers of at most 17 digits)"
        )
    marker = patch_marker(version)
    if marker is None:
        raise InvalidInput(
            f"{name} {version}: a patched build's pkgrel is the upstream pkgrel followed by 007 "
            "and the build number, e.g. 8.9.1-r1 → 8.9.1-r10071"
        )
    upstream_version = marker[0]
    if not options.allow_missing_upstream:
        arches = ARCHITECTURES if arch == "noarch" else (arch,)
        found = False
        for a in arches:
            _identity, entries = await repo.upstream_entries(options.release, a)
            found = found or any(
                e.get("P") == name and e.get("V") == upstream_version for e in entries
            )
        if not found:
            raise InvalidInput(
                f"{name} {upstream_version} is not in the upstream Alpine v{options.release} "
                "index; publish with --allow-missing-upstream if intended"
            )
    filename = f"v{options.release}/{arch}/{name}-{version}.apk"
    existing = await ctx.catalog.files(principal.org_id, "alpine", name)
    if any(f.filename == filename for f in existing):
        raise Conflict(f"{filename} already exists; published files cannot be replaced")
    original = apks.resign(pkg, repo.key)
    rootio = apks.rootio_copy(pkg, prefix, upstream_version, repo.key)
    original_digest = await ctx.blobs.put(original)
    rootio_digest = await ctx.blobs.put(rootio)
    return await ctx.catalog.add(
        org_id=principal.org_id,
        ecosystem="alpine",
        package=name,
        version=version,
        upstream_version=upstream_version,
        kind="patched",
        filename=filename,
        digest=original_digest,
        size=len(original),
        fixes=list(options.fixes),
        attrs={
            "release": options.release,
            "arch": arch,
            "original_digest": original_digest,
            "rootio_digest": rootio_digest,
            "original_entry": apks.index_entry(original),
            "rootio_entry": apks.index_entry(rootio),
        },
        created_by=principal.account_id,
    )
