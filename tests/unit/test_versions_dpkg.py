"""dpkg version rules against dpkg's, apt's and python-debian's own test vectors."""

from __future__ import annotations

import shutil
import subprocess

import pytest

from graft.ecosystems.apt import versions
from tests.fixtures.versions import rows

SIGN = {"<": -1, "=": 0, ">": 1}
DPKG_OP = {"<": "lt", "=": "eq", ">": "gt"}


def test_order_vectors() -> None:
    table = rows("dpkg-order.tsv")
    assert len(table) == 170
    failures = [
        (a, op, b)
        for a, op, b in table
        if versions.compare(a, b) != SIGN[op] or versions.compare(b, a) != -SIGN[op]
    ]
    assert failures == []


@pytest.mark.skipif(shutil.which("dpkg") is None, reason="dpkg is not installed")
def test_patched_versions_agree_with_dpkg() -> None:
    cases = [
        ("7.88.1-10+deb12u8", "<", versions.patched_version("7.88.1-10+deb12u8", "graft", 1)),
        (
            versions.patched_version("7.88.1-10+deb12u8", "graft", 1),
            "<",
            versions.patched_version("7.88.1-10+deb12u8", "graft", 2),
        ),
        (versions.patched_version("7.88.1-10+deb12u8", "graft", 9), "<", "7.88.1-10+deb12u9"),
        (versions.patched_version("1:2.3-1", "graft", 1), ">", "1:2.3-1"),
    ]
    for a, op, b in cases:
        assert versions.compare(a, b) == SIGN[op]
        dpkg = subprocess.run(["dpkg", "--compare-versions", a, DPKG_OP[op], b], check=False)
        assert dpkg.returncode == 0, (a, op, b)


def test_patch_marker() -> None:
    assert versions.patch_marker("7.88.1-10+deb12u8.graft.3", "graft") == ("7.88.1-10+deb12u8", 3)
    assert versions.patch_marker("7.88.1-10+deb12u8", "graft") is None
    assert versions.patch_marker("7.88.1-10+deb12u8.other.3", "graft") is None
