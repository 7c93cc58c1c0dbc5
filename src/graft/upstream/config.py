"""Upstream registries: configuration shared by every ecosystem.

An upstream is declared in `graft.toml` as an `[[upstream]]` table, or managed at run time with
`graft upstream add|list|remove` (stored in the database). Both lists are merged; a name is
unique across them.
"""

from __future__ import annotations

import re

from pydantic import BaseModel, Field, SecretStr, field_validator

_NAME = re.compile(r"^[a-z0-9][a-z0-9._-]{0,62}$")
ECOSYSTEMS = ("pypi", "npm", "maven", "debian", "ubuntu", "alpine", "oci")


class UpstreamConfig(BaseModel):
    ecosystem: str = Field(description=f"One of: {', '.join(ECOSYSTEMS)}")
    name: str = Field(description="Unique name, e.g. pypi-mirror")
    url: str = Field(description="Base URL, e.g. https://mirror.example.com/simple/")
    priority: int = Field(100, ge=0, le=10_000, description="Lower is asked first")
    username: str | None = None
    password: SecretStr | None = None
    token: SecretStr | None = Field(None, description="Sent as Authorization: Bearer")
    ttl_seconds: int = Field(600, ge=0, description="How long an index page is fresh")
    negative_ttl_seconds: int = Field(60, ge=0, description="How long a 404 is remembered")
    keyring: str | None = Field(None, description="Path of a keyring (APT/APK upstreams)")
    namespaces: list[str] = Field(
        default_factory=list,
        description="OCI: which repository names this registry serves, as LOCAL or LOCAL=REMOTE "
        "patterns ending in '*' (e.g. 'library/*', or '*=library/*' for one-component names); "
        "empty: every name, as is",
    )
    source: str = Field("config", description="config (graft.toml) or database")

    @field_validator("ecosystem")
    @classmethod
    def _ecosystem(cls, v: str) -> str:
        if v not in ECOSYSTEMS:
            raise ValueError(f"unknown ecosystem {v!r}; use one of {', '.join(ECOSYSTEMS)}")
        return v

    @field_validator("name")
    @classmethod
    def _name(cls, v: str) -> str:
        if not _NAME.match(v):
            raise ValueError("use lowercase letters, digits, '.', '_' or '-' (max 63)")
        return v

    @field_validator("url")
    @classmethod
    def _url(cls, v: str) -> str:
        if not re.match(r"^https?://[^/\s]+(/\S*)?$", v):
            raise ValueError("must be an http(s) URL")
        return v if v.endswith("/") else v + "/"

    def auth_headers(self) -> dict[str, str]:
        if self.token is not None:
            return {"Authorization": f"Bearer {self.token.get_secret_value()}"}
        if self.username is not None:
            import base64

            pw = self.password.get_secret_value() if self.password else ""
            raw = base64.b64encode(f"{self.username}:{pw}".encode()).decode()
            return {"Authorization": f"Basic {raw}"}
        return {}
