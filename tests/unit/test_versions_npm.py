"""npm semver rules against node-semver's own test vectors (every row must pass), plus the
patched-build marker."""

from __future__ import annotations

import pytest

from graft.ecosystems.npm import versions
from tests.fixtures.versions import rows

SIGN = {"<": -1, "=": 0, ">": 1}


@pytest.mark.parametrize(
    ("name", "count", "loose"), [("npm-order.tsv", 42, False), ("npm-order-loose.tsv", 26, True)]
)
def test_order_vectors(name: str, count: int, loose: bool) -> None:
    table = rows(name)
    assert len(table) == count
    failures = [
        (a, op, b)
        for a, op, b in table
        if versions.compare(a, b, loose) != SIGN[op] or versions.compare(b, a, loose) != -SIGN[op]
    ]
    assert failures == []
    # the sort key (loose parsing) agrees with the comparison
    for a, op, b in table:
        ka, kb = versions.sort_key(a), versions.sort_key(b)
        assert (ka > kb) - (ka < kb) == SIGN[op], (a, op, b)


def test_loose_rows_are_invalid_in_strict_mode() -> None:
    for a, _op, b in rows("npm-order-loose.tsv"):
        assert versions.parse(a) is None or versions.parse(b) is None, (a, b)
        with pytest.raises(ValueError):
            versions.compare(a, b)


def test_range_vectors() -> None:
    table = rows("npm-ranges.tsv")
    assert len(table) == 221
    failures = []
    for version, range_, expected, options in table:
        flags = set(options.split("|")) if options else set()
        got = versions.satisfies(
            version,
            range_,
            loose="loose" in flags,
            include_prerelease="includePrerelease" in flags,
        )
        if got != (expected == "true"):
            failures.append((version, range_, expected, options))
    assert failures == []


@pytest.mark.parametrize(
    ("version", "upstream", "build"),
    [
        ("7.5.4-graft.1", "7.5.4", 1),
        ("7.5.4-graft.12", "7.5.4", 12),
        ("2.0.0-rc.1.graft.3", "2.0.0-rc.1", 3),
        ("1.0.0-graft.2+meta", "1.0.0", 2),
    ],
)
def test_patch_marker(version: str, upstream: str, build: int) -> None:
    parsed = versions.parse(version)
    assert parsed is not None
    assert versions.patch_marker(parsed, "graft") == versions.PatchMarker(upstream, build)


@pytest.mark.parametrize("version", ["7.5.4", "7.5.4-beta.1", "7.5.4-graftish.1"])
def test_no_patch_marker(version: str) -> None:
    parsed = versions.parse(version)
    assert parsed is not None
    assert versions.patch_marker(parsed, "graft") is None


@pytest.mark.parametrize(
    "version", ["7.5.4-graft", "7.5.4-graft.x", "7.5.4-graft.0", "1.0.0-graft.1.2"]
)
def test_bad_patch_marker(version: str) -> None:
    parsed = versions.parse(version)
    assert parsed is not None
    with pytest.raises(ValueError, match=r"graft\.<N>"):
        versions.patch_marker(parsed, "graft")


def test_patched_version_round_trips() -> None:
    for upstream in ("7.5.4", "0.0.1", "2.0.0-rc.1"):
        patched = versions.patched_version(upstream, "graft", 4)
        parsed = versions.parse(patched)
        assert parsed is not None
        assert versions.patch_marker(parsed, "graft") == versions.PatchMarker(upstream, 4)


def test_patched_builds_are_never_picked_by_an_ordinary_range() -> None:
    available = ["7.5.3", "7.5.4", "7.5.4-graft.1", "7.5.4-graft.2", "7.6.0"]
    assert versions.max_satisfying(available, "^7.5.4") == "7.6.0"
    assert versions.max_satisfying(available, "~7.5.4") == "7.5.4"
    assert versions.max_satisfying(available, "7.5.4-graft.2") == "7.5.4-graft.2"
    # a range that names the prerelease line does reach them (npm overrides use exact pins)
    assert versions.max_satisfying(available, ">=7.5.4-graft.1 <7.5.4") == "7.5.4-graft.2"
    assert not versions.satisfies("7.5.4-graft.1", "*")
    assert versions.satisfies("7.5.4-graft.1", "*", include_prerelease=True)


def test_sort_key_orders_patched_builds_between_releases() -> None:
    ordered = ["7.5.3", "7.5.4-graft.1", "7.5.4-graft.2", "7.5.4-graft.10", "7.5.4", "7.6.0"]
    assert sorted(reversed(ordered), key=versions.sort_key) == ordered
    assert sorted(["x", "1.0.0"], key=versions.sort_key) == ["x", "1.0.0"]


@pytest.mark.parametrize(
    ("text", "valid"),
    [
        ("1.2.3", "1.2.3"),
        (" v1.2.3 ", "1.2.3"),
        ("1.2", None),
        ("01.2.3", None),
        ("1.2.3-01", None),
        ("1" * 300, None),
        ("9007199254740992.0.0", None),
    ],
)
def test_validity(text: str, valid: str | None) -> None:
    assert versions.valid(text) == valid
