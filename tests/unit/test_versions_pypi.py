"""PEP 440 ordering and validity against packaging's own test vectors, plus the generated
local-version rows that cover Graft's `+label.N` marker."""

from __future__ import annotations

from graft.ecosystems.pypi import versions
from tests.fixtures.versions import rows

SIGN = {"<": -1, "=": 0, ">": 1}


def _cmp(a: str, b: str) -> int:
    ka, kb = versions.sort_key(a), versions.sort_key(b)
    return (ka > kb) - (ka < kb)


def test_order_vectors() -> None:
    for name, count in (("pypi-order.tsv", 4289), ("pypi-order-local.tsv", 939)):
        table = rows(name)
        assert len(table) == count
        failures = [
            (a, op, b) for a, op, b in table if _cmp(a, b) != SIGN[op] or _cmp(b, a) != -SIGN[op]
        ]
        assert failures == [], name


def test_validity_vectors() -> None:
    table = rows("pypi-valid.tsv")
    assert len(table) == 212
    assert [r for r in table if (versions.parse(r[0]) is not None) != (r[1] == "true")] == []


def test_patch_marker_spellings() -> None:
    for spelling in ("2.31.0+graft.3", "2.31.0+GRAFT.3", "2.31.0+graft-3", "2.31.0+graft_3"):
        parsed = versions.parse(spelling)
        assert parsed is not None
        marker = versions.patch_marker(parsed, "graft")
        assert marker == versions.PatchMarker("2.31.0", 3)
