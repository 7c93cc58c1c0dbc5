"""Short-lived registry bearer tokens (the Docker token flow).

A token is a compact JWT signed with HMAC-SHA256 under a key kept in `<data_dir>/keys`, so every
worker and every replica sharing the data directory can check it without a database query.
Clients treat it as opaque. It carries the principal (so a request costs no token lookup) and the
granted access: `[[repository, [actions]]]`, each action one the Graft token's scopes allow.
Written by hand (a few lines of `hmac`) because no dependency of ours signs JWTs.
"""

from __future__ import annotations

import base64
import contextlib
import datetime as dt
import hashlib
import hmac
import json
import os
import secrets
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from graft.accounts.models import Principal
from graft.accounts.scopes import Scope

TOKEN_SECONDS = 300
_HEADER = base64.urlsafe_b64encode(b'{"alg":"HS256","typ":"JWT"}').rstrip(b"=").decode()
ACTIONS = ("pull", "push", "delete")


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def load_or_create_key(directory: Path) -> bytes:
    """32 random bytes in `directory/oci-token.key`, created once (first writer wins)."""
    path = directory / "oci-token.key"
    with contextlib.suppress(FileNotFoundError):
        data = path.read_bytes()
        if len(data) >= 32:
            return data
    directory.mkdir(parents=True, exist_ok=True)
    tmp = directory / f".oci-token.{secrets.token_hex(8)}"
    tmp.write_bytes(secrets.token_bytes(32))
    os.chmod(tmp, 0o600)
    try:
        os.link(tmp, path)  # atomic, and fails if another process made the key first
    except FileExistsError:
        pass
    finally:
        tmp.unlink(missing_ok=True)
    return path.read_bytes()


@dataclass(frozen=True, slots=True)
class Grant:
    principal: Principal
    #: repository name → actions granted; "*" names the catalog (registry:catalog:*)
    access: dict[str, frozenset[str]]
    expires: float

    def allows(self, repository: str, action: str) -> bool:
        return action in self.access.get(repository, frozenset())


def parse_scope(raw: str) -> tuple[str, str, tuple[str, ...]] | None:
    """`repository:team/app:pull,push` → ("repository", "team/app", ("pull", "push"))."""
    kind, sep, rest = raw.partition(":")
    if not sep:
        return None
    name, sep, actions = rest.rpartition(":")
    if not sep or not name:
        return None
    return kind, name, tuple(a for a in actions.split(",") if a)


def allowed_actions(principal: Principal, kind: str, actions: tuple[str, ...]) -> frozenset[str]:
    """What the principal's Graft scopes allow of the requested actions."""
    if kind == "registry":
        return frozenset(a for a in actions if a == "*" and principal.allows(Scope.READ))
    if kind != "repository":
        return frozenset()
    out = set()
    for action in actions:
        if action == "pull" and principal.allows(Scope.READ):
            out.add("pull")
        elif action in ("push", "delete") and principal.allows(Scope.PUBLISH):
            out.add(action)
        elif action == "*" and principal.allows(Scope.PUBLISH):
            out.update(ACTIONS)
    return frozenset(out)


class TokenSigner:
    def __init__(self, key: bytes, *, seconds: int = TOKEN_SECONDS) -> None:
        self.key = key
        self.seconds = seconds

    def _sign(self, signing_input: str) -> str:
        return _b64(hmac.new(self.key, signing_input.encode(), hashlib.sha256).digest())

    def issue(self, principal: Principal, access: dict[str, frozenset[str]]) -> tuple[str, int]:
        now = int(time.time())
        expires = now + self.seconds
        if principal.expires_at is not None:  # never outlive the Graft token
            expires = min(expires, int(principal.expires_at.timestamp()))
        claims: dict[str, Any] = {
            "iss": "graft",
            "sub": principal.account,
            "aud": "graft",
            "iat": now,
            "exp": expires,
            "jti": secrets.token_hex(8),
            "access": [
                {"type": "registry" if n == "*" else "repository", "name": n, "actions": sorted(a)}
                for n, a in access.items()
            ],
            "graft": [
                principal.org_id,
                principal.org,
                principal.account_id,
                principal.account_kind,
                principal.site_admin,
                principal.token_id,
                sorted(s.value for s in principal.scopes),
            ],
        }
        payload = _b64(json.dumps(claims, separators=(",", ":")).encode())
        signing_input = f"{_HEADER}.{payload}"
        return f"{signing_input}.{self._sign(signing_input)}", expires - now

    def verify(self, token: str) -> Grant | None:
        """The grant of a token this server signed and that has not expired, else None."""
        parts = token.split(".")
        if len(parts) != 3 or parts[0] != _HEADER:
            return None
        signing_input = f"{parts[0]}.{parts[1]}"
        if not hmac.compare_digest(self._sign(signing_input), parts[2]):
            return None
        try:
            claims = json.loads(_unb64(parts[1]))
            expires = float(claims["exp"])
            org_id, org, account_id, kind, site_admin, token_id, scopes = claims["graft"]
            access = {
                ("*" if a["type"] == "registry" else a["name"]): frozenset(a["actions"])
                for a in claims["access"]
            }
        except (ValueError, KeyError, TypeError):
            return None
        if expires <= time.time():
            return None
        principal = Principal(
            org_id=org_id,
            org=org,
            account_id=account_id,
            account=claims["sub"],
            account_kind=kind,
            site_admin=site_admin,
            token_id=token_id,
            scopes=frozenset(Scope(s) for s in scopes),
            expires_at=dt.datetime.fromtimestamp(expires, dt.UTC),
        )
        return Grant(principal, access, expires)
