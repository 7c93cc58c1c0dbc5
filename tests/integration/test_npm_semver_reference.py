"""Graft's npm version rules against node-semver itself (the pinned `semver` package that
`make npm-clients` installs) on a few thousand generated versions and ranges: validity,
order, and satisfies() with and without loose / includePrerelease."""

from __future__ import annotations

import json
import random
import subprocess

from graft.ecosystems.npm import versions
from tests.fixtures.npm_clients import MODULES, client, node

_PRE = [
    "",
    "-0",
    "-alpha",
    "-alpha.1",
    "-alpha.beta",
    "-beta.2",
    "-rc.1",
    "-graft.1",
    "-rc.1.graft.2",
    "-1.2",
    "-x-y",
    "-01",
    "pre",
]
_BUILD = ["", "", "", "+build", "+b.1", "+001"]
_PARTS = ["0", "1", "2", "10", "01", "x", "*", "X"]


def _version(rng: random.Random) -> str:
    noisy = rng.random() < 0.25  # leading zeros, `v`/`=` prefixes, spaces: loose-only forms
    digits = ["0", "1", "2", "3", "10", "01"] if noisy else ["0", "1", "2", "3"]
    core = ".".join(rng.choice(digits) for _ in range(3))
    lead = rng.choice(["", "v", "=", " ", "v ", "= "]) if noisy else ""
    pre = rng.choice(_PRE) if noisy or rng.random() < 0.4 else ""
    return f"{lead}{core}{pre}{rng.choice(_BUILD)}"


def _partial(rng: random.Random) -> str:
    n = rng.choice([1, 2, 3, 3, 3])
    pool = _PARTS if rng.random() < 0.3 else ["0", "1", "2", "3", "x"]
    parts = [rng.choice(pool) for _ in range(n)]
    pre = rng.choice(_PRE[:9]) if n == 3 and rng.random() < 0.3 else ""
    return ".".join(parts) + pre


def _simple(rng: random.Random) -> str:
    kind = rng.random()
    if kind < 0.25:
        return rng.choice(["", ">", ">=", "<", "<=", "=", "> ", ">= "]) + _partial(rng)
    if kind < 0.45:
        return rng.choice(["^", "~", "~>", "^ ", "~ "]) + _partial(rng)
    if kind < 0.6:
        return f"{_partial(rng)} - {_partial(rng)}"
    if kind < 0.7:
        return rng.choice(["*", "x", "", "latest", "1.2.3 - ", ">=1.0.0 <=", "||", "~1.2.3 ^2"])
    return _partial(rng)


def _range(rng: random.Random) -> str:
    sets = []
    for _ in range(rng.choice([1, 1, 2, 3])):
        sets.append(" ".join(_simple(rng) for _ in range(rng.choice([1, 1, 2]))))
    return rng.choice([" || ", "||", " ||  "]).join(sets)


_SCRIPT = """
const semver = require(process.argv[1]);
const cases = JSON.parse(require('fs').readFileSync(0, 'utf8'));
const out = cases.map(([kind, a, b, opts]) => {
  try {
    if (kind === 'valid') return semver.valid(a, opts);
    if (kind === 'cmp') return semver.compare(a, b, opts);
    return semver.satisfies(a, b, opts);
  } catch (e) { return 'throws'; }
});
process.stdout.write(JSON.stringify(out));
"""


def test_matches_node_semver_on_generated_inputs() -> None:
    client("npm")  # the pinned clients (and semver) are installed
    rng = random.Random(20261201)
    cases: list[list[object]] = []
    for _ in range(1500):
        loose = rng.random() < 0.4
        cases.append(["valid", _version(rng), None, {"loose": loose}])
        cases.append(["cmp", _version(rng), _version(rng), {"loose": loose}])
    for _ in range(3000):
        opts = {"loose": rng.random() < 0.3, "includePrerelease": rng.random() < 0.3}
        cases.append(["sat", _version(rng), _range(rng), opts])
    proc = subprocess.run(
        [node(), "-e", _SCRIPT, str(MODULES / "semver")],
        input=json.dumps(cases),
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    expected = json.loads(proc.stdout)
    mismatches = []
    for (kind, a, b, opts), want in zip(cases, expected, strict=True):
        assert isinstance(a, str) and isinstance(opts, dict)
        loose = bool(opts.get("loose"))
        if kind == "valid":
            got: object = versions.valid(a, loose)
        elif kind == "cmp":
            try:
                got = versions.compare(a, str(b), loose)
            except ValueError:
                got = "throws"
        else:
            got = versions.satisfies(
                a, str(b), loose=loose, include_prerelease=bool(opts.get("includePrerelease"))
            )
        if got != want:
            mismatches.append((kind, a, b, opts, want, got))
    assert mismatches == []
    # the generator reaches every outcome often (a test that cannot fail would prove nothing)
    outcomes = [w for (k, *_), w in zip(cases, expected, strict=True) if k == "sat"]
    assert outcomes.count(True) > 300 and outcomes.count(False) > 300
    assert "throws" in [w for (k, *_), w in zip(cases, expected, strict=True) if k == "cmp"]
