from __future__ import annotations

from pathlib import Path

import pytest

from graft.settings import SettingsError, load_settings, mask_url


@pytest.fixture(autouse=True)
def clean_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    for key in list(__import__("os").environ):
        if key.startswith("GRAFT_"):
            monkeypatch.delenv(key)
    config = tmp_path / "graft.toml"
    monkeypatch.setenv("GRAFT_CONFIG", str(config))
    return config


def test_defaults_put_everything_under_one_data_dir(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("GRAFT_DATA_DIR", str(tmp_path / "d"))
    s = load_settings()
    assert s.effective_database_url == f"sqlite+aiosqlite:///{tmp_path / 'd' / 'graft.db'}"
    assert s.effective_blob_dir == tmp_path / "d" / "blobs"
    assert s.keys_dir == tmp_path / "d" / "keys"
    assert s.patch_label == "graft" and s.os_package_prefix == "rootio-"
    assert s.token_grace_seconds == 86400


def test_environment_wins_over_toml(monkeypatch: pytest.MonkeyPatch, clean_env: Path) -> None:
    clean_env.write_text('port = 9001\npatch_label = "acme"\n')
    assert load_settings().port == 9001
    monkeypatch.setenv("GRAFT_PORT", "9002")
    s = load_settings()
    assert s.port == 9002 and s.patch_label == "acme"


@pytest.mark.parametrize(
    ("env", "value", "needle"),
    [
        ("GRAFT_PORT", "70000", "port (GRAFT_PORT)"),
        ("GRAFT_PATCH_LABEL", "Bad Label", "patch_label (GRAFT_PATCH_LABEL)"),
        ("GRAFT_DATABASE_URL", "mysql://x", "sqlite+aiosqlite://"),
        ("GRAFT_SERVER", "gunicorn", "server (GRAFT_SERVER)"),
        ("GRAFT_OS_PACKAGE_PREFIX", "rootio", "ending in '-'"),
    ],
)
def test_invalid_settings_give_one_clear_message(
    monkeypatch: pytest.MonkeyPatch, env: str, value: str, needle: str
) -> None:
    monkeypatch.setenv(env, value)
    with pytest.raises(SettingsError) as exc:
        load_settings()
    message = str(exc.value)
    assert message.startswith("invalid configuration: ")
    assert needle in message
    assert "\n" not in message


def test_unknown_and_malformed_toml_are_reported(clean_env: Path) -> None:
    clean_env.write_text("prot = 1\n")
    with pytest.raises(SettingsError, match="prot"):
        load_settings()
    clean_env.write_text("port = = 1\n")
    with pytest.raises(SettingsError, match="invalid configuration file"):
        load_settings()


def test_postgres_shorthand_and_masking(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GRAFT_DATABASE_URL", "postgresql://graft:s3cret@db:5432/graft")
    s = load_settings()
    assert s.effective_database_url.startswith("postgresql+asyncpg://")
    shown = s.masked()
    assert "s3cret" not in str(shown)
    assert shown["database_url"] == "postgresql+asyncpg://graft:****@db:5432/graft"
    assert mask_url("sqlite+aiosqlite:///x.db") == "sqlite+aiosqlite:///x.db"
