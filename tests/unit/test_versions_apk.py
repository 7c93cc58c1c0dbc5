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


# Results of `apk version -c` from apk-tools 2.14.10 (the apk of Alpine 3.18 to 3.22), recorded
# when the rule was written; every one is valid by apk 3's rules.
APK2_CHECKED = [
    ("8.9.1-r10071", True),
    ("0.1_git20240101_pre1", True),
    ("1." + "9" * 17, True),
    ("1." + "0" * 19 + "1", True),  # 2.14 sets the leading zeros apart before counting
    ("0.1_pre2~1234abcd", False),  # apk 2.14 has no ~<commit hash>
    ("1.0~abc-r10071", False),
    ("1." + "9" * 18, False),  # 2.14: numbers of 18 digits or more are invalid
    ("1" * 18, False),
    ("1.0_p" + "1" * 18, False),
    ("1.0-r" + "1" * 18, False),
    ("1." + "0" * 3 + "1" * 17, False),
]


@pytest.mark.parametrize(("version", "valid"), APK2_CHECKED)
def test_valid_for_apk_tools_2(version: str, valid: bool) -> None:
    assert versions.is_valid(version)
    assert versions.is_valid_apk2(version) is valid


def test_apk2_validity_is_stricter_than_apk3_on_the_vectors() -> None:
    table = rows("apk-valid.tsv")
    assert [v for v, _ in table if versions.is_valid_apk2(v) and not versions.is_valid(v)] == []
    assert [v for v, ok in table if ok == "true" and not versions.is_valid_apk2(v)] == [
        "0.1_pre2~1234abcd"
    ]
