"""Effective configuration: `GRAFT_*` environment variables over an optional `graft.toml`.

pydantic-settings does the parsing and validation; this module only declares the fields and
how a failure is reported (one clear line, no traceback).
"""

from __future__ import annotations

import os
import re
from functools import lru_cache
from pathlib import Path
from typing import Any, Literal

from pydantic import Field, SecretStr, ValidationError, field_validator, model_validator
from pydantic_settings import (
    BaseSettings,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    TomlConfigSettingsSource,
)

from graft.upstream.config import UpstreamConfig

_LABEL = re.compile(r"^[a-z][a-z0-9]{0,15}$")
_PREFIX = re.compile(r"^[a-z0-9][a-z0-9.+-]{0,30}-$")


def config_file() -> Path:
    """`GRAFT_CONFIG` names the TOML file; `./graft.toml` is read when it exists."""
    return Path(os.environ.get("GRAFT_CONFIG", "graft.toml"))


class Settings(BaseSettings):
    model_config = SettingsConfigDict(
        env_prefix="GRAFT_",
        extra="forbid",
        validate_default=True,
    )

    data_dir: Path = Field(
        Path("graft-data"), description="Embedded default: SQLite file, blobs and keys live here."
    )
    database_url: SecretStr | None = Field(
        None,
        description="SQLAlchemy async URL; default sqlite+aiosqlite:///<data_dir>/graft.db. "
        "PostgreSQL: postgresql+asyncpg://user:pass@host/db",
    )
    blob_dir: Path | None = Field(
        None, description="Filesystem blob store; default <data_dir>/blobs"
    )
    keys_path: Path | None = Field(
        None,
        description="Directory of the signing keys (APT, APK, registry tokens, download "
        "links); default <data_dir>/keys. Replicas must share the same keys: mount one "
        "Secret here.",
    )
    public_url: str | None = Field(
        None, description="Base URL clients use to reach Graft (for absolute links)."
    )

    host: str = "127.0.0.1"
    port: int = Field(8000, ge=1, le=65535)
    workers: int = Field(1, ge=1, le=256)
    server: Literal["granian", "uvicorn"] = "granian"
    granian_interface: Literal["asgi", "rsgi"] = Field(
        "rsgi", description="How granian calls Graft: its native RSGI (graft.rsgi), or ASGI."
    )

    patch_label: str = Field("graft", description="Label L in patched versions such as 2.31.0+L.1")
    os_package_prefix: str = Field("rootio-", description="Name prefix of patched OS packages")

    token_grace_seconds: int = Field(
        86_400, ge=0, description="How long a rotated token keeps working (0 = not at all)."
    )
    auth_cache_seconds: float = Field(
        5.0,
        ge=0,
        le=60,
        description="Verified tokens are cached this long; a revocation takes effect within it.",
    )
    auth_failure_limit: int = Field(
        20, ge=1, description="Failed authentications allowed per address per window."
    )
    auth_failure_window_seconds: float = Field(60.0, gt=0)

    max_api_body_bytes: int = Field(1 << 20, ge=1024, description="Largest management API body.")
    usage_flush_seconds: float = Field(
        2.0, gt=0, description="Usage batches are written this often."
    )
    usage_queue_max: int = Field(100_000, ge=100, description="Events held before dropping.")

    access_log: bool = True
    log_level: Literal["debug", "info", "warning", "error"] = "info"
    upstream: list[UpstreamConfig] = Field(
        default_factory=list, description="[[upstream]] tables: registries to pull through."
    )
    upstream_timeout_seconds: float = Field(30.0, gt=0, description="Upstream connect/read timeout")
    upstream_buffer_bytes: int = Field(
        8 << 20,
        ge=0,
        description="A first download up to this size is verified before the client gets a "
        "byte (so a bad upstream file is a clean 502); larger ones stream while verified.",
    )
    max_upload_bytes: int = Field(2 << 30, ge=1024, description="Largest package upload.")
    apt_release_valid_seconds: int | None = Field(
        None,
        ge=3600,
        description="Valid-Until in the APT Release files, this long after Date (unset: no "
        "Valid-Until); Graft re-signs when half of it has passed.",
    )
    blob_server_port: int | None = Field(
        None,
        ge=1,
        le=65535,
        description="Run the zero-copy blob server on this port and redirect downloads of "
        "large blobs to it (sendfile, as nginx does); clients must be able to reach it. "
        "Unset: every download is served on the main port.",
    )
    blob_server_url: str | None = Field(
        None,
        description="Base URL clients use to reach the blob server (behind a proxy); default: "
        "the request's host name with blob_server_port.",
    )
    blob_server_threads: int = Field(
        16,
        ge=1,
        le=1024,
        description="Sending threads per blob-server worker process: downloads in flight at "
        "once per worker (idle keep-alive connections wait without a thread).",
    )
    blob_redirect_min_bytes: int = Field(
        4 << 20,
        ge=0,
        description="Blobs this large or larger go by the blob server (or a presigned URL).",
    )
    blob_url_ttl_seconds: int = Field(
        300,
        ge=10,
        le=86_400,
        description="How long a blob server or presigned download link is valid.",
    )
    blob_store: Literal["filesystem", "s3"] = Field(
        "filesystem",
        description="Where blobs live: blob_dir on a local filesystem, or an S3-compatible "
        "bucket (s3_*), which replicas share.",
    )
    s3_bucket: str | None = Field(None, description="Bucket of the S3 blob store.")
    s3_prefix: str = Field("", description="Key prefix inside the bucket (e.g. 'graft/').")
    s3_endpoint_url: str | None = Field(
        None, description="S3 API endpoint (MinIO, Ceph RGW, R2 …); unset: AWS."
    )
    s3_region: str | None = Field(None, description="Region of the bucket.")
    s3_access_key_id: SecretStr | None = Field(
        None, description="Unset: the standard AWS credential chain (AWS_* variables, roles)."
    )
    s3_secret_access_key: SecretStr | None = None
    s3_addressing_style: Literal["auto", "path", "virtual"] = Field(
        "auto", description="'path' for most self-hosted stores (MinIO)."
    )
    s3_part_bytes: int = Field(
        8 << 20, ge=5 << 20, description="Multipart upload part size (memory per upload)."
    )
    s3_presign: bool = Field(
        False,
        description="Redirect downloads of blobs of at least blob_redirect_min_bytes to a "
        "presigned URL of the object store, valid blob_url_ttl_seconds (clients must reach "
        "the store); off: Graft streams them.",
    )
    s3_presign_endpoint_url: str | None = Field(
        None,
        description="Endpoint written into presigned URLs when clients reach the store under "
        "another address than Graft does; default: s3_endpoint_url.",
    )
    migrate_on_start: bool = Field(
        True,
        description="`graft serve` applies database migrations before serving; turn off when "
        "a `graft migrate` job runs them once per upgrade (several replicas).",
    )
    web_session_seconds: int = Field(
        12 * 3600,
        ge=60,
        description="How long a web app sign-in lasts (never longer than the token it used).",
    )
    bench_routes: bool = Field(
        False, description="Mount /_bench/* routes used by bench/ (never in production)."
    )
    oci_gc_seconds: float = Field(
        600.0, ge=0, description="Container registry garbage collection interval (0: never)."
    )
    oci_gc_grace_seconds: float = Field(
        3600.0,
        ge=0,
        description="A blob no manifest references is kept this long after its last upload or "
        "HEAD, and an idle upload session this long (a running push is never disturbed).",
    )
    oci_anonymous: str | None = Field(
        None,
        description="Container registry without credentials: ORG/ACCOUNT:SCOPE (e.g. "
        "'public/anonymous:read') lets requests that carry no credentials act as that existing "
        "account with that scope (read or publish). Off by default.",
        pattern=r"^[^/:\s]+/[^/:\s]+:(read|publish)$",
    )

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        # Precedence: explicit arguments > environment > graft.toml.
        return (
            init_settings,
            env_settings,
            TomlConfigSettingsSource(settings_cls, toml_file=config_file()),
        )

    @field_validator("patch_label")
    @classmethod
    def _label(cls, v: str) -> str:
        if not _LABEL.match(v):
            raise ValueError("must be 1-16 lowercase letters/digits starting with a letter")
        return v

    @field_validator("os_package_prefix")
    @classmethod
    def _prefix(cls, v: str) -> str:
        if not _PREFIX.match(v):
            raise ValueError("must be a lowercase package-name prefix ending in '-', e.g. rootio-")
        return v

    @field_validator("public_url", "blob_server_url", "s3_endpoint_url", "s3_presign_endpoint_url")
    @classmethod
    def _public_url(cls, v: str | None) -> str | None:
        if v is None:
            return v
        if not re.match(r"^https?://[^/\s]+(/[^\s]*)?$", v):
            raise ValueError("must be an http(s) URL such as https://graft.example.com")
        return v.rstrip("/")

    @field_validator("database_url")
    @classmethod
    def _db_url(cls, v: SecretStr | None) -> SecretStr | None:
        if v is None:
            return v
        scheme = v.get_secret_value().split("://", 1)[0]
        if scheme not in {"sqlite+aiosqlite", "postgresql+asyncpg", "postgresql"}:
            raise ValueError(
                f"must start with sqlite+aiosqlite:// or postgresql+asyncpg:// (got {scheme!r})"
            )
        if scheme == "postgresql":
            return SecretStr("postgresql+asyncpg" + v.get_secret_value()[len("postgresql") :])
        return v

    @model_validator(mode="after")
    def _s3_bucket(self) -> Settings:
        if self.blob_store == "s3" and not self.s3_bucket:
            raise ValueError("blob_store = 's3' needs s3_bucket (GRAFT_S3_BUCKET)")
        if self.blob_store == "s3" and self.blob_server_port is not None:
            raise ValueError(
                "blob_server_port serves a local blob_dir; with blob_store = 's3' use s3_presign"
            )
        return self

    @model_validator(mode="after")
    def _absolute_paths(self) -> Settings:
        self.data_dir = self.data_dir.expanduser().resolve()
        if self.blob_dir is not None:
            self.blob_dir = self.blob_dir.expanduser().resolve()
        if self.keys_path is not None:
            self.keys_path = self.keys_path.expanduser().resolve()
        return self

    # -- derived values -------------------------------------------------------------------
    @property
    def effective_database_url(self) -> str:
        if self.database_url is not None:
            return self.database_url.get_secret_value()
        return f"sqlite+aiosqlite:///{self.data_dir / 'graft.db'}"

    @property
    def effective_blob_dir(self) -> Path:
        return self.blob_dir or self.data_dir / "blobs"

    @property
    def keys_dir(self) -> Path:
        return self.keys_path or self.data_dir / "keys"

    def masked(self) -> dict[str, Any]:
        """The configuration as `graft config show` prints it: secrets masked."""
        out = self.model_dump(mode="json")  # SecretStr fields dump as '**********'
        out["database_url"] = mask_url(self.effective_database_url)
        out["blob_dir"] = str(self.effective_blob_dir)
        if self.s3_endpoint_url:
            out["s3_endpoint_url"] = mask_url(self.s3_endpoint_url)
        for upstream in out["upstream"]:
            upstream["url"] = mask_url(upstream["url"])
        return out


def mask_url(url: str) -> str:
    """Hide the password of `scheme://user:password@host/...`."""
    return re.sub(r"(://[^:/@]*:)[^@]*@", r"\1****@", url)


class SettingsError(Exception):
    """Invalid configuration, rendered as one line per problem."""


def load_settings(**overrides: Any) -> Settings:
    try:
        return Settings(**overrides)
    except ValidationError as exc:
        problems = []
        for err in exc.errors():
            field = ".".join(str(p) for p in err["loc"]) or "settings"
            env = f"GRAFT_{field.upper()}" if err["loc"] else ""
            where = f"{field} ({env})" if env else field
            problems.append(f"{where}: {err['msg']}")
        raise SettingsError(
            "invalid configuration: " + "; ".join(problems) + f" [config file: {config_file()}]"
        ) from None
    except (OSError, ValueError) as exc:  # unreadable or malformed TOML
        raise SettingsError(f"invalid configuration file {config_file()}: {exc}") from None


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    return load_settings()
