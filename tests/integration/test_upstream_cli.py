"""`graft upstream add|list|remove` and `graft configure`, and a server using what they store."""

from __future__ import annotations

import json
from pathlib import Path

import httpx

from tests.fixtures.simple_index import SimpleIndex
from tests.integration.graftserver import GraftServer, graft_env, run_cli


def test_upstream_lifecycle(tmp_path: Path) -> None:
    env = graft_env(tmp_path / "data")
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "graft.toml").write_text(
        '[[upstream]]\necosystem = "pypi"\nname = "from-file"\n'
        'url = "http://127.0.0.1:9/simple/"\npriority = 50\n'
    )
    added = json.loads(
        run_cli(
            env,
            "upstream",
            "add",
            "mirror",
            "--ecosystem",
            "pypi",
            "--url",
            "http://127.0.0.1:9/other",
            "--username",
            "u",
            "--password",
            "s3cret",
            "--json",
        ).stdout
    )
    assert added["url"] == "http://127.0.0.1:9/other/" and added["password"] == "**********"
    listed = json.loads(run_cli(env, "upstream", "list", "--json").stdout)
    assert [(u["name"], u["source"]) for u in listed] == [
        ("from-file", "config"),
        ("mirror", "database"),
    ]
    assert "s3cret" not in run_cli(env, "upstream", "list").stdout + json.dumps(listed)
    dup = run_cli(
        env, "upstream", "add", "mirror", "--ecosystem", "pypi", "--url", "http://x/", check=False
    )
    assert dup.returncode == 1 and "already exists" in dup.stderr
    bad = run_cli(
        env, "upstream", "add", "x", "--ecosystem", "cobol", "--url", "http://x/", check=False
    )
    assert bad.returncode == 2 and "unknown ecosystem" in bad.stderr
    file_owned = run_cli(env, "upstream", "remove", "from-file", check=False)
    assert file_owned.returncode == 1 and "configuration file" in file_owned.stderr
    run_cli(env, "upstream", "remove", "mirror")
    assert [u["name"] for u in json.loads(run_cli(env, "upstream", "list", "--json").stdout)] == [
        "from-file"
    ]


def test_server_uses_a_stored_upstream_with_credentials(tmp_path: Path, dist_dir: Path) -> None:
    with SimpleIndex(dist_dir / "upstream") as index:
        index.required_auth = ("mirror-user", "mirror-pass")
        srv = GraftServer(tmp_path / "srv")
        srv.data_dir.mkdir(parents=True)
        run_cli(
            srv.env,
            "upstream",
            "add",
            "private-mirror",
            "--ecosystem",
            "pypi",
            "--url",
            index.index_url,
            "--username",
            "mirror-user",
            "--password",
            "mirror-pass",
        )
        srv.start()
        try:
            r = httpx.get(f"{srv.url}/pypi/simple/demo-pkg/", auth=("x", srv.token))
            assert r.status_code == 200 and "demo_pkg-1.0-py3-none-any.whl" in r.text
            wheel = httpx.get(
                f"{srv.url}/pypi/files/demo-pkg/demo_pkg-1.0-py3-none-any.whl",
                auth=("x", srv.token),
            )
            assert wheel.status_code == 200
        finally:
            srv.stop()


def test_configure_prints_client_configuration(tmp_path: Path) -> None:
    env = graft_env(tmp_path)
    url = "https://graft.example.com"
    pip = run_cli(env, "configure", "pip", "--url", url, "--token", "graft_T").stdout
    assert "machine graft.example.com login rootio password graft_T" in pip
    assert "index-url = https://graft.example.com/pypi/simple/" in pip
    uv = run_cli(env, "configure", "uv", "--url", url).stdout
    assert 'url = "https://graft.example.com/pypi/simple/"' in uv and "$GRAFT_TOKEN" in uv
    poetry = run_cli(env, "configure", "poetry", "--url", url).stdout
    assert (
        "poetry source add --priority=primary graft https://graft.example.com/pypi/simple/"
        in poetry
    )
    assert "poetry config http-basic.graft rootio $GRAFT_TOKEN" in poetry
    twine = run_cli(env, "configure", "twine", "--url", url).stdout
    assert "repository = https://graft.example.com/pypi/legacy/" in twine
    bad = run_cli(env, "configure", "pip", "--url", "graft.example.com", check=False)
    assert bad.returncode == 2


def test_configure_apt(tmp_path: Path) -> None:
    env = graft_env(tmp_path)
    out = run_cli(
        env,
        "configure",
        "apt",
        "--url",
        "https://graft.example.com",
        "--distro",
        "ubuntu",
        "--codename",
        "noble",
    ).stdout
    assert (
        "deb [signed-by=/etc/apt/keyrings/graft.gpg] https://graft.example.com/ubuntu/noble "
        "noble main"
    ) in out
    assert "machine https://graft.example.com/ubuntu login rootio password $GRAFT_TOKEN" in out
    assert "--mount=type=secret,id=graft_token" in out and "rm -f /etc/apt/auth.conf.d" in out


def test_configure_apk(tmp_path: Path) -> None:
    out = run_cli(
        graft_env(tmp_path),
        "configure",
        "apk",
        "--url",
        "https://graft.example.com",
        "--release",
        "3.21",
    ).stdout
    assert "https://root:$GRAFT_TOKEN@graft.example.com/alpine/3.21" in out
    assert "/keys/apk-key-name" in out and "--mount=type=secret,id=graft_token" in out
