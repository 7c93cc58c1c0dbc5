"""`Ecosystem.publish` for images: an OCI layout archive imported into a repository."""

from __future__ import annotations

import tarfile
from pathlib import Path

import pytest

from graft.accounts.models import Principal
from graft.accounts.scopes import Scope
from graft.context import AppContext
from graft.ecosystems.oci import ECOSYSTEM
from graft.ecosystems.oci.store import MetaStore, org_space
from graft.errors import InvalidInput
from graft.settings import Settings
from tests.fixtures.oci import make_image, write_layout


def archive(layout: Path, dest: Path) -> Path:
    with tarfile.open(dest, "w") as tar:
        for path in sorted(layout.rglob("*")):
            tar.add(path, arcname=str(path.relative_to(layout)), recursive=False)
    return dest


async def test_publish_an_oci_layout_archive(tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path / "data")
    ctx = AppContext.build(settings)
    await ctx.db.migrate()
    org = await ctx.accounts.create_org("acme")
    principal = Principal(
        org.id, "acme", 1, "ci", "service", False, 1, frozenset({Scope.PUBLISH}), None
    )
    img = make_image("published")
    tar = archive(write_layout(tmp_path / "layout", "3.12-slim-graft", [img]), tmp_path / "img.tar")
    try:
        result = await ECOSYSTEM.publish(
            ctx, principal, tar, "img.tar", repository="library/python"
        )
        assert result.patched and result.version == "3.12-slim-graft"
        assert result.digests == (img.digest,)
        meta = MetaStore(ctx.db)
        repo = await meta.repository_id(org_space(org.id), "library/python")
        assert repo is not None
        info = await meta.resolve(repo, "3.12-slim-graft")
        assert info is not None and info.digest == img.digest
        assert await ctx.blobs.read_bytes(img.digest) == img.manifest
        bad = tmp_path / "bad.tar"
        bad.write_bytes(b"not a tar")
        with pytest.raises(InvalidInput):
            await ECOSYSTEM.publish(ctx, principal, bad, "bad.tar", repository="library/python")
        with pytest.raises(InvalidInput):
            await ECOSYSTEM.publish(ctx, principal, tar, "img.tar", repository="Bad/Name")
    finally:
        await ctx.http.aclose()
        await ctx.db.dispose()
