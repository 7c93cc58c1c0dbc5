"""apk version rules against apk-tools' own test vectors (every row must pass)."""

from __future__ import annotations

import pytest

from graft.ecosystems.apk import versions
from tests.fixtures.versions import rows

SIGN = {"<": -1, "=": 0, ">": 1}


def test_order_vectors() -> None:
    table = rows("apk-order.tsv")
    assert len(table) == 704
    failures = [
        (a, op, b, versions.compare(a, b))
        for a, op, b in table
        if versions.compare(a, b) != SIGN[op] or versions.compare(b, a) != -SIGN[op]
    ]
    assert failures == []


def test_fuzzy_vectors() -> None:
    table = rows("apk-fuzzy.tsv")
    assert len(table) == 16
    assert [r for r in table if not versions.matches(r[0], r[1], r[2])] == []


def test_validity_vectors() -> None:
    table = rows("apk-valid.tsv")
    assert len(table) == 32
    assert [r for r in table if versions.is_valid(r[0]) != (r[1] == "true")] == []


@pytest.mark.parametrize(
    ("version", "valid"),
    [
        ("8.9.1-r10071", True),  # Graft's patched pkgrel scheme: upstream pkgrel, 007, N
        ("3.45.3-r30071", True),
        ("8.4.0-r0.root.io.1", False),  # what apk silently drops: never produce it
        ("1.0-r1-r2", False),
    ],
)
def test_patched_version_shapes(version: str, valid: bool) -> None:
    assert versions.is_valid(version) is valid


def test_patched_build_sorts_after_its_upstream_and_before_the_next_version() -> None:
    # -r1 patched is -r1007N: numerically above later upstream pkgrels of the same version
    # (so `apk upgrade` keeps it), below the next upstream version.
    ordered = ["8.9.1-r1", "8.9.1-r2", "8.9.1-r10071", "8.9.1-r10072", "8.9.2-r0"]
    assert sorted(reversed(ordered), key=versions.sort_key) == ordered
