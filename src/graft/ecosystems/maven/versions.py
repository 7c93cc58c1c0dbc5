"""Maven version rules: `ComparableVersion` order, version ranges, the patched-build marker.

Order follows Maven's `ComparableVersion` (the Maven 4 line, which every row of the shared
vectors checks): a version splits at `.`, `-` and letter/digit transitions into numbers,
qualifiers and nested lists; the well-known qualifiers sort
`alpha < beta < milestone < rc = cr < snapshot < "" = ga = final = release < sp`, and unknown
qualifiers sort after them, alphabetically. Written by hand: no Python library implements it.

Ranges follow Maven's range syntax: `[1.0,2.0)`, `[1.0]`, `(,1.0]`, `[1.2,)`, several joined
by commas (`(,1.0],[1.2,)`), and a bare `1.0` (a soft requirement that any version meets).

A patched build of upstream version V is `V-<label>.<N>` (e.g. `2.15.2-graft.1`): it sorts
after V (an unknown qualifier is newer than the release) and before the next upstream release.
"""

from __future__ import annotations

import functools
import itertools
import re
import unicodedata
from collections.abc import Iterable
from dataclasses import dataclass

MAX_LENGTH = 256  # Maven refuses longer version strings

_INT, _STRING, _LIST, _COMBINATION = range(4)
_QUALIFIERS = ("alpha", "beta", "milestone", "rc", "snapshot", "", "sp")
_RELEASE = ("ga", "final", "release")
_RELEASE_INDEX = str(_QUALIFIERS.index(""))


class InvalidVersion(ValueError):
    pass


def _java_compare(a: str, b: str) -> int:
    """Java's String.compareTo (UTF-16 code units), as a sign."""
    if a.isascii() and b.isascii():
        x, y = a, b
        return (x > y) - (x < y)
    ea, eb = a.encode("utf-16-be"), b.encode("utf-16-be")
    return (ea > eb) - (ea < eb)


def _is_unicode_digit(c: str) -> bool:
    # Java's Character.isDigit(char): a BMP character of category Nd.
    return ord(c) <= 0xFFFF and unicodedata.category(c) == "Nd"


def _comparable_qualifier(q: str) -> str:
    if q in _RELEASE:
        return _RELEASE_INDEX
    try:
        return str(_QUALIFIERS.index(q))
    except ValueError:
        return f"{len(_QUALIFIERS)}-{q}"


class _Item:
    kind: int

    def is_null(self) -> bool:
        raise NotImplementedError

    def cmp(self, other: _Item | None) -> int:
        raise NotImplementedError


class _Number(_Item):
    kind = _INT
    __slots__ = ("value",)

    def __init__(self, value: int) -> None:
        self.value = value

    def is_null(self) -> bool:
        return self.value == 0

    def cmp(self, other: _Item | None) -> int:
        if other is None:
            return 0 if self.value == 0 else 1
        if isinstance(other, _Number):
            return (self.value > other.value) - (self.value < other.value)
        return 1  # 1.1 > 1-sp, 1.1 > 1-1, 1.1 > 1.any

    def __repr__(self) -> str:
        return str(self.value)


class _String(_Item):
    kind = _STRING
    __slots__ = ("value",)

    def __init__(self, value: str, followed_by_digit: bool) -> None:
        if followed_by_digit and len(value) == 1:
            value = {"a": "alpha", "b": "beta", "m": "milestone"}.get(value, value)
        self.value = "rc" if value == "cr" else value

    def is_null(self) -> bool:
        return not self.value

    def cmp(self, other: _Item | None) -> int:
        if other is None:  # 1-rc < 1, 1-ga = 1, 1-sp > 1
            return _java_compare(_comparable_qualifier(self.value), _RELEASE_INDEX)
        if isinstance(other, _Number):
            return -1
        if isinstance(other, _String):
            return _java_compare(
                _comparable_qualifier(self.value), _comparable_qualifier(other.value)
            )
        if isinstance(other, _Combination):
            result = self.cmp(other.string)
            if result == 0:
                if self.cmp(None) == 0:
                    return -other.digits.cmp(None)
                return -1
            return result
        return -other.cmp(self)

    def __repr__(self) -> str:
        return self.value


class _Combination(_Item):
    """A qualifier with a number, `rc1` or `alpha-2`: compared as the pair."""

    kind = _COMBINATION
    __slots__ = ("digits", "string")

    def __init__(self, value: str) -> None:
        index = next((i for i, c in enumerate(value) if _is_unicode_digit(c)), 0)
        self.string = _String(value[:index], True)
        self.digits = _number(value[index:])

    def is_null(self) -> bool:
        return False

    def cmp(self, other: _Item | None) -> int:
        if other is None:  # 1-rc1 < 1, 1-ga1 > 1
            result = self.string.cmp(None)
            return self.digits.cmp(None) if result == 0 else result
        if isinstance(other, _Number):
            return -1
        if isinstance(other, _String):
            result = self.string.cmp(other)
            if result == 0:
                return self.digits.cmp(None) if self.string.cmp(None) == 0 else 1
            return result
        if isinstance(other, _Combination):
            result = self.string.cmp(other.string)
            return self.digits.cmp(other.digits) if result == 0 else result
        return -other.cmp(self)

    def __repr__(self) -> str:
        return f"{self.string!r}{self.digits!r}"


class _List(_Item):
    kind = _LIST
    __slots__ = ("items",)

    def __init__(self) -> None:
        self.items: list[_Item] = []

    def is_null(self) -> bool:
        return not self.items

    def normalize(self) -> None:
        items = self.items
        for i in range(len(items) - 1, -1, -1):
            if not items[i].is_null():
                continue
            if i == len(items) - 1 or items[i + 1].kind == _STRING:
                del items[i]
            else:
                after = items[i + 1]
                if (
                    isinstance(after, _List)
                    and after.items
                    and after.items[0].kind in (_COMBINATION, _STRING)
                ):
                    del items[i]
        if len(items) == 1 and isinstance(items[0], _List):
            # removing a zero prefix must not leave an extra qualifier nesting level
            self.items = items[0].items

    def cmp(self, other: _Item | None) -> int:
        items = self.items
        if other is None:  # 1-0 = 1; the whole list counts (MNG-6964)
            for item in items:
                result = item.cmp(None)
                if result:
                    return result
            return 0
        if isinstance(other, _Number):
            return -1  # 1-1 < 1.0.x
        if isinstance(other, _String | _Combination):
            result = -other.cmp(None) if not items else items[0].cmp(other)
            for item in items[1:]:
                if result:
                    break
                result = item.cmp(None)
            return result
        assert isinstance(other, _List)
        theirs = other.items
        for i in range(max(len(items), len(theirs))):
            left = items[i] if i < len(items) else None
            right = theirs[i] if i < len(theirs) else None
            if left is not None:
                result = left.cmp(right)
            else:  # this list is shorter: compare the other's item with "nothing", inverted
                result = 0 if right is None else -right.cmp(None)
            if result:
                return result
        return 0

    def __repr__(self) -> str:
        return "[" + ", ".join(repr(i) for i in self.items) + "]"


def _number(text: str) -> _Number:
    try:
        return _Number(int(text.lstrip("0") or "0"))
    except ValueError:
        raise InvalidVersion(f"{text!r} is not a number") from None


def _item(combination: bool, digit: bool, text: str) -> _Item:
    if combination:
        return _Combination(text.replace("-", ""))
    if digit:
        return _number(text)
    return _String(text, False)


def _parse(version: str) -> _List:
    if len(version) > MAX_LENGTH:
        raise InvalidVersion(f"a Maven version is at most {MAX_LENGTH} characters")
    version = version.lower()
    top = current = _List()
    stack = [top]
    digit = combination = False
    start = 0

    def descend() -> None:
        nonlocal current
        if current.items:
            nested = _List()
            current.items.append(nested)
            current = nested
            stack.append(nested)

    n = len(version)
    for i, c in enumerate(version):
        if c == ".":
            current.items.append(
                _Number(0) if i == start else _item(combination, digit, version[start:i])
            )
            combination = False
            start = i + 1
        elif c == "-":
            if i == start:
                current.items.append(_Number(0))
            else:
                # X-1 is read as X1
                if not digit and i != n - 1 and _is_unicode_digit(version[i + 1]):
                    combination = True
                    continue
                current.items.append(_item(combination, digit, version[start:i]))
            start = i + 1
            descend()
            combination = False
        elif "0" <= c <= "9":
            if not digit and i > start:  # X1
                combination = True
                descend()
            digit = True
        else:
            if digit and i > start:
                current.items.append(_item(combination, True, version[start:i]))
                start = i
                nested = _List()
                current.items.append(nested)
                current = nested
                stack.append(nested)
                combination = False
            digit = False
    if n > start:
        if not digit and current.items:  # 1.0.0.X1 < 1.0.0-X2: .X reads as -X
            descend()
        current.items.append(_item(combination, digit, version[start:]))
    while stack:
        stack.pop().normalize()
    return top


@functools.total_ordering
class MavenVersion:
    """A parsed version; compares the way Maven's ComparableVersion does."""

    __slots__ = ("_items", "text")

    def __init__(self, text: str) -> None:
        self.text = text
        self._items = _parse(text)

    def compare(self, other: MavenVersion) -> int:
        return self._items.cmp(other._items)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, MavenVersion) and self.compare(other) == 0

    def __lt__(self, other: MavenVersion) -> bool:
        return self.compare(other) < 0

    def __hash__(self) -> int:  # equal versions (1.0 and 1) need not share a hash: unhashable
        raise TypeError("MavenVersion is not hashable; use its text")

    def __repr__(self) -> str:
        return f"MavenVersion({self.text!r})"

    @property
    def is_snapshot(self) -> bool:
        return self.text.endswith("-SNAPSHOT")


@functools.lru_cache(maxsize=65536)
def parse(version: str) -> MavenVersion:
    """Parse (cached); raises InvalidVersion."""
    return MavenVersion(version)


def compare(a: str, b: str) -> int:
    return parse(a).compare(parse(b))


def sort_key(version: str) -> tuple[int, MavenVersion | str]:
    """Maven order; versions that do not parse sort first, by their text."""
    try:
        return (1, parse(version))
    except InvalidVersion:
        return (0, version)


def is_snapshot(version: str) -> bool:
    return version.endswith("-SNAPSHOT")


# -- ranges ---------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Restriction:
    lower: str | None
    lower_inclusive: bool
    upper: str | None
    upper_inclusive: bool

    def contains(self, version: str) -> bool:
        if self.lower is not None:
            c = compare(version, self.lower)
            if c < 0 or (c == 0 and not self.lower_inclusive):
                return False
        if self.upper is not None:
            c = compare(version, self.upper)
            if c > 0 or (c == 0 and not self.upper_inclusive):
                return False
        return True

    def __str__(self) -> str:
        if self.lower is not None and self.lower == self.upper:
            return f"[{self.lower}]"
        return (
            ("[" if self.lower_inclusive else "(")
            + (self.lower or "")
            + ","
            + (self.upper or "")
            + ("]" if self.upper_inclusive else ")")
        )


@dataclass(frozen=True, slots=True)
class VersionRange:
    """A Maven version specification: restrictions, or a soft (recommended) version."""

    restrictions: tuple[Restriction, ...]
    recommended: str | None = None

    def contains(self, version: str) -> bool:
        if self.recommended is not None:
            return True  # a bare version is a preference, not a restriction
        return any(r.contains(version) for r in self.restrictions)

    def select(self, versions: Iterable[str]) -> str | None:
        """The version Maven resolves: the recommended one, else the highest that matches."""
        if self.recommended is not None:
            return self.recommended
        matching = [v for v in versions if self.contains(v)]
        return max(matching, key=sort_key) if matching else None

    def __str__(self) -> str:
        if self.recommended is not None:
            return self.recommended
        return ",".join(str(r) for r in self.restrictions)


_BOUND = re.compile(r"\s*([\[(])([^\[\]()]*)([\])])\s*")


def parse_range(spec: str) -> VersionRange:
    """Parse Maven range syntax; raises InvalidVersion with Maven's reasons."""
    text = spec.strip()
    if not text:
        raise InvalidVersion("an empty version range")
    if text[0] not in "[(":
        if any(c in text for c in "[](),"):
            raise InvalidVersion(f"{spec!r}: a range must start with [ or (")
        parse(text)
        return VersionRange((), recommended=text)
    restrictions: list[Restriction] = []
    pos = 0
    while pos < len(text):
        m = _BOUND.match(text, pos)
        if m is None:
            raise InvalidVersion(f"{spec!r}: unbalanced brackets near {text[pos:]!r}")
        restrictions.append(_restriction(m.group(1), m.group(2), m.group(3), spec))
        pos = m.end()
        if pos < len(text):
            if text[pos] != ",":
                raise InvalidVersion(f"{spec!r}: ranges must be separated by commas")
            pos += 1
            if pos >= len(text):
                raise InvalidVersion(f"{spec!r}: a trailing comma")
    for before, after in itertools.pairwise(restrictions):
        if before.upper is None or after.lower is None:
            raise InvalidVersion(f"{spec!r}: ranges overlap")
        c = compare(before.upper, after.lower)
        if c > 0 or (c == 0 and before.upper_inclusive and after.lower_inclusive):
            raise InvalidVersion(f"{spec!r}: ranges overlap")
    return VersionRange(tuple(restrictions))


def _restriction(open_: str, body: str, close: str, spec: str) -> Restriction:
    lower_inclusive, upper_inclusive = open_ == "[", close == "]"
    if "," not in body:
        version = body.strip()
        if not (lower_inclusive and upper_inclusive) or not version:
            raise InvalidVersion(f"{spec!r}: a single version must be written [1.0]")
        parse(version)
        return Restriction(version, True, version, True)
    lower_text, _, upper_text = body.partition(",")
    if "," in upper_text:
        raise InvalidVersion(f"{spec!r}: a range has exactly two bounds")
    lower = lower_text.strip() or None
    upper = upper_text.strip() or None
    if lower is None and lower_inclusive:
        raise InvalidVersion(f"{spec!r}: an unbounded lower end is written (,")
    if upper is None and upper_inclusive:
        raise InvalidVersion(f"{spec!r}: an unbounded upper end is written ,)")
    if lower is not None and upper is not None:
        c = compare(lower, upper)
        if c > 0 or (c == 0 and not (lower_inclusive and upper_inclusive)):
            raise InvalidVersion(f"{spec!r}: the lower bound is above the upper bound")
    for v in (lower, upper):
        if v is not None:
            parse(v)
    return Restriction(lower, lower_inclusive, upper, upper_inclusive)


# -- patched builds -------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class PatchMarker:
    upstream: str  # the public version it patches, e.g. "2.15.2"
    build: int  # N in -label.N


def patch_marker(version: str, label: str) -> PatchMarker | None:
    """`2.15.2-graft.3` → (2.15.2, 3); None when the version carries no label.

    Raises ValueError for a version that mentions the label in another shape, so that a typo
    (`2.15.2.graft.1`, `2.15.2-graft1`, `2.15.2-GRAFT.1`) is refused instead of published as a
    private version.
    """
    m = re.fullmatch(rf"(.+)-{re.escape(label)}\.([1-9][0-9]{{0,8}})", version)
    if m is not None and not is_snapshot(m.group(1)):
        return PatchMarker(upstream=m.group(1), build=int(m.group(2)))
    if re.search(rf"(?i)(^|[.\-_]){re.escape(label)}([.\-_0-9]|$)", version):
        raise ValueError(
            f"version {version!r} mentions {label!r} but is not a patched-build version: "
            f"use <upstream version>-{label}.<N>, e.g. 2.15.2-{label}.1"
        )
    return None
