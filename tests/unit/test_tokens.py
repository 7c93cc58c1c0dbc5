from __future__ import annotations

import pytest

from graft.accounts import tokens
from graft.accounts.scopes import Scope, expand, parse_scopes, serialize


def test_generated_tokens_are_well_formed_and_unique() -> None:
    seen = {tokens.generate() for _ in range(500)}
    assert len(seen) == 500
    for tok in seen:
        assert tok.startswith("graft_")
        assert len(tok) == len("graft_") + 49
        assert tokens.well_formed(tok)


def test_secret_part_carries_256_bits() -> None:
    # 43 base62 characters hold at least 256 bits.
    assert 62**43 >= 2**256


@pytest.mark.parametrize(
    "mutate",
    [
        lambda t: t[:-1] + ("A" if t[-1] != "A" else "B"),  # checksum changed
        lambda t: t[:10] + ("x" if t[10] != "x" else "y") + t[11:],  # secret changed
        lambda t: t[:-2],  # truncated
        lambda t: t.replace("graft_", "graff_"),
        lambda t: t + "0",
        lambda t: "",
    ],
)
def test_tampered_tokens_are_rejected_without_lookup(mutate) -> None:  # type: ignore[no-untyped-def]
    assert not tokens.well_formed(mutate(tokens.generate()))


def test_only_a_hash_and_a_short_prefix_are_derived() -> None:
    tok = tokens.generate()
    assert tokens.digest(tok) != tok and len(tokens.digest(tok)) == 64
    assert tok.startswith(tokens.display_prefix(tok))
    assert len(tokens.display_prefix(tok)) == 12


def test_scopes_parse_and_imply_lower_ones() -> None:
    assert parse_scopes("read") == {Scope.READ}
    assert parse_scopes("publish, admin") == {Scope.PUBLISH, Scope.ADMIN}
    assert expand(frozenset({Scope.ADMIN})) == {Scope.READ, Scope.PUBLISH, Scope.ADMIN}
    assert expand(frozenset({Scope.PUBLISH})) == {Scope.READ, Scope.PUBLISH}
    assert expand(frozenset({Scope.READ})) == {Scope.READ}
    assert serialize(frozenset({Scope.ADMIN, Scope.READ})) == "read admin"


@pytest.mark.parametrize("bad", ["", "write", "read,owner", []])
def test_unknown_or_missing_scopes_are_refused(bad: str | list[str]) -> None:
    with pytest.raises(ValueError):
        parse_scopes(bad)
