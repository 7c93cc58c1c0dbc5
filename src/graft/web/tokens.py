"""Tokens: list, create (shown once, with client snippets), rotate (with the grace period),
revoke. Admin scope; every change goes through `AccountService`, as the CLI and API do."""

from __future__ import annotations

import datetime as dt

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute

from graft.accounts.models import NewToken
from graft.accounts.scopes import Scope
from graft.clientconfig import Client, netrc_line, render
from graft.errors import InvalidInput
from graft.routing import Route
from graft.web.app import WebApp, see_other
from graft.web.sessions import WebUser

EXPIRY_CHOICES = (("", "never"), ("30", "30 days"), ("90", "90 days"), ("365", "1 year"))
GRACE_CHOICES = (("3600", "1 hour"), ("86400", "24 hours"), ("604800", "7 days"), ("0", "none"))
NOTICES = {"revoked": "The token is revoked: it stops working within a few seconds."}


def snippets(base: str, token: str) -> list[tuple[str, str, str]]:
    """(key, title, text) for the token page: the same text `graft configure` prints."""
    return [
        ("docker", "docker login", render(Client.docker, base, token)),
        ("netrc", "~/.netrc (pip, uv, Poetry, curl)", netrc_line(base, token) + "\n"),
        ("npmrc", ".npmrc (npm, pnpm, Yarn classic)", render(Client.npm, base, token)),
        (
            "maven",
            "~/.m2/settings.xml (Maven)",
            f"# export GRAFT_TOKEN={token}\n" + render(Client.maven, base, token),
        ),
        ("apt", "apt (Debian, Ubuntu)", render(Client.apt, base, token)),
        ("apk", "apk (Alpine)", render(Client.apk, base, token)),
    ]


def _form_int(value: object, what: str, choices: tuple[tuple[str, str], ...]) -> int | None:
    text = str(value or "")
    if text not in {key for key, _ in choices}:
        raise InvalidInput(f"choose one of the offered {what} values")
    return int(text) if text else None


def routes(web: WebApp) -> list[BaseRoute]:
    accounts = web.ctx.accounts

    async def listing(
        request: Request, user: WebUser, *, status: int = 200, error: str = ""
    ) -> Response:
        org = user.principal.org
        token_list = await accounts.list_tokens(org)
        account_list = await accounts.list_accounts(org)
        return web.render(
            request,
            user,
            "tokens.html",
            status_code=status,
            section="tokens",
            tokens=token_list,
            accounts=account_list,
            expiry_choices=EXPIRY_CHOICES,
            grace_choices=GRACE_CHOICES,
            default_grace=str(web.ctx.settings.token_grace_seconds),
            notice=NOTICES.get(request.query_params.get("notice", ""), ""),
            error=error,
        )

    async def show(request: Request, user: WebUser) -> Response:
        return await listing(request, user)

    def shown_once(request: Request, user: WebUser, new: NewToken, *, rotated: bool) -> Response:
        return web.render(
            request,
            user,
            "token_new.html",
            section="tokens",
            new=new,
            rotated=rotated,
            snippets=snippets(web.base_url(request), new.token),
        )

    async def create(request: Request, user: WebUser) -> Response:
        form = await request.form()
        scope_value = str(form.get("scope") or "")
        try:
            scope = Scope(scope_value)
            days = _form_int(form.get("expires"), "expiry", EXPIRY_CHOICES)
            new = await accounts.create_token(
                user.principal.org,
                str(form.get("account") or ""),
                frozenset({scope}),
                name=str(form.get("name") or "").strip(),
                expires_in=dt.timedelta(days=days) if days else None,
            )
        except ValueError:
            return await listing(request, user, status=422, error="Choose read, publish or admin.")
        except InvalidInput as exc:
            return await listing(request, user, status=422, error=exc.message)
        return shown_once(request, user, new, rotated=False)

    async def rotate(request: Request, user: WebUser) -> Response:
        form = await request.form()
        grace = _form_int(form.get("grace"), "grace period", GRACE_CHOICES) or 0
        new = await accounts.rotate_token(
            int(request.path_params["id"]),
            org=user.principal.org,
            grace=dt.timedelta(seconds=grace),
        )
        return shown_once(request, user, new, rotated=True)

    async def revoke(request: Request, user: WebUser) -> Response:
        await accounts.revoke_token(int(request.path_params["id"]), org=user.principal.org)
        web.ctx.auth.forget()  # this process stops accepting it at once
        return see_other("/ui/tokens?notice=revoked")

    admin = Scope.ADMIN
    return [
        Route("/tokens", web.page(show, scope=admin), methods=["GET"]),
        Route("/tokens", web.page(create, scope=admin), methods=["POST"]),
        Route("/tokens/{id:int}/rotate", web.page(rotate, scope=admin), methods=["POST"]),
        Route("/tokens/{id:int}/revoke", web.page(revoke, scope=admin), methods=["POST"]),
    ]
