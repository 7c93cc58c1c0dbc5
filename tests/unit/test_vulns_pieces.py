"""The pure parts of graft.vulns: OSV range semantics with each ecosystem's order, severity,
record validation, ecosystem name mapping, npm audit's range exclusion, the version CLI."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

from graft import ecosystems
from graft.ecosystems.npm import versions as npm_versions
from graft.ecosystems.npm.audit import exclude
from graft.settings import Settings
from graft.vulns import osv, severity
from graft.vulns.ranges import affects, describe
from graft.vulns.schemes import by_osv_name, collect

SCHEMES = collect(ecosystems.load(), Settings())
GRAFT = str(Path(sys.executable).with_name("graft"))


def events(*pairs: str) -> list[dict[str, object]]:
    out = []
    for pair in pairs:
        kind, _, version = pair.partition("=")
        out.append({kind: version})
    return [{"type": "ECOSYSTEM", "events": out}]


@pytest.mark.parametrize(
    ("eco", "version", "ranges", "inside"),
    [
        ("pypi", "2.31.0", events("introduced=0", "fixed=2.32.0"), True),
        ("pypi", "2.32.0", events("introduced=0", "fixed=2.32.0"), False),
        ("pypi", "2.32.0rc1", events("introduced=0", "fixed=2.32.0"), True),  # PEP 440
        ("pypi", "2.31.0+graft.1", events("introduced=2.31.0", "fixed=2.31.0+graft.1"), False),
        ("pypi", "1.0", events("introduced=1.0", "last_affected=1.0"), True),
        ("pypi", "1.0.1", events("introduced=1.0", "last_affected=1.0"), False),
        # two windows in one range
        ("pypi", "3.1", events("introduced=1.0", "fixed=2.0", "introduced=3.0", "fixed=3.2"), True),
        (
            "pypi",
            "2.5",
            events("introduced=1.0", "fixed=2.0", "introduced=3.0", "fixed=3.2"),
            False,
        ),
        ("pypi", "5.0", events("introduced=0", "limit=4.0"), False),
        ("npm", "1.2.0-rc.1", events("introduced=1.0.0", "fixed=1.2.0"), True),  # prerelease
        ("npm", "1.2.0", events("introduced=1.0.0", "fixed=1.2.0"), False),
        ("maven", "2.15.2", events("introduced=2.0", "fixed=2.15.3"), True),
        ("maven", "2.15.3-graft.1", events("introduced=2.0", "fixed=2.15.3"), False),
        ("maven", "1.0-SNAPSHOT", events("introduced=1.0", "fixed=2.0"), False),  # before 1.0
        ("debian", "1:1.0-1", events("introduced=0", "fixed=2.0-1"), False),  # epoch wins
        ("debian", "7.88.1-10+deb12u5", events("introduced=0", "fixed=7.88.1-10+deb12u6"), True),
        ("debian", "7.88.1-10+deb12u5~bpo1", events("introduced=7.88.1-10+deb12u5"), False),
        ("alpine", "8.9.1-r1", events("introduced=0", "fixed=8.9.1-r2"), True),
        ("alpine", "8.9.1_rc1-r5", events("introduced=8.9.1", "fixed=8.9.2"), False),  # _rc < ""
        ("alpine", "8.9.1_p1-r0", events("introduced=8.9.1", "fixed=8.9.2"), True),
    ],
)
def test_osv_ranges_in_each_ecosystems_order(
    eco: str, version: str, ranges: list[dict[str, object]], inside: bool
) -> None:
    assert affects(SCHEMES[eco], version, ranges, []) is inside


def test_explicit_versions_match_exactly() -> None:
    assert affects(SCHEMES["debian"], "1.0-1", [], ["1.0-1", "1.0-2"])
    assert not affects(SCHEMES["debian"], "1.0-3", [], ["1.0-1", "1.0-2"])


def test_describe_gives_semver_style_ranges() -> None:
    assert describe(events("introduced=0", "fixed=1.1.1"), []) == "<1.1.1"
    assert describe(events("introduced=1.0.0", "last_affected=1.2.0"), []) == ">=1.0.0 <=1.2.0"
    assert describe(events("introduced=2.0.0"), []) == ">=2.0.0"


def test_npm_audit_cuts_patched_builds_out_of_the_range() -> None:
    cut = exclude(">=1.0.0 <1.1.1", ["1.1.0-graft.1"])
    assert cut == ">=1.0.0 <1.1.1 <1.1.0-graft.1 || >=1.0.0 <1.1.1 >1.1.0-graft.1"
    for version, expected in (("1.1.0", True), ("1.1.0-graft.1", False), ("1.0.0", True)):
        assert npm_versions.satisfies(version, cut, include_prerelease=True) is expected
    assert exclude("<2.0.0", ["3.0.0-graft.1"]) == "<2.0.0"  # outside: unchanged


@pytest.mark.parametrize(
    ("vector", "level", "score"),
    [
        ("CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:U/C:H/I:H/A:H", "critical", 9.8),
        ("CVSS:3.0/AV:N/AC:L/PR:N/UI:N/S:U/C:H/I:N/A:N", "high", 7.5),
        ("CVSS:4.0/AV:N/AC:L/AT:N/PR:N/UI:N/VC:L/VI:L/VA:N/SC:N/SI:N/SA:N", "medium", 6.9),
        ("CVSS:4.0/AV:N/AC:L/AT:P/PR:L/UI:P/VC:L/VI:L/VA:N/SC:N/SI:N/SA:N", "low", 2.1),
    ],
)
def test_cvss_vectors(vector: str, level: str, score: float) -> None:
    found = severity.from_vector(vector)
    assert found is not None and (found.level, found.score) == (level, score)


def test_severity_words_and_garbage() -> None:
    assert severity.from_vector("CVSS:3.1/AV:bogus") is None
    assert severity.of_record({"severity": [{"type": "CVSS_V3", "score": "junk"}]}).level == (
        "unknown"
    )
    assert severity.of_record({"database_specific": {"severity": "MODERATE"}}).level == "medium"
    rec = {"affected": [{"ecosystem_specific": {"urgency": "unimportant"}}]}
    assert severity.of_record(rec).level == "low"


@pytest.mark.parametrize(
    ("osv_name", "expected"),
    [
        ("Debian:12", ("debian", "bookworm")),
        ("Debian:11", ("debian", "bullseye")),
        ("Debian", ("debian", "")),
        ("Ubuntu:22.04:LTS", ("ubuntu", "jammy")),
        ("Ubuntu:24.10", ("ubuntu", "oracular")),
        ("Alpine:v3.20", ("alpine", "3.20")),
        ("PyPI", ("pypi", "")),
        ("Maven", ("maven", "")),
        ("npm", ("npm", "")),
    ],
)
def test_osv_ecosystem_names(osv_name: str, expected: tuple[str, str]) -> None:
    rec = osv.parse(
        {"id": "X-1", "modified": "2024-01-01T00:00:00Z",
         "affected": [{"package": {"ecosystem": osv_name, "name": "Some_Pkg"}}]},
        by_osv_name(SCHEMES),
    )  # fmt: skip
    (affected,) = rec.affected
    assert (affected.ecosystem, affected.distribution) == expected
    if expected[0] == "pypi":
        assert affected.package == "some-pkg"  # PEP 503, as the library stores it


@pytest.mark.parametrize("osv_name", ["Ubuntu:Pro:18.04:LTS", "Debian:99", "crates.io", "Go"])
def test_ecosystems_graft_does_not_serve_are_named(osv_name: str) -> None:
    rec = osv.parse(
        {"id": "X-1", "modified": "2024-01-01T00:00:00Z",
         "affected": [{"package": {"ecosystem": osv_name, "name": "p"}}]},
        by_osv_name(SCHEMES),
    )  # fmt: skip
    assert rec.affected == [] and rec.unknown == [osv_name]


@pytest.mark.parametrize(
    ("record", "problem"),
    [
        ([], "JSON object"),
        ({"modified": "2024-01-01T00:00:00Z"}, "id"),
        ({"id": "X-1"}, "modified"),
        ({"id": "X-1", "modified": "2024-01-01T00:00:00Z", "aliases": "CVE-1"}, "aliases"),
        (
            {"id": "X-1", "modified": "2024-01-01T00:00:00Z",
             "affected": [{"package": {"ecosystem": "PyPI", "name": "p"},
                           "ranges": [{"type": "ECOSYSTEM", "events": [{"fixed": 1}]}]}]},
            "bad event",
        ),
        (
            {"id": "X-1", "modified": "2024-01-01T00:00:00Z",
             "affected": [{"package": {"ecosystem": "PyPI", "name": "p"},
                           "ranges": [{"type": "ECOSYSTEM",
                                       "events": [{"introduced": "0", "fixed": "1"}]}]}]},
            "exactly one",
        ),
    ],
)  # fmt: skip
def test_malformed_records_say_why(record: object, problem: str) -> None:
    with pytest.raises(osv.Malformed, match=problem):
        osv.parse(record, by_osv_name(SCHEMES))


def test_install_commands() -> None:
    assert SCHEMES["npm"].install_command is not None
    assert SCHEMES["npm"].install_command("left-pad", "1.1.0-graft.1", "") == (
        "npm install left-pad@1.1.0-graft.1"
    )
    apt = SCHEMES["debian"].install_command
    assert apt is not None and apt("curl", "7.88.1-10+deb12u8.graft.1", "bookworm") == (
        "apt-get install rootio-curl=7.88.1-10+deb12u8.graft.1"
    )


def test_the_core_never_imports_an_ecosystem() -> None:
    root = Path(__file__).resolve().parents[2] / "src" / "graft"
    for path in [*(root / "vulns").glob("*.py"), root / "api" / "vulns.py"]:
        for node in ast.walk(ast.parse(path.read_text())):
            names = []
            if isinstance(node, ast.ImportFrom) and node.module:
                names = [node.module]
            elif isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            assert not any(n.startswith("graft.ecosystems") for n in names), path


def graft(*args: str, stdin: str = "") -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [GRAFT, *args], input=stdin, capture_output=True, text=True, timeout=60, check=False
    )


def test_version_sort_cli() -> None:
    done = graft("version", "sort", "debian", stdin="1.0-1\n1:0.1-1\n1.0~rc1-1\n1.0-1+b1\n")
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["1.0~rc1-1", "1.0-1", "1.0-1+b1", "1:0.1-1"]
    done = graft("version", "sort", "alpine", "--reverse", stdin="1.0-r1\n1.0_rc1-r0\n1.0_p1-r0\n")
    assert done.stdout.split() == ["1.0_p1-r0", "1.0-r1", "1.0_rc1-r0"]
    assert graft("version", "sort", "cobol").returncode == 2


SEMVER_JSON = '{"type": "SEMVER", "events": [{"introduced": "0"}, {"fixed": "1.0.1"}]}'


@pytest.mark.parametrize(
    ("eco", "version", "range_", "code"),
    [
        ("npm", "1.2.3", "^1.2.0", 0),
        ("npm", "2.0.0", "^1.2.0", 1),
        ("npm", "1.0.0", SEMVER_JSON, 0),
        ("pypi", "2.31.0", "introduced=0,fixed=2.32.0", 0),
        ("pypi", "2.32.0", "introduced=0,fixed=2.32.0", 1),
        ("pypi", "1.5", ">=1.0,<2", 0),
        ("maven", "1.5", "[1.0,2.0)", 0),
        ("maven", "2.0", "[1.0,2.0)", 1),
        ("debian", "7.88.1-10", ">= 7.88.1-1, << 7.88.1-11", 0),
        ("alpine", "8.9.1-r3", "<8.9.1-r2", 1),
        ("pypi", "not a version", ">=1", 2),
        ("npm", "1.0.0", "^^^", 2),
    ],
)  # fmt: skip
def test_version_match_cli(eco: str, version: str, range_: str, code: int) -> None:
    done = graft("version", "match", eco, version, range_)
    assert done.returncode == code, done.stderr
    if code < 2:
        assert done.stdout.strip() == ("yes" if code == 0 else "no")
