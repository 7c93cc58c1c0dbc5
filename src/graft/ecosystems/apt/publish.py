"""Publishing a patched `.deb`: `<upstream version>.<label>.<N>`, stored as the original name and
as `rootio-<name>`, recorded with the advisories it fixes."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path

from graft.accounts.models import Principal
from graft.catalog import CatalogFile
from graft.context import AppContext
from graft.ecosystems.apt import debs, versions
from graft.ecosystems.apt.repo import ARCHITECTURES, AptRepository, pool_path
from graft.errors import Conflict, InvalidInput


@dataclass(frozen=True, slots=True)
class DebOptions:
    codename: str
    fixes: tuple[str, ...] = ()
    allow_missing_upstream: bool = False


def _stanza(control: dict[str, str], blob: bytes) -> dict[str, str]:
    stanza = dict(control)
    stanza["Filename"] = pool_path(control["Package"], control["Version"], control["Architecture"])
    stanza["Size"] = str(len(blob))
    stanza["SHA256"] = hashlib.sha256(blob).hexdigest()
    stanza["MD5sum"] = hashlib.md5(blob).hexdigest()
    return stanza


async def publish_deb(
    ctx: AppContext, repo: AptRepository, principal: Principal, path: Path, options: DebOptions
) -> CatalogFile:
    repo.check_codename(options.codename)
    blob = path.read_bytes()  # noqa: ASYNC240 - bounded by the upload limit
    deb = debs.read_deb(blob)
    name, version, arch = deb.name, deb.version, deb.architecture
    prefix = ctx.settings.os_package_prefix
    if name.startswith(prefix):
        raise InvalidInput(
            f"publish the package under its own name ({name.removeprefix(prefix)}); "
            f"Graft creates {name} itself"
        )
    if arch not in (*ARCHITECTURES, "all"):
        raise InvalidInput(
            f"architecture {arch!r} is not served; use {', '.join(ARCHITECTURES)} or all"
        )
    label = ctx.settings.patch_label
    marker = versions.patch_marker(version, label)
    if marker is None:
        raise InvalidInput(
            f"{name} {version}: a patched build's version must be <upstream version>.{label}.<N>, "
            f"e.g. {version}.{label}.1"
        )
    upstream_version = marker[0]
    if not options.allow_missing_upstream:
        _identity, packages = await repo.upstream_packages(options.codename)
        if not any(p.name == name and p.version == upstream_version for p in packages):
            raise InvalidInput(
                f"{name} {upstream_version} is not in the upstream {repo.distro} "
                f"{options.codename} repository; publish with --allow-missing-upstream if intended"
            )
    filename = f"{options.codename}/{name}_{version}_{arch}.deb"
    existing = await ctx.catalog.files(principal.org_id, repo.distro, name)
    if any(f.filename == filename for f in existing):
        raise Conflict(f"{filename} already exists; published files cannot be replaced")

    rootio_blob = debs.with_control(deb, debs.rootio_fields(deb.control, prefix, upstream_version))
    original_digest = await ctx.blobs.put(blob)
    rootio_digest = await ctx.blobs.put(rootio_blob)
    rootio_control = debs.read_deb(rootio_blob).control
    return await ctx.catalog.add(
        org_id=principal.org_id,
        ecosystem=repo.distro,
        package=name,
        version=version,
        upstream_version=upstream_version,
        kind="patched",
        filename=filename,
        digest=original_digest,
        size=len(blob),
        fixes=list(options.fixes),
        attrs={
            "codename": options.codename,
            "architecture": arch,
            "original_digest": original_digest,
            "rootio_digest": rootio_digest,
            "original_stanza": _stanza(deb.control, blob),
            "rootio_stanza": _stanza(rootio_control, rootio_blob),
        },
        created_by=principal.account_id,
    )
