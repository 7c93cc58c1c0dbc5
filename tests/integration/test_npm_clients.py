"""Real clients against `graft serve`: npm (install, ci with a lockfile, publish, dist-tag,
whoami, ping, search, audit), pnpm, Yarn classic and Yarn Berry — configured with what
`graft configure npm|yarn` prints, talking only to Graft (and Graft only to the local upstream
registry the tests start)."""

from __future__ import annotations

import json
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.fixtures.npm_clients import client, js_env, node, pnpm, run, version_of
from tests.fixtures.npm_packages import make_package
from tests.fixtures.npm_registry import NpmRegistry
from tests.integration.graftserver import GraftServer

DEPS = {"@acme/util": "^2.0.0", "is-thing": "^3.0.0"}


def configure(srv: GraftServer, name: str, token: str) -> str:
    return srv.cli("configure", name, "--url", srv.url, "--token", token).stdout


def berry_config(srv: GraftServer, token: str) -> str:
    """The Yarn 2+ block of `graft configure yarn`, plus what a test project needs."""
    lines = configure(srv, "yarn", token).splitlines()
    start = lines.index("# Yarn 2+ (Berry): .yarnrc.yml in the project") + 1
    block = []
    for line in lines[start:]:
        if not line.strip():
            break
        if not line.startswith("#"):
            block.append(line)
    return "\n".join([*block, "nodeLinker: node-modules", "enableGlobalCache: false", ""])


def project(root: Path, name: str, deps: dict[str, str], **extra: Any) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    manifest = {"name": name, "version": "1.0.0", "private": True, "dependencies": deps, **extra}
    (root / "package.json").write_text(json.dumps(manifest, indent=2))
    return root


def installed_version(proj: Path, package: str) -> str:
    data = json.loads((proj / "node_modules" / package / "package.json").read_text())
    return str(data["version"])


def required(proj: Path, package: str, env: dict[str, str]) -> dict[str, str]:
    """What `require(package)` gives inside the project: the test packages export their
    name and version, so this proves the installed code is the expected build."""
    script = f"console.log(JSON.stringify(require({json.dumps(package)})))"
    out = run([node(), "-e", script], env, proj).stdout
    loaded: dict[str, str] = json.loads(out)
    return loaded


@pytest.fixture
def home(tmp_path: Path) -> Path:
    return tmp_path / "home"


PATCHED = "1.1.0-graft.7"


@pytest.fixture(scope="module")
def patched_left_pad(npm_graft: GraftServer, tmp_path_factory: pytest.TempPathFactory) -> str:
    """A patched build of an upstream package, published with `graft publish npm`."""
    tgz = make_package(tmp_path_factory.mktemp("patched"), "left-pad", PATCHED)
    npm_graft.cli(
        "publish",
        "npm",
        str(tgz),
        "--url",
        npm_graft.url,
        "--token",
        npm_graft.token,
        "--fixes",
        "CVE-2024-0007",
        "--tag",
        "patched",
    )
    return PATCHED


def test_npm_install_then_ci_from_the_lockfile(
    npm_graft: GraftServer, npm_upstream: NpmRegistry, tmp_path: Path, home: Path
) -> None:
    env = js_env(home)
    proj = project(tmp_path / "app", "app", DEPS)
    (proj / ".npmrc").write_text(configure(npm_graft, "npm", npm_graft.token))
    run([*client("npm"), "install", "--no-audit"], env, proj)
    assert installed_version(proj, "@acme/util") == "2.0.0"
    assert installed_version(proj, "left-pad") == "1.1.0"  # ^1.0.0 and ~1.1.0, not the beta
    assert required(proj, "is-thing", env) == {"name": "is-thing", "version": "3.2.1"}

    lock = json.loads((proj / "package-lock.json").read_text())
    entry = lock["packages"]["node_modules/left-pad"]
    assert entry["resolved"] == f"{npm_graft.url}/npm/left-pad/-/left-pad-1.1.0.tgz"
    assert entry["integrity"] == npm_upstream.packages["left-pad"]["1.1.0"].integrity
    assert lock["packages"]["node_modules/@acme/util"]["resolved"].startswith(npm_graft.url)

    # npm ci in a fresh checkout with an empty cache installs exactly the lockfile
    fresh = tmp_path / "ci"
    fresh.mkdir()
    for f in ("package.json", "package-lock.json", ".npmrc"):
        shutil.copy(proj / f, fresh / f)
    ci_env = js_env(tmp_path / "home-ci")
    run([*client("npm"), "ci", "--no-audit"], ci_env, fresh)
    assert installed_version(fresh, "left-pad") == "1.1.0"
    assert required(fresh, "@acme/util", ci_env)["version"] == "2.0.0"

    # npm audit talks to Graft's audit endpoints and finds nothing to report (yet)
    audit = run([*client("npm"), "audit"], env, proj)
    assert "found 0 vulnerabilities" in audit.stdout


def test_npm_wrong_token_fails_with_401(npm_graft: GraftServer, tmp_path: Path, home: Path) -> None:
    proj = project(tmp_path / "app", "app", {"left-pad": "^1.0.0"})
    wrong = "graft_" + "A" * 49
    (proj / ".npmrc").write_text(configure(npm_graft, "npm", wrong))
    proc = run([*client("npm"), "install", "--no-audit"], js_env(home), proj, ok=False)
    assert proc.returncode != 0
    assert "E401" in proc.stderr
    assert "invalid, expired or revoked token" in proc.stderr
    whoami = run(
        [*client("npm"), "whoami", "--registry", f"{npm_graft.url}/npm/"],
        js_env(home),
        proj,
        ok=False,
    )
    assert whoami.returncode != 0 and "401" in whoami.stderr


def _publishable(root: Path, name: str, version: str) -> Path:
    tgz = make_package(root / "tgz", name, version)
    src = root / "src" / name.replace("/", "_") / version
    src.mkdir(parents=True)
    shutil.unpack_archive(tgz, src)
    return src / "package"


def test_npm_publish_private_and_patched_builds(
    npm_graft: GraftServer, tmp_path: Path, home: Path
) -> None:
    env = js_env(home)
    npmrc = configure(npm_graft, "npm", npm_graft.token)
    (home / ".npmrc").write_text(npmrc)  # user config: publish and install use it

    tool = _publishable(tmp_path, "@corp/tool", "1.0.0")
    published = run([*client("npm"), "publish"], env, tool)
    assert "+ @corp/tool@1.0.0" in published.stdout
    again = run([*client("npm"), "publish"], env, tool, ok=False)
    assert again.returncode != 0 and "cannot publish over" in again.stderr.lower()
    forced = run([*client("npm"), "publish", "--force"], env, tool, ok=False)
    assert "409" in forced.stderr and "previously published version" in forced.stderr

    patched = _publishable(tmp_path, "left-pad", "1.1.0-graft.1")
    run([*client("npm"), "publish", "--tag", "patched"], env, patched)
    tags = run([*client("npm"), "dist-tag", "ls", "left-pad"], env, tmp_path).stdout
    assert "patched: 1.1.0-graft.1" in tags and "latest: 1.1.0" in tags

    # an exact pin gets the patched build; an override reaches the transitive dependency;
    # an ordinary range never does
    pinned = project(
        tmp_path / "pinned", "pinned", {"left-pad": "1.1.0-graft.1", "@corp/tool": "^1.0.0"}
    )
    run([*client("npm"), "install", "--no-audit"], env, pinned)
    assert required(pinned, "left-pad", env)["version"] == "1.1.0-graft.1"
    assert required(pinned, "@corp/tool", env)["version"] == "1.0.0"
    override = project(
        tmp_path / "override",
        "override",
        {"is-thing": "^3.0.0"},
        overrides={"left-pad": "1.1.0-graft.1"},
    )
    run([*client("npm"), "install", "--no-audit"], env, override)
    assert installed_version(override, "left-pad") == "1.1.0-graft.1"
    plain = project(tmp_path / "plain", "plain", {"left-pad": "^1.1.0"})
    run([*client("npm"), "install", "--no-audit"], env, plain)
    assert installed_version(plain, "left-pad") == "1.1.0"


def test_npm_dist_tag_whoami_ping_search(
    npm_graft: GraftServer, tmp_path: Path, home: Path
) -> None:
    env = js_env(home)
    (home / ".npmrc").write_text(configure(npm_graft, "npm", npm_graft.token))
    npm = client("npm")
    assert run([*npm, "whoami"], env, tmp_path).stdout.strip() == "admin"
    assert "PONG" in run([*npm, "ping"], env, tmp_path).stderr
    run([*npm, "dist-tag", "add", "left-pad@1.0.0", "old"], env, tmp_path)
    assert "old: 1.0.0" in run([*npm, "dist-tag", "ls", "left-pad"], env, tmp_path).stdout
    run([*npm, "dist-tag", "rm", "left-pad", "old"], env, tmp_path)
    assert "old:" not in run([*npm, "dist-tag", "ls", "left-pad"], env, tmp_path).stdout
    found = run([*npm, "search", "--json", "left"], env, tmp_path).stdout
    assert "left-pad" in [p["name"] for p in json.loads(found)]
    login = run([*npm, "login"], env, tmp_path, ok=False)  # no prompt: a clear refusal
    assert login.returncode != 0 and "graft configure npm" in login.stderr


def test_pnpm_install_and_401(
    npm_graft: GraftServer, patched_left_pad: str, tmp_path: Path, home: Path
) -> None:
    env = js_env(home)
    proj = project(tmp_path / "app", "app", DEPS)
    (proj / ".npmrc").write_text(configure(npm_graft, "pnpm", npm_graft.token))
    run([*pnpm(home), "install"], env, proj)
    assert required(proj, "@acme/util", env)["version"] == "2.0.0"
    lock = (proj / "pnpm-lock.yaml").read_text()
    assert "left-pad@1.1.0" in lock and "integrity: sha512-" in lock
    assert required(proj, "is-thing", env)["version"] == "3.2.1"

    # pnpm.overrides moves the transitive dependency to the patched build
    over = project(tmp_path / "over", "over", {"is-thing": "^3.0.0"})
    (over / "pnpm-workspace.yaml").write_text(f"overrides:\n  left-pad: {patched_left_pad}\n")
    (over / ".npmrc").write_text(configure(npm_graft, "pnpm", npm_graft.token))
    run([*pnpm(home), "install"], env, over)
    assert f"left-pad@{patched_left_pad}" in (over / "pnpm-lock.yaml").read_text()

    bad = project(tmp_path / "bad", "bad", {"left-pad": "^1.0.0"})
    (bad / ".npmrc").write_text(configure(npm_graft, "pnpm", "graft_" + "B" * 49))
    bad_home = tmp_path / "home-bad"
    proc = run([*pnpm(bad_home), "install"], js_env(bad_home), bad, ok=False)
    assert proc.returncode != 0
    assert "ERR_PNPM_FETCH_401" in proc.stdout + proc.stderr


def test_yarn_classic_install_and_401(
    npm_graft: GraftServer, patched_left_pad: str, tmp_path: Path, home: Path
) -> None:
    env = js_env(home)
    proj = project(tmp_path / "app", "app", DEPS)
    (proj / ".npmrc").write_text(configure(npm_graft, "npm", npm_graft.token))
    run([*client("yarn-classic"), "install", "--non-interactive"], env, proj)
    assert installed_version(proj, "left-pad") == "1.1.0"
    lock = (proj / "yarn.lock").read_text()
    assert f'resolved "{npm_graft.url}/npm/left-pad/-/left-pad-1.1.0.tgz' in lock

    # resolutions move the transitive dependency to the patched build
    over = project(
        tmp_path / "over",
        "over",
        {"is-thing": "^3.0.0"},
        resolutions={"left-pad": patched_left_pad},
    )
    (over / ".npmrc").write_text(configure(npm_graft, "npm", npm_graft.token))
    run([*client("yarn-classic"), "install", "--non-interactive"], env, over)
    assert installed_version(over, "left-pad") == patched_left_pad

    bad = project(tmp_path / "bad", "bad", {"left-pad": "^1.0.0"})
    (bad / ".npmrc").write_text(configure(npm_graft, "npm", "graft_" + "C" * 49))
    proc = run(
        [*client("yarn-classic"), "install", "--non-interactive"],
        js_env(tmp_path / "home-bad"),
        bad,
        ok=False,
    )
    assert proc.returncode != 0
    assert "/npm/left-pad: invalid, expired or revoked token" in proc.stderr


def test_yarn_berry_install_and_401(
    npm_graft: GraftServer, patched_left_pad: str, tmp_path: Path, home: Path
) -> None:
    env = js_env(home)
    proj = project(tmp_path / "app", "app", DEPS)
    (proj / ".yarnrc.yml").write_text(berry_config(npm_graft, npm_graft.token))
    (proj / "yarn.lock").touch()
    run([*client("yarn-berry"), "install"], env, proj)
    assert required(proj, "is-thing", env)["version"] == "3.2.1"
    assert installed_version(proj, "left-pad") == "1.1.0"
    assert "left-pad@npm:1.1.0" in (proj / "yarn.lock").read_text()
    whoami = run([*client("yarn-berry"), "npm", "whoami"], env, proj).stdout
    assert "admin" in whoami

    over = project(
        tmp_path / "over",
        "over",
        {"is-thing": "^3.0.0"},
        resolutions={"left-pad": patched_left_pad},
    )
    config = berry_config(npm_graft, npm_graft.token)
    (over / ".yarnrc.yml").write_text(config)
    (over / "yarn.lock").touch()
    # Yarn 4 quarantines versions younger than a day, as `graft configure yarn` explains
    held = run([*client("yarn-berry"), "install"], env, over, ok=False)
    assert held.returncode != 0 and "quarantined" in held.stdout
    approved = f'npmPreapprovedPackages: ["left-pad@{patched_left_pad}"]\n'
    (over / ".yarnrc.yml").write_text(config + approved)
    run([*client("yarn-berry"), "install"], env, over)
    assert required(over, "left-pad", env)["version"] == patched_left_pad

    bad = project(tmp_path / "bad", "bad", {"left-pad": "^1.0.0"})
    (bad / ".yarnrc.yml").write_text(berry_config(npm_graft, "graft_" + "D" * 49))
    (bad / "yarn.lock").touch()
    proc = run([*client("yarn-berry"), "install"], js_env(tmp_path / "home-bad"), bad, ok=False)
    assert proc.returncode != 0
    assert "YN0041" in proc.stdout and "Invalid authentication" in proc.stdout  # its 401 text


@pytest.fixture(scope="module", autouse=True)
def _versions_in_report(request: pytest.FixtureRequest) -> Iterator[None]:
    yield
    if request.config.getoption("verbose") > 0:
        names = ("npm", "pnpm", "yarn-classic", "yarn-berry")
        print("clients:", ", ".join(f"{n} {version_of(n)}" for n in names))
