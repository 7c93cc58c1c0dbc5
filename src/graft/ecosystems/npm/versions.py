"""npm's version rules (node-semver 7): parsing (strict and loose), order, and range matching;
plus Graft's patched-build marker `<upstream>-<label>.<N>`.

Written by hand: the one Python port on PyPI (`node-semver` 0.9) follows an old node-semver
and fails the shared vectors (with `includePrerelease` it treats `1.0.0-rc1` as equal to
`1.0.0`, and it raises on invalid versions where semver answers false). This module follows the
grammar and desugaring rules that node-semver documents (README "Ranges", `range.bnf`) and is
checked against every row of the shared vectors and, in the integration suite, against the
semver package itself on generated inputs.

Ranges desugar into sets of comparators, exactly as semver does it:
`1.2.3 - 2.3` → `>=1.2.3 <2.4.0-0`; `~1.2` → `>=1.2.0 <1.3.0-0`; `^0.2.3` → `>=0.2.3 <0.3.0-0`;
`1.x` → `>=1.0.0 <2.0.0-0`. A version with a prerelease tag satisfies a set only when one of
its comparators has a prerelease on the same `major.minor.patch` (unless includePrerelease) —
which is why a patched build `7.5.4-graft.1` is never picked by `^7.5.4`.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import lru_cache

MAX_LENGTH = 256
MAX_SAFE_INTEGER = 2**53 - 1
_MAX_BUILD = MAX_LENGTH - 6

# -- the grammar, as regular-expression sources --------------------------------------------
# Inputs are trimmed and their whitespace collapsed before matching, so `\s*` never needs to
# match more than one character; the bounded forms keep Python's backtracking engine safe
# on hostile input (semver does the same).
_LDN = "[a-zA-Z0-9-]"
_NUM = "0|[1-9][0-9]{0,256}"
_NUM_LOOSE = "[0-9]{1,256}"
_NONNUM = f"[0-9]{{0,256}}[a-zA-Z-]{_LDN}{{0,{_MAX_BUILD}}}"
_MAIN = f"({_NUM})\\.({_NUM})\\.({_NUM})"
_MAIN_LOOSE = f"({_NUM_LOOSE})\\.({_NUM_LOOSE})\\.({_NUM_LOOSE})"
_PREID = f"(?:{_NONNUM}|{_NUM})"
_PREID_LOOSE = f"(?:{_NONNUM}|{_NUM_LOOSE})"
_PRE = f"(?:-({_PREID}(?:\\.{_PREID})*))"
_PRE_LOOSE = f"(?:-?({_PREID_LOOSE}(?:\\.{_PREID_LOOSE})*))"
_BUILDID = f"{_LDN}{{1,{_MAX_BUILD}}}"
_BUILD = f"(?:\\+({_BUILDID}(?:\\.{_BUILDID})*))"
_FULL_PLAIN = f"v?{_MAIN}{_PRE}?{_BUILD}?"
_LOOSE_PLAIN = f"[v=\\s]*{_MAIN_LOOSE}{_PRE_LOOSE}?{_BUILD}?"
_GTLT = "((?:<|>)?=?)"
_XRID = f"{_NUM}|x|X|\\*"
_XRID_LOOSE = f"{_NUM_LOOSE}|x|X|\\*"


def _xrange_plain(xrid: str, pre: str) -> str:
    return f"[v=\\s]*({xrid})(?:\\.({xrid})(?:\\.({xrid})(?:{pre})?{_BUILD}?)?)?"


_XR_PLAIN = _xrange_plain(_XRID, _PRE)
_XR_PLAIN_LOOSE = _xrange_plain(_XRID_LOOSE, _PRE_LOOSE)


@dataclass(frozen=True, slots=True)
class _Grammar:
    version: re.Pattern[str]
    comparator: re.Pattern[str]
    xrange: re.Pattern[str]
    tilde: re.Pattern[str]
    caret: re.Pattern[str]
    hyphen: re.Pattern[str]


def _grammar(loose: bool) -> _Grammar:
    plain = _LOOSE_PLAIN if loose else _FULL_PLAIN
    xr = _XR_PLAIN_LOOSE if loose else _XR_PLAIN
    return _Grammar(
        version=re.compile(f"^{plain}\\Z"),
        comparator=re.compile(f"^{_GTLT}\\s{{0,1}}({plain})\\Z|^\\Z"),
        xrange=re.compile(f"^{_GTLT}\\s{{0,1}}{xr}\\Z"),
        tilde=re.compile(f"^(?:~>?){xr}\\Z"),
        caret=re.compile(f"^(?:\\^){xr}\\Z"),
        hyphen=re.compile(f"^\\s{{0,1}}({xr})\\s{{1,1}}-\\s{{1,1}}({xr})\\s{{0,1}}\\Z"),
    )


_STRICT, _LOOSE = _grammar(False), _grammar(True)
_COMPARATOR_TRIM = re.compile(f"(\\s{{0,1}}){_GTLT}\\s{{0,1}}({_LOOSE_PLAIN}|{_XR_PLAIN})")
_TILDE_TRIM = re.compile("(\\s{0,1})(?:~>?)\\s{1,1}")
_CARET_TRIM = re.compile("(\\s{0,1})(?:\\^)\\s{1,1}")
_BUILD_ANYWHERE = re.compile(_BUILD)
_STAR = re.compile("(<|>)?=?\\s{0,1}\\*")
_GTE0 = re.compile("^\\s{0,1}>=\\s{0,1}0\\.0\\.0\\s{0,1}\\Z")
_GTE0_PRE = re.compile("^\\s{0,1}>=\\s{0,1}0\\.0\\.0-0\\s{0,1}\\Z")
_SPACES = re.compile(r"\s+")
_DIGITS = re.compile("^[0-9]+\\Z")


# -- versions ---------------------------------------------------------------------------------
Identifier = int | str


def _compare_ids(a: Identifier, b: Identifier) -> int:
    a_num = isinstance(a, int) or bool(_DIGITS.match(a))
    b_num = isinstance(b, int) or bool(_DIGITS.match(b))
    if a_num and b_num:
        x, y = int(a), int(b)
        return (x > y) - (x < y)
    if a_num != b_num:
        return -1 if a_num else 1  # numeric identifiers sort before alphanumeric ones
    sa, sb = str(a), str(b)
    return (sa > sb) - (sa < sb)


@dataclass(frozen=True, slots=True)
class SemVer:
    major: int
    minor: int
    patch: int
    prerelease: tuple[Identifier, ...]
    build: tuple[str, ...]

    @property
    def version(self) -> str:
        """The normal form (no `v`, no build metadata), as semver's `.version`."""
        base = f"{self.major}.{self.minor}.{self.patch}"
        return base + "-" + ".".join(map(str, self.prerelease)) if self.prerelease else base

    def __str__(self) -> str:
        return self.version

    def compare(self, other: SemVer) -> int:
        for a, b in ((self.major, other.major), (self.minor, other.minor)):
            if a != b:
                return -1 if a < b else 1
        if self.patch != other.patch:
            return -1 if self.patch < other.patch else 1
        return self._compare_pre(other)

    def _compare_pre(self, other: SemVer) -> int:
        if not self.prerelease or not other.prerelease:
            # having no prerelease sorts after having one
            return (not self.prerelease) - (not other.prerelease)
        for a, b in zip(self.prerelease, other.prerelease, strict=False):
            if a != b:
                found = _compare_ids(a, b)
                if found:
                    return found
        n, m = len(self.prerelease), len(other.prerelease)
        return (n > m) - (n < m)

    def sort_key(self) -> tuple[int, int, int, int, tuple[tuple[int, int | str], ...]]:
        pre = tuple((0, int(i)) if isinstance(i, int) else (1, i) for i in self.prerelease)
        return (self.major, self.minor, self.patch, 0 if self.prerelease else 1, pre)


def _numberify(ident: str) -> Identifier:
    if _DIGITS.match(ident):
        num = int(ident)
        if num < MAX_SAFE_INTEGER:
            return num
    return ident


@lru_cache(maxsize=65536)
def parse(version: str, loose: bool = False) -> SemVer | None:
    """A version as semver reads it (`new SemVer(v, {loose})`), or None if it is invalid."""
    if not isinstance(version, str) or len(version) > MAX_LENGTH:
        return None
    m = (_LOOSE if loose else _STRICT).version.match(version.strip())
    if m is None:
        return None
    major, minor, patch = int(m.group(1)), int(m.group(2)), int(m.group(3))
    if max(major, minor, patch) > MAX_SAFE_INTEGER:
        return None
    pre = tuple(_numberify(i) for i in m.group(4).split(".")) if m.group(4) else ()
    build = tuple(m.group(5).split(".")) if m.group(5) else ()
    return SemVer(major, minor, patch, pre, build)


def valid(version: str, loose: bool = False) -> str | None:
    """semver.valid: the normal form of a valid version, else None."""
    parsed = parse(version, loose)
    return parsed.version if parsed is not None else None


def compare(a: str, b: str, loose: bool = False) -> int:
    """semver.compare: -1, 0 or 1. Raises ValueError for an invalid version, as semver throws."""
    pa, pb = parse(a, loose), parse(b, loose)
    if pa is None or pb is None:
        raise ValueError(f"Invalid Version: {a if pa is None else b}")
    return pa.compare(pb)


def sort_key(version: str) -> tuple[int, object]:
    """npm's order (loose parsing, as the registry's old versions need); versions that do not
    parse sort first, by their text."""
    parsed = parse(version, True)
    return (1, parsed.sort_key()) if parsed is not None else (0, version)


# -- ranges -----------------------------------------------------------------------------------
_OPS = {
    "": lambda c: c == 0,
    ">": lambda c: c > 0,
    ">=": lambda c: c >= 0,
    "<": lambda c: c < 0,
    "<=": lambda c: c <= 0,
}


@dataclass(frozen=True, slots=True)
class Comparator:
    operator: str  # "", ">", ">=", "<", "<="
    semver: SemVer | None  # None: any version

    @property
    def value(self) -> str:
        return "" if self.semver is None else self.operator + self.semver.version

    def test(self, version: SemVer) -> bool:
        if self.semver is None:
            return True
        return bool(_OPS[self.operator](version.compare(self.semver)))


NULL_SET = "<0.0.0-0"


def _comparator(text: str, loose: bool) -> Comparator:
    text = " ".join(text.split())
    m = (_LOOSE if loose else _STRICT).comparator.match(text)
    if m is None:
        raise ValueError(f"Invalid comparator: {text}")
    operator = m.group(1) or ""
    if operator == "=":
        operator = ""
    if not m.group(2):
        return Comparator(operator, None)
    parsed = parse(m.group(2), loose)
    if parsed is None:
        raise ValueError(f"Invalid Version: {m.group(2)}")
    return Comparator(operator, parsed)


def _is_x(ident: str | None) -> bool:
    return not ident or ident.lower() == "x" or ident == "*"


def _inc(ident: str) -> str:
    return str(int(ident) + 1)


def _desugar_tilde(comp: str, g: _Grammar, z: str) -> str:
    m = g.tilde.match(comp)
    if m is None:
        return comp
    major, minor, patch, pre = m.group(1), m.group(2), m.group(3), m.group(4)
    if _is_x(major):
        return ""
    if _is_x(minor):
        return f">={major}.0.0{z} <{_inc(major)}.0.0-0"
    if _is_x(patch):
        return f">={major}.{minor}.0{z} <{major}.{_inc(minor)}.0-0"
    low = f"{major}.{minor}.{patch}" + (f"-{pre}" if pre else "")
    return f">={low} <{major}.{_inc(minor)}.0-0"


def _desugar_caret(comp: str, g: _Grammar, z: str) -> str:
    m = g.caret.match(comp)
    if m is None:
        return comp
    major, minor, patch, pre = m.group(1), m.group(2), m.group(3), m.group(4)
    if _is_x(major):
        return ""
    if _is_x(minor):
        return f">={major}.0.0{z} <{_inc(major)}.0.0-0"
    if _is_x(patch):
        upper = f"{major}.{_inc(minor)}.0-0" if major == "0" else f"{_inc(major)}.0.0-0"
        return f">={major}.{minor}.0{z} <{upper}"
    low = f"{major}.{minor}.{patch}" + (f"-{pre}" if pre else "")
    if major != "0":
        upper = f"{_inc(major)}.0.0-0"
    elif minor != "0":
        upper = f"{major}.{_inc(minor)}.0-0"
    else:
        upper = f"{major}.{minor}.{_inc(patch)}-0"
    return f">={low} <{upper}"


def _desugar_xrange(comp: str, g: _Grammar, include_prerelease: bool) -> str:
    comp = comp.strip()
    m = g.xrange.match(comp)
    if m is None:
        return comp
    gtlt, major, minor, patch = m.group(1), m.group(2), m.group(3), m.group(4)
    if (_is_x(major) and not _is_x(minor)) or (_is_x(minor) and patch and not _is_x(patch)):
        return comp  # `*.1` or `1.x.2`: left for the comparator check to reject
    x_major = _is_x(major)
    x_minor = x_major or _is_x(minor)
    any_x = x_minor or _is_x(patch)
    if gtlt == "=" and any_x:
        gtlt = ""
    pre = "-0" if include_prerelease else ""
    if x_major:
        return NULL_SET if gtlt in (">", "<") else "*"
    if gtlt and any_x:
        mn = "0" if x_minor else minor
        if gtlt == ">":
            gtlt = ">="
            if x_minor:
                major, mn = _inc(major), "0"
            else:
                mn = _inc(mn)
        elif gtlt == "<=":
            gtlt = "<"
            if x_minor:
                major = _inc(major)
            else:
                mn = _inc(mn)
        if gtlt == "<":
            pre = "-0"
        return f"{gtlt}{major}.{mn}.0{pre}"
    if x_minor:
        return f">={major}.0.0{pre} <{_inc(major)}.0.0-0"
    if any_x:
        return f">={major}.{minor}.0{pre} <{major}.{_inc(minor)}.0-0"
    return comp


def _desugar_hyphen(m: re.Match[str], include_prerelease: bool) -> str:
    z = "-0" if include_prerelease else ""
    lo, f_major, f_minor, f_patch, f_pre = (
        m.group(1),
        m.group(2),
        m.group(3),
        m.group(4),
        m.group(5),
    )
    hi, t_major, t_minor, t_patch, t_pre = (
        m.group(7),
        m.group(8),
        m.group(9),
        m.group(10),
        m.group(11),
    )
    if _is_x(f_major):
        low = ""
    elif _is_x(f_minor):
        low = f">={f_major}.0.0{z}"
    elif _is_x(f_patch):
        low = f">={f_major}.{f_minor}.0{z}"
    elif f_pre:
        low = f">={lo}"
    else:
        low = f">={lo}{z}"
    if _is_x(t_major):
        high = ""
    elif _is_x(t_minor):
        high = f"<{_inc(t_major)}.0.0-0"
    elif _is_x(t_patch):
        high = f"<{t_major}.{_inc(t_minor)}.0-0"
    elif t_pre:
        high = f"<={t_major}.{t_minor}.{t_patch}-{t_pre}"
    elif include_prerelease:
        high = f"<{t_major}.{t_minor}.{_inc(t_patch)}-0"
    else:
        high = f"<={hi}"
    return f"{low} {high}".strip()


def _each(text: str, fn: object) -> str:
    return " ".join(fn(c) for c in text.strip().split())  # type: ignore[operator]


def _parse_set(text: str, loose: bool, include_prerelease: bool) -> tuple[Comparator, ...]:
    g = _LOOSE if loose else _STRICT
    text = _BUILD_ANYWHERE.sub("", text)
    text = g.hyphen.sub(lambda m: _desugar_hyphen(m, include_prerelease), text, count=1)
    text = _COMPARATOR_TRIM.sub(r"\1\2\3", text)
    text = _TILDE_TRIM.sub(r"\1~", text)
    text = _CARET_TRIM.sub(r"\1^", text)
    z = "-0" if include_prerelease else ""
    parts = []
    for comp in text.split(" "):
        comp = _BUILD_ANYWHERE.sub("", comp, count=1)
        comp = _each(comp, lambda c: _desugar_caret(c, g, z))
        comp = _each(comp, lambda c: _desugar_tilde(c, g, z))
        comp = _each(comp, lambda c: _desugar_xrange(c, g, include_prerelease))
        comp = _STAR.sub("", comp.strip(), count=1)
        parts.append(comp)
    gte0 = _GTE0_PRE if include_prerelease else _GTE0
    listed = [gte0.sub("", c.strip(), count=1) for c in _SPACES.split(" ".join(parts))]
    if loose:
        listed = [c for c in listed if g.comparator.match(c)]
    found: dict[str, Comparator] = {}
    for c in (_comparator(c, loose) for c in listed):
        if c.value == NULL_SET:
            return (c,)
        found[c.value] = c
    if len(found) > 1:
        found.pop("", None)
    return tuple(found.values())


@dataclass(frozen=True, slots=True)
class Range:
    raw: str
    sets: tuple[tuple[Comparator, ...], ...]
    include_prerelease: bool

    def test(self, version: SemVer) -> bool:
        return any(self._test_set(s, version) for s in self.sets)

    def _test_set(self, comparators: tuple[Comparator, ...], version: SemVer) -> bool:
        if not all(c.test(version) for c in comparators):
            return False
        if not version.prerelease or self.include_prerelease:
            return True
        # A prerelease only matches a set that names a prerelease of the same x.y.z.
        triple = (version.major, version.minor, version.patch)
        return any(
            c.semver is not None
            and c.semver.prerelease
            and (c.semver.major, c.semver.minor, c.semver.patch) == triple
            for c in comparators
        )


@lru_cache(maxsize=16384)
def parse_range(text: str, loose: bool = False, include_prerelease: bool = False) -> Range:
    """A range as semver reads it (`new Range(r, opts)`). Raises ValueError if invalid."""
    raw = " ".join(text.strip().split())
    sets = [s for s in (_parse_set(r.strip(), loose, include_prerelease) for r in raw.split("||"))]
    sets = [s for s in sets if s]
    if not sets:
        raise ValueError(f"Invalid SemVer Range: {raw}")
    if len(sets) > 1:
        useful = [s for s in sets if s[0].value != NULL_SET]
        if not useful:
            sets = sets[:1]
        else:
            sets = useful
            star = next((s for s in sets if len(s) == 1 and s[0].value == ""), None)
            if len(sets) > 1 and star is not None:
                sets = [star]
    return Range(raw, tuple(sets), include_prerelease)


def valid_range(text: str, loose: bool = False) -> str | None:
    """semver.validRange: the desugared range, or None when `text` is not a range."""
    try:
        r = parse_range(text, loose)
    except ValueError:
        return None
    return "||".join(" ".join(c.value for c in s) or "*" for s in r.sets)


def satisfies(
    version: str, range_: str, *, loose: bool = False, include_prerelease: bool = False
) -> bool:
    """semver.satisfies: false (never an error) for an invalid version or range."""
    try:
        r = parse_range(range_, loose, include_prerelease)
    except ValueError:
        return False
    parsed = parse(version, loose)
    return parsed is not None and r.test(parsed)


def max_satisfying(
    versions: list[str], range_: str, *, loose: bool = False, include_prerelease: bool = False
) -> str | None:
    """semver.maxSatisfying: the highest version in the range, or None."""
    try:
        r = parse_range(range_, loose, include_prerelease)
    except ValueError:
        return None
    best: tuple[SemVer, str] | None = None
    for v in versions:
        parsed = parse(v, loose)
        better = best is None or (parsed is not None and parsed.compare(best[0]) > 0)
        if parsed is not None and better and r.test(parsed):
            best = (parsed, v)
    return best[1] if best else None


# -- Graft's patched-build marker --------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class PatchMarker:
    upstream: str  # the version it patches, e.g. "7.5.4" (or "2.0.0-beta.1")
    build: int  # N in -<label>.N


def patched_version(upstream: str, label: str, build: int) -> str:
    """`7.5.4` → `7.5.4-graft.1`; a prerelease upstream `2.0.0-rc.1` → `2.0.0-rc.1.graft.1`."""
    parsed = parse(upstream)
    if parsed is None:
        raise ValueError(f"{upstream!r} is not a valid semver version")
    sep = "." if parsed.prerelease else "-"
    return f"{parsed.version}{sep}{label}.{build}"


def patch_marker(version: SemVer, label: str) -> PatchMarker | None:
    """`7.5.4-graft.3` → (7.5.4, 3); None when the version carries no `<label>.<N>` at the end
    of its prerelease. Raises ValueError for a marker with a bad build number."""
    pre = version.prerelease
    if label not in pre:
        return None
    at = len(pre) - 1 - pre[::-1].index(label)
    tail = pre[at + 1 :]
    if len(tail) != 1 or not isinstance(tail[0], int) or tail[0] < 1:
        base = SemVer(version.major, version.minor, version.patch, pre[:at], ()).version
        raise ValueError(
            f"the prerelease of {version.version} names the label {label!r} but does not end "
            f"in {label}.<N> with N >= 1: use e.g. {patched_version(base, label, 1)}"
        )
    upstream = SemVer(version.major, version.minor, version.patch, pre[:at], ())
    return PatchMarker(upstream=upstream.version, build=tail[0])
