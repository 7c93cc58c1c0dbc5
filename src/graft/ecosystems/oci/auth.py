"""Who may do what on `/v2/`: Docker token flow, or Graft credentials sent straight.

A request carries either a registry bearer token from `/v2/token` (checked by signature, no
database), or Basic/Bearer Graft credentials (checked by `ctx.authenticate`, cached). The first
401 tells the client where the token endpoint is: `Bearer realm="<graft>/v2/token",
service="graft",scope="repository:<name>:<actions>"`.
"""

from __future__ import annotations

import time
from collections import OrderedDict

from starlette.requests import HTTPConnection

from graft.accounts.models import Principal
from graft.accounts.scopes import Scope, expand
from graft.context import PRINCIPAL_KEY, AppContext
from graft.ecosystems.oci import errors
from graft.ecosystems.oci.tokens import Grant, TokenSigner, allowed_actions
from graft.errors import Forbidden, Unauthorized

SERVICE = "graft"
#: The registry token is also set as this cookie (Path=/v2/, HttpOnly, SameSite=Strict) and
#: accepted from it when a request has no Authorization header: HTTP clients with a cookie jar
#: (Go's resty, which the OCI conformance suite uses) then stop re-sending every request after a
#: 401, a retry in which that client drops the query string.
COOKIE = "graft_registry_token"
_NEEDS = {"pull": Scope.READ, "push": Scope.PUBLISH, "delete": Scope.PUBLISH, "*": Scope.READ}


def base_url(conn: HTTPConnection, public_url: str | None) -> str:
    if public_url:
        return public_url
    host = conn.headers.get("host") or f"{conn.url.hostname}:{conn.url.port}"
    return f"{conn.url.scheme}://{host}"


class RegistryAuth:
    def __init__(self, ctx: AppContext, signer: TokenSigner) -> None:
        self.ctx = ctx
        self.signer = signer
        self._verified: OrderedDict[str, Grant] = OrderedDict()
        self._anonymous_principal: Principal | None = None

    def challenge(self, conn: HTTPConnection, scope: str | None, error: str | None = None) -> str:
        realm = f"{base_url(conn, self.ctx.settings.public_url)}/v2/token"
        value = f'Bearer realm="{realm}",service="{SERVICE}"'
        if scope:
            value += f',scope="{scope}"'
        if error:
            value += f',error="{error}"'
        return value

    def _grant(self, token: str) -> Grant | None:
        grant = self._verified.get(token)
        if grant is not None:
            if grant.expires > time.time():
                return grant
            del self._verified[token]
            return None
        grant = self.signer.verify(token)
        if grant is not None:
            self._verified[token] = grant
            if len(self._verified) > 10_000:
                self._verified.popitem(last=False)
        return grant

    async def require(
        self,
        conn: HTTPConnection,
        repository: str | None,
        action: str,
        *,
        also: str | None = None,
    ) -> tuple[Principal, Grant | None]:
        """The principal allowed `action` on `repository` (None: the base endpoint; "*" with
        action "*": the catalog); raises the spec's 401/403. `also`: one more scope for the
        challenge to name (a mount's source), so that a client's single token request covers
        it; it is not checked here."""
        if repository is None:
            scope = None
        elif repository == "*":
            scope = "registry:catalog:*"
        else:
            scope = f"repository:{repository}:{'pull' if action == 'pull' else 'pull,push'}"
            if action == "delete":
                scope = f"repository:{repository}:delete"
            if also:
                scope = f"{scope} {also}"
        authorization = None
        for key, value in conn.scope["headers"]:
            if key == b"authorization":
                authorization = value.decode("latin-1")
                break
        raw = ""
        if authorization is not None and authorization[:7].lower() == "bearer ":
            raw = authorization[7:].strip()
        elif authorization is None:
            raw = conn.cookies.get(COOKIE, "")
        if raw and raw.count(".") == 2:
            grant = self._grant(raw)
            if grant is None:
                raise errors.unauthorized(
                    "the registry token is invalid or has expired; log in again",
                    self.challenge(conn, scope, "invalid_token"),
                )
            conn.scope[PRINCIPAL_KEY] = grant.principal
            if repository not in (None, "*") and not grant.allows(repository, action):
                if not grant.principal.allows(_NEEDS[action]):
                    raise errors.denied(self._lacks(grant.principal, action))
                raise errors.unauthorized(
                    f"the registry token does not grant {action} on {repository}",
                    self.challenge(conn, scope, "insufficient_scope"),
                )
            return grant.principal, grant
        if authorization is None and not raw and self.ctx.settings.oci_anonymous:
            principal = await self._anonymous(self.ctx.settings.oci_anonymous)
            conn.scope[PRINCIPAL_KEY] = principal
            if not principal.allows(_NEEDS[action]):
                raise errors.unauthorized(
                    f"{action} needs credentials", self.challenge(conn, scope)
                )
            return principal, None
        try:
            principal = await self.ctx.authenticate(
                conn, Scope.READ, challenge=self.challenge(conn, scope)
            )
        except Unauthorized as exc:
            raise errors.unauthorized(
                exc.message, exc.challenge or self.challenge(conn, scope)
            ) from None
        except Forbidden as exc:
            raise errors.denied(exc.message) from None
        if not principal.allows(_NEEDS[action]):
            raise errors.denied(self._lacks(principal, action))
        return principal, None

    async def _anonymous(self, setting: str) -> Principal:
        if self._anonymous_principal is None:
            target, _, scope = setting.rpartition(":")
            org, _, account = target.partition("/")
            view = next(
                (a for a in await self.ctx.accounts.list_accounts(org) if a.name == account), None
            )
            if view is None:
                raise errors.denied(f"oci_anonymous names {target!r}, which does not exist")
            orgs = {o.name: o.id for o in await self.ctx.accounts.list_orgs()}
            self._anonymous_principal = Principal(
                org_id=orgs[org],
                org=org,
                account_id=view.id,
                account=account,
                account_kind=view.kind,
                site_admin=False,
                token_id=0,
                scopes=expand(frozenset({Scope(scope)})),
                expires_at=None,
            )
        return self._anonymous_principal

    @staticmethod
    def _lacks(principal: Principal, action: str) -> str:
        need = _NEEDS[action].value
        have = ", ".join(sorted(s.value for s in principal.scopes))
        return f"{action} needs a token with the {need!r} scope (this one has: {have})"

    def grant_for(self, principal: Principal, scopes: list[str]) -> dict[str, frozenset[str]]:
        """The access a token request gets: each requested scope cut down to what the
        principal's Graft scopes allow (the Docker token spec's behaviour)."""
        from graft.ecosystems.oci.names import valid_name
        from graft.ecosystems.oci.tokens import parse_scope

        access: dict[str, set[str]] = {}
        for raw in scopes:
            for item in raw.split(" "):
                parsed = parse_scope(item)
                if parsed is None:
                    continue
                kind, name, actions = parsed
                if kind == "registry" and name == "catalog":
                    name = "*"
                elif kind != "repository" or not valid_name(name):
                    continue
                allowed = allowed_actions(principal, kind, actions)
                if allowed:
                    access.setdefault(name, set()).update(allowed)
        return {name: frozenset(actions) for name, actions in access.items()}
