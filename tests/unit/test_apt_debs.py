"""`.deb` reading and writing, checked with the real dpkg-deb and dpkg."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

from graft.ecosystems.apt import debs
from graft.errors import InvalidInput

pytestmark = pytest.mark.skipif(shutil.which("dpkg-deb") is None, reason="dpkg is not installed")


def dpkg_build(
    tmp: Path, name: str, version: str, content: bytes = b"#!/bin/sh\necho hi\n"
) -> Path:
    root = tmp / f"{name}-{version}"
    (root / "DEBIAN").mkdir(parents=True)
    (root / "usr" / "bin").mkdir(parents=True)
    (root / "usr" / "bin" / name).write_bytes(content)
    (root / "DEBIAN" / "control").write_text(
        f"Package: {name}\nVersion: {version}\nArchitecture: amd64\n"
        "Maintainer: Test <t@example.com>\nMulti-Arch: foreign\n"
        f"Description: test package {name}\n a package built by dpkg-deb for tests\n"
    )
    out = tmp / f"{name}_{version}_amd64.deb"
    subprocess.run(
        ["dpkg-deb", "--root-owner-group", "-Zxz", "--build", str(root), str(out)],
        check=True,
        capture_output=True,
    )
    return out


def dpkg_field(deb: Path, field: str) -> str:
    return subprocess.run(
        ["dpkg-deb", "--field", str(deb), field], check=True, capture_output=True, text=True
    ).stdout.strip()


def contents(deb: Path) -> list[str]:
    out = subprocess.run(
        ["dpkg-deb", "--contents", str(deb)], check=True, capture_output=True, text=True
    ).stdout
    return sorted(line.split()[-1] for line in out.splitlines())


def dpkg_root(tmp: Path) -> Path:
    root = tmp / "root"
    for d in ("var/lib/dpkg/info", "var/lib/dpkg/updates", "var/lib/dpkg/triggers"):
        (root / d).mkdir(parents=True, exist_ok=True)
    (root / "var/lib/dpkg/status").touch()
    return root


def dpkg_install(root: Path, *packages: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [
            "dpkg",
            f"--root={root}",
            "--force-script-chrootless",
            "--log=/dev/null",
            "-i",
            *map(str, packages),
        ],
        capture_output=True,
        text=True,
        check=False,
    )


def installed(root: Path) -> dict[str, str]:
    out = subprocess.run(
        ["dpkg-query", f"--root={root}", "-W", "-f=${Package} ${Version} ${Status}\n"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    return {p.split()[0]: p.split()[1] for p in out.splitlines() if p.endswith("installed")}


def test_read_a_package_built_by_dpkg(tmp_path: Path) -> None:
    deb = debs.read_deb(dpkg_build(tmp_path, "curlish", "7.88.1-10+deb12u8").read_bytes())
    assert (deb.name, deb.version, deb.architecture) == ("curlish", "7.88.1-10+deb12u8", "amd64")
    assert deb.control["Description"].startswith("test package curlish\n a package")


def test_rootio_copy_keeps_the_payload_and_rewrites_control(tmp_path: Path) -> None:
    patched = dpkg_build(
        tmp_path, "curlish", "7.88.1-10+deb12u8.graft.1", b"#!/bin/sh\necho fixed\n"
    )
    deb = debs.read_deb(patched.read_bytes())
    fields = debs.rootio_fields(deb.control, "rootio-", "7.88.1-10+deb12u8")
    out = tmp_path / "rootio-curlish.deb"
    out.write_bytes(debs.with_control(deb, fields))
    assert dpkg_field(out, "Package") == "rootio-curlish"
    assert dpkg_field(out, "Version") == "7.88.1-10+deb12u8.graft.1"
    assert dpkg_field(out, "Provides") == "curlish (= 7.88.1-10+deb12u8)"
    assert dpkg_field(out, "Replaces") == "curlish" and dpkg_field(out, "Conflicts") == "curlish"
    assert contents(out) == contents(patched)
    assert debs.with_control(deb, fields) == out.read_bytes()  # deterministic


def test_transitional_then_patched_with_real_dpkg(tmp_path: Path) -> None:
    upstream = dpkg_build(tmp_path, "curlish", "7.88.1-10+deb12u8")
    fallback = tmp_path / "rootio-curlish_fallback.deb"
    fallback.write_bytes(debs.transitional_deb("curlish", "7.88.1-10+deb12u8", "amd64", "rootio-"))
    assert dpkg_field(fallback, "Depends") == "curlish (= 7.88.1-10+deb12u8)"
    root = dpkg_root(tmp_path)
    result = dpkg_install(root, upstream, fallback)
    assert result.returncode == 0, result.stderr
    assert installed(root) == {
        "curlish": "7.88.1-10+deb12u8",
        "rootio-curlish": "7.88.1-10+deb12u8",
    }
    # The patched build arrives as rootio-curlish: it replaces curlish without --force-*.
    patched = debs.read_deb(
        dpkg_build(
            tmp_path, "curlish", "7.88.1-10+deb12u8.graft.1", b"#!/bin/sh\necho fixed\n"
        ).read_bytes()
    )
    rootio = tmp_path / "rootio-curlish_patched.deb"
    rootio.write_bytes(
        debs.with_control(
            patched, debs.rootio_fields(patched.control, "rootio-", "7.88.1-10+deb12u8")
        )
    )
    result = dpkg_install(root, rootio)
    assert result.returncode == 0, result.stderr
    assert installed(root) == {"rootio-curlish": "7.88.1-10+deb12u8.graft.1"}
    assert (root / "usr/bin/curlish").read_bytes() == b"#!/bin/sh\necho fixed\n"


@pytest.mark.parametrize(
    ("blob", "needle"),
    [
        (b"not an archive", "no ar archive header"),
        (b"!<arch>\n" + b"x" * 30, "damaged ar member header"),
        (debs.write_ar([debs.ArMember("debian-binary", b"2.0\n")]), "control.tar and data.tar"),
        (debs.write_ar([debs.ArMember("control.tar.gz", b"x")]), "debian-binary 2.x"),
    ],
)
def test_malformed_packages_are_refused(blob: bytes, needle: str) -> None:
    with pytest.raises(InvalidInput, match=needle):
        debs.read_deb(blob)
