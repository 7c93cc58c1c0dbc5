"""Maven ComparableVersion order against Maven's own test vectors, version ranges, and the
patched-build marker `<upstream>-<label>.<N>`."""

from __future__ import annotations

import pytest

from graft.ecosystems.maven import versions
from tests.fixtures.versions import rows

SIGN = {"<": -1, "=": 0, ">": 1}


def test_order_vectors() -> None:
    table = rows("maven-order.tsv")
    assert len(table) == 1014
    failures = [
        (a, op, b, versions.compare(a, b))
        for a, op, b in table
        if versions.compare(a, b) != SIGN[op] or versions.compare(b, a) != -SIGN[op]
    ]
    assert failures == []


def test_sort_key_orders_like_maven() -> None:
    given = ["1.0", "1.0-SNAPSHOT", "1.0-alpha-1", "1.0.1", "1.0-sp", "1.0-rc1", "1.0-graft.1"]
    assert sorted(given, key=versions.sort_key) == [
        "1.0-alpha-1",
        "1.0-rc1",
        "1.0-SNAPSHOT",
        "1.0",
        "1.0-sp",
        "1.0-graft.1",
        "1.0.1",
    ]


def test_too_long_versions_are_refused_but_still_sort() -> None:
    with pytest.raises(versions.InvalidVersion):
        versions.parse("1." * 200)
    assert versions.sort_key("1." * 200) < versions.sort_key("0")


@pytest.mark.parametrize(
    ("upstream", "patched", "next_release"),
    [
        ("2.15.2", "2.15.2-graft.1", "2.15.3"),
        ("2.14.1", "2.14.1-graft.12", "2.14.2"),
        ("1.0", "1.0-graft.1", "1.0.1"),
        ("31.1-jre", "31.1-jre-graft.1", "31.2-jre"),
        ("5.3.20.RELEASE", "5.3.20.RELEASE-graft.1", "5.3.21.RELEASE"),
        ("1.0-beta-2", "1.0-beta-2-graft.1", "1.0-beta-3"),
    ],
)
def test_patched_build_sorts_between_its_upstream_and_the_next(
    upstream: str, patched: str, next_release: str
) -> None:
    assert versions.compare(upstream, patched) < 0 < versions.compare(next_release, patched)
    base, _, build = patched.rpartition(".")
    assert versions.compare(patched, f"{base}.{int(build) + 1}") < 0  # a rebuild is newer


def test_patch_marker() -> None:
    assert versions.patch_marker("2.15.2-graft.3", "graft") == versions.PatchMarker("2.15.2", 3)
    assert versions.patch_marker("31.1-jre-graft.1", "graft") == versions.PatchMarker("31.1-jre", 1)
    assert versions.patch_marker("2.15.2", "graft") is None
    assert versions.patch_marker("1.0-graftwerk", "graft") is None
    for typo in ("2.15.2.graft.1", "2.15.2-graft1", "2.15.2-GRAFT.1", "2.15.2-graft-1", "2-graft"):
        with pytest.raises(ValueError, match=r"2\.15\.2-graft\.1"):
            versions.patch_marker(typo, "graft")
    with pytest.raises(ValueError):  # a patched build of a snapshot is not a thing
        versions.patch_marker("1.0-SNAPSHOT-graft.1", "graft")


@pytest.mark.parametrize(
    ("spec", "inside", "outside"),
    [
        ("[1.0,2.0)", ["1.0", "1.5", "1.9.9", "1.0-graft.1", "2.0-alpha-1"], ["0.9", "2.0", "2.1"]),
        ("[1.0]", ["1.0", "1", "1.0.0"], ["1.0.1", "0.9", "1.0-graft.1"]),
        ("(,1.0]", ["0.1", "1.0"], ["1.0.1", "1.0-graft.1"]),
        ("(,1.0)", ["0.9", "1.0-SNAPSHOT"], ["1.0"]),
        ("[1.2,)", ["1.2", "99"], ["1.1"]),
        ("(1.2,)", ["1.2.1", "1.2-graft.1"], ["1.2"]),
        ("(,1.0],[1.2,)", ["1.0", "1.2", "3"], ["1.1", "1.0.5"]),
        ("[1.0, 2.0]", ["2.0", "1.0"], ["2.0.1"]),
        ("1.0", ["0.1", "1.0", "7"], []),  # a bare version is a preference
    ],
)
def test_ranges(spec: str, inside: list[str], outside: list[str]) -> None:
    r = versions.parse_range(spec)
    assert [v for v in inside if not r.contains(v)] == []
    assert [v for v in outside if r.contains(v)] == []


def test_range_selects_the_highest_match_so_a_patched_build_wins() -> None:
    available = ["1.0", "1.1", "1.1-graft.1", "2.0"]
    assert versions.parse_range("[1.0,2.0)").select(available) == "1.1-graft.1"
    assert versions.parse_range("[1.0]").select(available) == "1.0"
    assert versions.parse_range("[3.0,)").select(available) is None
    assert versions.parse_range("1.0").select(available) == "1.0"


@pytest.mark.parametrize(
    "spec",
    ["", "[1.0", "[1.0,2.0", "(1.0)", "[1.0)", "[2.0,1.0]", "(1.0,1.0)", "[1.0,2.0]x",
     "[1.0,2.0],[1.5,3.0]", "[1.0,2.0][3.0,)", "[1.0,2.0],", "[,1.0]", "[1.0,]", "1.0,2.0",
     "[1,2,3]"],
)  # fmt: skip
def test_bad_ranges_are_refused(spec: str) -> None:
    with pytest.raises(versions.InvalidVersion):
        versions.parse_range(spec)


def test_range_round_trips_as_text() -> None:
    for spec in ("[1.0,2.0)", "[1.0]", "(,1.0],[1.2,)", "1.0"):
        assert str(versions.parse_range(spec)) == spec
