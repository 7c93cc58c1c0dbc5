"""Real clients against `graft serve`: pip, uv, Poetry and twine, plus `graft publish pypi`."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.fixtures.clients import isolated_env
from tests.fixtures.dists import make_wheel, sha256_file
from tests.integration.graftserver import GraftServer

BIN = Path(sys.executable).parent
TIMEOUT = 240


def run(
    args: list[str], env: dict[str, str], cwd: Path | None = None, ok: bool = True
) -> subprocess.CompletedProcess[str]:
    proc = subprocess.run(
        args,
        env=env,
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=TIMEOUT,
        stdin=subprocess.DEVNULL,
        check=False,
    )
    if ok and proc.returncode != 0:
        raise AssertionError(
            f"{' '.join(args)} failed ({proc.returncode}):\n{proc.stdout}\n{proc.stderr}"
        )
    return proc


def index_url(srv: GraftServer, token: str | None = None) -> str:
    host = srv.url.removeprefix("http://")
    creds = f"rootio:{token}@" if token else ""
    return f"http://{creds}{host}/pypi/simple/"


@pytest.fixture(scope="module")
def patched(pypi_graft: GraftServer, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A patched build published with `graft publish pypi` (the CLI path, with --fixes)."""
    wheel = make_wheel(tmp_path_factory.mktemp("patched"), "httpish", "2.31.0+graft.1")
    proc = pypi_graft.cli(
        "publish",
        "pypi",
        str(wheel),
        "--url",
        pypi_graft.url,
        "--token",
        pypi_graft.token,
        "--fixes",
        "CVE-2024-1111",
    )
    assert "patched build of httpish 2.31.0+graft.1" in proc.stdout
    assert "CVE-2024-1111" in proc.stdout
    return wheel


@pytest.fixture
def home(tmp_path: Path) -> Iterator[Path]:
    yield tmp_path / "home"


def pip(env: dict[str, str], *args: str, ok: bool = True) -> subprocess.CompletedProcess[str]:
    base = [sys.executable, "-m", "pip", args[0], "--no-cache-dir", "--timeout", "20"]
    return run([*base, *args[1:]], env, ok=ok)


def installed(target: Path) -> set[str]:
    """name==version of every distribution installed in a folder."""
    found = set()
    for info in target.glob("*.dist-info"):
        name, version = info.name.removesuffix(".dist-info").split("-", 1)
        found.add(f"{name}=={version}")
    return found


# -- pip --------------------------------------------------------------------------------------
def test_pip_with_netrc_resolves_dependencies(
    pypi_graft: GraftServer, home: Path, tmp_path: Path
) -> None:
    env = isolated_env(home)
    host = pypi_graft.url.removeprefix("http://").split(":")[0]
    (home / ".netrc").write_text(f"machine {host} login rootio password {pypi_graft.token}\n")
    (home / ".netrc").chmod(0o600)
    target = tmp_path / "t"
    pip(env, "install", "--index-url", index_url(pypi_graft), "--target", str(target), "depender")
    assert installed(target) == {"depender==1.0", "httpish==2.32.0"}


def test_pip_pin_installs_the_patched_build(
    pypi_graft: GraftServer, patched: Path, home: Path, tmp_path: Path
) -> None:
    env = isolated_env(home)
    url = index_url(pypi_graft, pypi_graft.token)
    target = tmp_path / "pinned"
    pip(env, "install", "--index-url", url, "--target", str(target), "httpish==2.31.0")
    assert installed(target) == {"httpish==2.31.0+graft.1"}
    # A range still takes the newer upstream release, exactly as PEP 440 says.
    newer = tmp_path / "range"
    pip(env, "install", "--index-url", url, "--target", str(newer), "httpish>=2.31,<3")
    assert installed(newer) == {"httpish==2.32.0"}


def test_pip_require_hashes_and_only_binary(
    pypi_graft: GraftServer, patched: Path, home: Path, tmp_path: Path
) -> None:
    env = isolated_env(home)
    req = tmp_path / "requirements.txt"
    req.write_text(f"httpish==2.31.0+graft.1 --hash=sha256:{sha256_file(patched)}\n")
    target = tmp_path / "hashed"
    pip(
        env,
        "install",
        "--require-hashes",
        "--only-binary",
        ":all:",
        "--index-url",
        index_url(pypi_graft, pypi_graft.token),
        "--target",
        str(target),
        "-r",
        str(req),
    )
    assert installed(target) == {"httpish==2.31.0+graft.1"}
    req.write_text(f"httpish==2.31.0+graft.1 --hash=sha256:{'0' * 64}\n")
    bad = pip(
        env,
        "install",
        "--require-hashes",
        "--index-url",
        index_url(pypi_graft, pypi_graft.token),
        "--target",
        str(tmp_path / "x"),
        "-r",
        str(req),
        ok=False,
    )
    assert bad.returncode != 0 and "THESE PACKAGES DO NOT MATCH THE HASHES" in bad.stderr


def test_pip_wrong_token_and_missing_package(
    pypi_graft: GraftServer, home: Path, tmp_path: Path
) -> None:
    env = isolated_env(home)
    wrong = pip(
        env,
        "install",
        "--index-url",
        index_url(pypi_graft, "graft_wrong"),
        "--target",
        str(tmp_path / "w"),
        "demo-pkg",
        ok=False,
    )
    assert wrong.returncode != 0
    assert "401" in wrong.stdout + wrong.stderr
    missing = pip(
        env,
        "install",
        "--index-url",
        index_url(pypi_graft, pypi_graft.token),
        "--target",
        str(tmp_path / "m"),
        "no-such-package-anywhere",
        ok=False,
    )
    assert missing.returncode != 0
    assert "No matching distribution found for no-such-package-anywhere" in missing.stderr


# -- uv ---------------------------------------------------------------------------------------
def test_uv_pip_install(pypi_graft: GraftServer, patched: Path, home: Path, tmp_path: Path) -> None:
    env = isolated_env(home)
    target = tmp_path / "uvt"
    run(
        [
            str(BIN / "uv"),
            "pip",
            "install",
            "--python",
            sys.executable,
            "--target",
            str(target),
            "--index-url",
            index_url(pypi_graft, pypi_graft.token),
            "httpish==2.31.0",
        ],
        env,
    )
    assert installed(target) == {"httpish==2.31.0+graft.1"}
    wrong = run(
        [
            str(BIN / "uv"),
            "pip",
            "install",
            "--python",
            sys.executable,
            "--target",
            str(tmp_path / "uvw"),
            "--index-url",
            index_url(pypi_graft, "graft_wrong"),
            "demo-pkg",
        ],
        env,
        ok=False,
    )
    assert wrong.returncode != 0 and "401" in wrong.stderr


def test_uv_lock_with_graft_as_the_only_index(
    pypi_graft: GraftServer, home: Path, tmp_path: Path
) -> None:
    project = tmp_path / "app"
    project.mkdir()
    (project / "pyproject.toml").write_text(
        '[project]\nname = "app"\nversion = "0.1.0"\nrequires-python = ">=3.9"\n'
        'dependencies = ["depender>=1.0"]\n\n'
        f'[[tool.uv.index]]\nname = "graft"\nurl = "{index_url(pypi_graft)}"\ndefault = true\n'
    )
    env = isolated_env(
        home, UV_INDEX_GRAFT_USERNAME="rootio", UV_INDEX_GRAFT_PASSWORD=pypi_graft.token
    )
    run([str(BIN / "uv"), "lock", "--python", sys.executable], env, cwd=project)
    lock = (project / "uv.lock").read_text()
    assert 'name = "depender"' in lock and 'name = "httpish"' in lock
    assert f"{pypi_graft.url}/pypi/files/httpish/httpish-2.32.0-py3-none-any.whl" in lock
    env["UV_INDEX_GRAFT_PASSWORD"] = "graft_wrong"
    (project / "uv.lock").unlink()
    wrong = run([str(BIN / "uv"), "lock", "--python", sys.executable], env, cwd=project, ok=False)
    assert wrong.returncode != 0 and "401" in wrong.stderr


# -- Poetry -----------------------------------------------------------------------------------
def test_poetry_lock_and_install(
    pypi_graft: GraftServer, patched: Path, home: Path, tmp_path: Path
) -> None:
    project = tmp_path / "poetryapp"
    project.mkdir()
    (project / "pyproject.toml").write_text(
        '[project]\nname = "poetryapp"\nversion = "0.1.0"\nrequires-python = ">=3.9"\n'
        'dependencies = ["depender (>=1.0)", "httpish (==2.31.0+graft.1)"]\n\n'
        "[tool.poetry]\npackage-mode = false\n"
    )
    env = isolated_env(home)
    poetry = str(BIN / "poetry")
    run(
        [poetry, "source", "add", "--priority=primary", "graft", index_url(pypi_graft)],
        env,
        cwd=project,
    )
    run([poetry, "config", "http-basic.graft", "rootio", pypi_graft.token], env, cwd=project)
    run([poetry, "lock"], env, cwd=project)
    lock = (project / "poetry.lock").read_text()
    assert 'name = "httpish"' in lock and 'version = "2.31.0+graft.1"' in lock
    run([poetry, "env", "use", sys.executable], env, cwd=project)
    run([poetry, "install"], env, cwd=project)
    site = next((project / ".venv" / "lib").glob("python*/site-packages"))
    assert installed(site) >= {"httpish==2.31.0+graft.1", "depender==1.0"}
    run([poetry, "config", "http-basic.graft", "rootio", "graft_wrong"], env, cwd=project)
    (project / "poetry.lock").unlink()
    wrong = run([poetry, "lock"], env, cwd=project, ok=False)
    # Poetry's words for our 401.
    assert wrong.returncode != 0 and "Authorization error accessing" in wrong.stderr


# -- twine ------------------------------------------------------------------------------------
def test_twine_upload(pypi_graft: GraftServer, home: Path, tmp_path: Path) -> None:
    env = isolated_env(home)
    wheel = make_wheel(tmp_path, "demo-pkg", "1.1+graft.1")
    twine = [
        str(BIN / "twine"),
        "upload",
        "--non-interactive",
        "--disable-progress-bar",
        "--repository-url",
        f"{pypi_graft.url}/pypi/legacy/",
    ]
    wrong = run([*twine, "-u", "__token__", "-p", "graft_wrong", str(wheel)], env, ok=False)
    assert wrong.returncode != 0 and "401" in wrong.stdout + wrong.stderr
    run([*twine, "-u", "__token__", "-p", pypi_graft.token, str(wheel)], env)
    target = tmp_path / "tw"
    pip(
        env,
        "install",
        "--index-url",
        index_url(pypi_graft, pypi_graft.token),
        "--target",
        str(target),
        "demo-pkg==1.1",
    )
    assert installed(target) == {"demo_pkg==1.1+graft.1"}
