"""The `graft` command line, run as a user runs it."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.integration.graftserver import graft_env, run_cli


@pytest.fixture
def env(tmp_path: Path) -> dict[str, str]:
    return graft_env(tmp_path / "data")


def cli_json(env: dict[str, str], *args: str):  # type: ignore[no-untyped-def]
    return json.loads(run_cli(env, *args, "--json").stdout)


def test_init_demo_prints_a_token_once(env: dict[str, str]) -> None:
    first = run_cli(env, "init", "--demo").stdout
    assert "graft_" in first and "shown once" in first
    again = run_cli(env, "init", "--demo").stdout
    assert "already exists" in again and "graft_" not in again.replace("graft token", "")
    (data_dir,) = {Path(env["GRAFT_DATA_DIR"])}
    assert (data_dir / "graft.db").exists()


def test_org_account_token_lifecycle(env: dict[str, str]) -> None:
    org = cli_json(env, "org", "create", "acme")
    assert org["name"] == "acme"
    assert [o["name"] for o in cli_json(env, "org", "list")] == ["acme"]
    acc = cli_json(env, "account", "create", "ci", "--org", "acme", "--service")
    assert acc["kind"] == "service"
    assert [a["name"] for a in cli_json(env, "account", "list", "--org", "acme")] == ["ci"]

    new = cli_json(
        env,
        "token",
        "create",
        "--org",
        "acme",
        "--account",
        "ci",
        "-s",
        "read",
        "-s",
        "publish",
        "--expires",
        "30d",
        "--name",
        "deploy",
    )
    assert new["token"].startswith("graft_") and new["info"]["scopes"] == ["read", "publish"]
    listed = cli_json(env, "token", "list", "--org", "acme")
    assert [t["prefix"] for t in listed] == [new["token"][:12]]
    assert new["token"] not in json.dumps(listed)

    rotated = cli_json(env, "token", "rotate", str(new["info"]["id"]), "--grace", "2h")
    assert rotated["previous_valid_until"] and rotated["token"] != new["token"]
    revoked = cli_json(env, "token", "revoke", str(rotated["info"]["id"]), "--org", "acme")
    assert revoked["status"] == "revoked"
    statuses = {t["id"]: t["status"] for t in cli_json(env, "token", "list", "--org", "acme")}
    assert statuses == {new["info"]["id"]: "expiring", rotated["info"]["id"]: "revoked"}


def test_tables_for_people(env: dict[str, str]) -> None:
    run_cli(env, "org", "create", "acme")
    run_cli(env, "account", "create", "alice", "--org", "acme")
    out = run_cli(
        env, "token", "create", "--org", "acme", "--account", "alice", "-s", "read"
    ).stdout
    assert "shown once" in out
    table = run_cli(env, "token", "list", "--org", "acme").stdout
    assert "alice" in table and "active" in table and "prefix" in table


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (["org", "create", "Bad Name"], "invalid organization name"),
        (["account", "create", "bob", "--org", "nope"], "organization 'nope' not found"),
        (["token", "create", "--org", "acme", "--account", "ghost", "-s", "read"], "ghost"),
        (["token", "create", "--org", "acme", "--account", "ci", "-s", "root"], "unknown scope"),
        (["token", "revoke", "999"], "token 999 not found"),
        (
            [
                "token",
                "create",
                "--org",
                "acme",
                "--account",
                "ci",
                "-s",
                "read",
                "--expires",
                "soon",
            ],
            "not a duration",
        ),
    ],
)
def test_errors_are_one_clear_line_and_write_nothing(
    env: dict[str, str], args: list[str], needle: str
) -> None:
    run_cli(env, "org", "create", "acme")
    run_cli(env, "account", "create", "ci", "--org", "acme")
    proc = run_cli(env, *args, check=False)
    assert proc.returncode in (1, 2)
    assert needle in proc.stderr.replace("\n", " ")
    assert "Traceback" not in proc.stderr
    assert [o["name"] for o in cli_json(env, "org", "list")] == ["acme"]
    assert cli_json(env, "token", "list", "--org", "acme") == []


def test_config_show_masks_secrets(env: dict[str, str]) -> None:
    env["GRAFT_DATABASE_URL"] = "postgresql+asyncpg://graft:hunter2@db.internal/graft"
    shown = cli_json(env, "config", "show")
    assert shown["database_url"] == "postgresql+asyncpg://graft:****@db.internal/graft"
    assert "hunter2" not in json.dumps(shown)
    assert "hunter2" not in run_cli(env, "config", "show").stdout


def test_invalid_settings_stop_start_up_with_one_message(env: dict[str, str]) -> None:
    env["GRAFT_PORT"] = "not-a-port"
    proc = run_cli(env, "serve", check=False)
    assert proc.returncode == 2
    assert "invalid configuration" in proc.stderr and "GRAFT_PORT" in proc.stderr
    assert "Traceback" not in proc.stderr


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        ([], "serve"),
        (["token", "--help"], "rotate"),
        (["token", "rotate", "--help"], "grace"),
        (["serve", "--help"], "--workers"),
        (["account", "create", "--help"], "--service"),
    ],
)
def test_help_explains(env: dict[str, str], args: list[str], needle: str) -> None:
    proc = run_cli(env, *args, "--help", check=False) if args else run_cli(env, "--help")
    assert proc.returncode == 0 and needle in proc.stdout
