"""The Maven ecosystem through the core interface: registration, order, ranges, publish()."""

from __future__ import annotations

import io
import zipfile
from pathlib import Path

from graft import ecosystems
from graft.accounts.scopes import parse_scopes
from graft.context import AppContext
from graft.ecosystems.base import Ecosystem
from graft.ecosystems.maven import ECOSYSTEM
from graft.settings import load_settings


def test_registered_and_ordered() -> None:
    assert isinstance(ECOSYSTEM, Ecosystem)
    assert "graft.ecosystems.maven" in ecosystems.MODULES
    assert any(e.name == "maven" for e in ecosystems.load())
    given = ["1.10", "1.2", "1.2-graft.1", "1.2-rc1"]
    assert sorted(given, key=ECOSYSTEM.sort_key) == ["1.2-rc1", "1.2", "1.2-graft.1", "1.10"]
    assert ECOSYSTEM.in_range("2.14.1", "[2.0,2.15.0)")
    assert not ECOSYSTEM.in_range("2.15.0", "[2.0,2.15.0)")
    assert ECOSYSTEM.in_range("2.14.1-graft.1", "[2.0,2.15.0)")  # ranges see the patched build


async def test_publish_stores_a_private_artifact(tmp_path: Path) -> None:
    settings = load_settings(data_dir=tmp_path, access_log=False)
    ctx = AppContext.build(settings)
    await ctx.db.migrate()
    await ctx.accounts.create_org("acme")
    await ctx.accounts.create_account("acme", "ci", kind="service")
    new = await ctx.accounts.create_token("acme", "ci", parse_scopes("publish"))
    principal = await ctx.auth.authenticate(f"Bearer {new.token}", "test")
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as z:
        z.writestr("a.txt", "a")
    jar = tmp_path / "upload.jar"
    jar.write_bytes(buf.getvalue())
    result = await ECOSYSTEM.publish(
        ctx, principal, jar, "com/acme/tool/1.0/tool-1.0.jar", fixes=["CVE-2024-0001"]
    )
    assert (result.package, result.version, result.patched) == ("com.acme:tool", "1.0", False)
    assert result.detail["fixes"] == ["CVE-2024-0001"]
    assert await ctx.blobs.read_bytes(result.digests[0]) == buf.getvalue()
    (stored,) = await ctx.catalog.files(principal.org_id, "maven", "com.acme:tool")
    assert stored.filename == "com/acme/tool/1.0/tool-1.0.jar" and stored.kind == "private"
    await ctx.stop()
