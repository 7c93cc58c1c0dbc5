"""Alpine (apk) version rules, written from apk-tools' documented behaviour.

A version is `digits{.digits}{letter}{_suffix{digits}}{~hash}{-r digits}`. Two versions are
compared token by token: numbers numerically (but as text when either has a leading zero),
letters by character, suffixes in the order below; when one version runs out first, the longer
one is newer unless its next token is a pre-release suffix. Validation and fuzzy matching (`~`)
follow the same tokenizer. No Python library implements these rules.

These are apk-tools 3's rules (the shared vectors come from apk-tools 3.0). apk-tools 2.14,
the apk of Alpine 3.18 to 3.22, differs: it has no `~<hash>` part (such versions are invalid
there and compare as if they ended before the `~`), caps numbers at 17 digits, and orders a
number with leading zeros by how many zeros it has (more sorts lower), then by value, where
apk 3 compares the digits as text (`8.2.0 < 8.2.001` in apk 3, `>` in 2.14).
`is_valid_apk2` checks both rule sets.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Iterator
from dataclasses import dataclass
from enum import IntEnum


class Tok(IntEnum):
    # The order matters: it is the "which may follow which" and "who is longer" order.
    INITIAL_DIGIT = 0
    DIGIT = 1
    LETTER = 2
    SUFFIX = 3
    SUFFIX_NO = 4
    COMMIT_HASH = 5
    REVISION_NO = 6
    END = 7
    INVALID = 8


# Pre-release suffixes sort before "no suffix"; the others after it.
SUFFIXES = {"alpha": 0, "beta": 1, "pre": 2, "rc": 3, "cvs": 5, "svn": 6, "git": 7, "hg": 8, "p": 9}
NO_SUFFIX = 4

_DIGITS = re.compile(r"[0-9]*")
_SUFFIX_NAME = re.compile(r"[a-z]*")
_HEX = re.compile(r"[0-9a-f]*")


@dataclass(frozen=True, slots=True)
class Token:
    kind: Tok
    text: str = ""
    number: int = 0
    suffix: int = 0


def tokens(version: str) -> Iterator[Token]:
    """The tokens of a version, ending with END or INVALID."""
    pos = 0
    digits = _DIGITS.match(version, pos)
    text = digits.group() if digits else ""
    if not text:
        yield Token(Tok.INVALID)
        return
    prev = Tok.INITIAL_DIGIT
    yield Token(prev, text, int(text))
    pos += len(text)
    while True:
        if pos >= len(version):
            yield Token(Tok.END)
            return
        ch = version[pos]
        tok: Token
        if "a" <= ch <= "z" and prev <= Tok.DIGIT:
            tok, pos = Token(Tok.LETTER, ch), pos + 1
        elif (ch == "." and prev <= Tok.DIGIT) or (ch.isdigit() and ch.isascii()):
            if ch == ".":
                pos += 1
            if prev in (Tok.INITIAL_DIGIT, Tok.DIGIT):
                kind = Tok.DIGIT
            elif prev == Tok.SUFFIX:
                kind = Tok.SUFFIX_NO
            else:
                yield Token(Tok.INVALID)
                return
            m = _DIGITS.match(version, pos)
            text = m.group() if m else ""
            if not text:
                yield Token(Tok.INVALID)
                return
            tok, pos = Token(kind, text, int(text)), pos + len(text)
        elif ch == "_" and prev <= Tok.SUFFIX_NO:
            m = _SUFFIX_NAME.match(version, pos + 1)
            name = m.group() if m else ""
            if name not in SUFFIXES:
                yield Token(Tok.INVALID)
                return
            tok, pos = Token(Tok.SUFFIX, name, suffix=SUFFIXES[name]), pos + 1 + len(name)
        elif ch == "~" and prev < Tok.COMMIT_HASH:
            m = _HEX.match(version, pos + 1)
            text = m.group() if m else ""
            if not text:
                yield Token(Tok.INVALID)
                return
            tok, pos = Token(Tok.COMMIT_HASH, text), pos + 1 + len(text)
        elif ch == "-" and prev < Tok.REVISION_NO and version.startswith("-r", pos):
            m = _DIGITS.match(version, pos + 2)
            text = m.group() if m else ""
            if not text:
                yield Token(Tok.INVALID)
                return
            tok, pos = Token(Tok.REVISION_NO, text, int(text)), pos + 2 + len(text)
        else:
            yield Token(Tok.INVALID)
            return
        yield tok
        prev = tok.kind


def is_valid(version: str) -> bool:
    """Valid by apk-tools 3's rules (the shared test vectors follow apk-tools 3.0)."""
    return all(t.kind != Tok.INVALID for t in tokens(version))


# apk-tools 2.x reads a number into an int64 and refuses one of 18 digits or more.
APK2_MAX_DIGITS = 17


def is_valid_apk2(version: str) -> bool:
    """Valid for apk-tools 3 and for apk-tools 2.14 too, the apk of Alpine 3.18 to 3.22.

    apk 2.14 does not know the `~<hash>` part (it rejects the version) and refuses numbers of
    18 or more digits; after a dot it first sets the leading zeros but the last one apart, so
    only the rest counts there. Its other rules accept more than apk 3 does, never less. A
    version apk 2.14 rejects is dropped from `provides`/`depends` and cannot be pinned, so a
    patched build served to 3.18-3.22 clients must pass both.
    """
    for tok in tokens(version):
        if tok.kind in (Tok.INVALID, Tok.COMMIT_HASH):
            return False
        digits = tok.text
        if tok.kind == Tok.DIGIT and digits.startswith("0"):
            digits = "0" + digits.lstrip("0")
        if tok.kind in (Tok.INITIAL_DIGIT, Tok.DIGIT, Tok.SUFFIX_NO, Tok.REVISION_NO) and (
            len(digits) > APK2_MAX_DIGITS
        ):
            return False
    return True


def _cmp_token(a: Token, b: Token) -> int:
    kind = a.kind
    if kind == Tok.DIGIT and (a.text.startswith("0") or b.text.startswith("0")):
        x: object = a.text.encode()
        y: object = b.text.encode()
    elif kind in (Tok.INITIAL_DIGIT, Tok.DIGIT, Tok.SUFFIX_NO, Tok.REVISION_NO):
        x, y = a.number, b.number
    elif kind == Tok.LETTER:
        x, y = a.text, b.text
    elif kind == Tok.SUFFIX:
        x, y = a.suffix, b.suffix
    else:  # commit hashes: byte order
        x, y = a.text.encode(), b.text.encode()
    result: int = (x > y) - (x < y)  # type: ignore[operator]
    return result


def compare(a: str, b: str, *, fuzzy: bool = False) -> int:
    """-1, 0 or 1. With `fuzzy`, `a` equals `b` when `b` is a prefix of it by tokens
    (apk's `~` operator: 1.2.3 ~ 1.2)."""
    ta, tb = tokens(a), tokens(b)
    x, y = next(ta), next(tb)
    while x.kind == y.kind and x.kind < Tok.END:
        r = _cmp_token(x, y)
        if r:
            return r
        x, y = next(ta), next(tb)
    if x.kind == y.kind:
        return 0
    if fuzzy and y.kind == Tok.END:
        return 0
    # Equal so far: the longer one is newer, unless it continues with a pre-release suffix.
    if x.kind == Tok.SUFFIX and x.suffix < NO_SUFFIX:
        return -1
    if y.kind == Tok.SUFFIX and y.suffix < NO_SUFFIX:
        return 1
    if x.kind > y.kind:
        return -1
    if y.kind > x.kind:
        return 1
    return 0


def matches(a: str, op: str, b: str) -> bool:
    """apk's version operators: <, <=, =, >=, >, ~, <~, >~ and !~ (not ~)."""
    negate = op.startswith("!")
    op = op.removeprefix("!")
    if not op or any(c not in "<>=~" for c in op):
        raise ValueError(f"unknown apk version operator {op!r}")
    r = compare(a, b, fuzzy="~" in op)
    allowed = {-1} if "<" in op else set()
    if ">" in op:
        allowed.add(1)
    if "=" in op or "~" in op:
        allowed.add(0)
    return (r in allowed) != negate


sort_key = functools.cmp_to_key(compare)
