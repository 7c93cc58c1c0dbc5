"""Sign-in with a Graft token, sign-out."""

from __future__ import annotations

import secrets

from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.routing import BaseRoute

from graft.errors import TooManyRequests, Unauthorized
from graft.routing import Route
from graft.web.app import PREFIX, WebApp, safe_next, same_origin, secure_headers, see_other
from graft.web.sessions import (
    SESSION_COOKIE,
    SIGNIN_COOKIE,
    WebUser,
    csrf_equal,
    looks_like_token,
)

NOTICES = {"signed-out": "You are signed out."}


def routes(web: WebApp) -> list[BaseRoute]:
    def secure(request: Request) -> bool:
        base = web.ctx.settings.public_url or str(request.base_url)
        return base.startswith("https://")

    def form(request: Request, status: int = 200, error: str = "") -> Response:
        # The sign-in form's CSRF token: a cookie only this site can set, echoed in the form.
        csrf = secrets.token_urlsafe(24)
        notice = NOTICES.get(request.query_params.get("notice", ""), "")
        response = web.render(
            request,
            None,
            "signin.html",
            status_code=status,
            csrf=csrf,
            next=safe_next(request.query_params.get("next")),
            error=error,
            notice=notice,
        )
        response.set_cookie(
            SIGNIN_COOKIE,
            csrf,
            max_age=3600,
            path=f"{PREFIX}/signin",
            httponly=True,
            samesite="strict",
            secure=secure(request),
        )
        return secure_headers(response)

    async def show(request: Request) -> Response:
        if await web.sessions.load(request.cookies.get(SESSION_COOKIE)) is not None:
            return see_other(safe_next(request.query_params.get("next")))
        return form(request)

    async def submit(request: Request) -> Response:
        data = await request.form()
        token = str(data.get("token") or "").strip()
        csrf = data.get("csrf")
        if not same_origin(request, web.ctx.settings.public_url) or not csrf_equal(
            request.cookies.get(SIGNIN_COOKIE, ""), csrf if isinstance(csrf, str) else None
        ):
            return form(request, 403, "The sign-in form expired. Paste your token again.")
        if not token:
            return form(request, 422, "Paste a Graft token to sign in.")
        if not looks_like_token(token):
            return form(
                request,
                422,
                "That is not a Graft token: a token starts with graft_ followed by 49 "
                "letters and digits. Check that it was copied whole.",
            )
        client = request.client.host if request.client else "unknown"
        try:
            principal = await web.ctx.auth.authenticate(f"Bearer {token}", client)
        except Unauthorized:
            return form(request, 401, "This token is not valid: it is unknown, expired or revoked.")
        except TooManyRequests as exc:
            return form(request, 429, exc.message)
        session_id, _ = await web.sessions.create(principal)
        target = safe_next(str(data.get("next") or ""))
        response = RedirectResponse(target, 303)
        response.set_cookie(
            SESSION_COOKIE,
            session_id,
            max_age=web.ctx.settings.web_session_seconds,
            path=PREFIX,
            httponly=True,
            samesite="lax",
            secure=secure(request),
        )
        response.delete_cookie(SIGNIN_COOKIE, path=f"{PREFIX}/signin")
        return secure_headers(response)

    async def sign_out(request: Request, user: WebUser) -> Response:
        await web.sessions.end(request.cookies.get(SESSION_COOKIE))
        response = RedirectResponse(f"{PREFIX}/signin?notice=signed-out", 303)
        response.delete_cookie(SESSION_COOKIE, path=PREFIX)
        return response

    return [
        Route("/signin", show, methods=["GET"]),
        Route("/signin", submit, methods=["POST"]),
        Route("/signout", web.page(sign_out), methods=["POST"]),
    ]
