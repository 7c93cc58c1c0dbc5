"""The web app's frame: who the page is for, CSRF on every form, errors as pages, headers.

Pages live under `/ui/` (the Dispatcher's `ui` segment, next to the protocol prefixes);
`/` redirects to the dashboard. Every page handler is wrapped by `WebApp.page`, which loads
the session (or sends the browser to the sign-in page), checks the CSRF token of every POST
and the scope the page needs, renders a `GraftError` as an error page with its status, and
adds the headers every page carries (no caching: a new token is on the page once; a
Content-Security-Policy that allows only this server's own stylesheet and script).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Awaitable, Callable
from typing import Any
from urllib.parse import quote, urlsplit

from starlette.requests import Request
from starlette.responses import RedirectResponse, Response

from graft.accounts.scopes import Scope
from graft.context import AppContext
from graft.errors import Forbidden, GraftError
from graft.web.sessions import SESSION_COOKIE, SessionStore, WebUser, csrf_equal
from graft.web.static import StaticFiles
from graft.web.templating import Templates

PREFIX = "/ui"
PageHandler = Callable[[Request, WebUser], Awaitable[Response]]

SECURITY_HEADERS = {
    "Cache-Control": "no-store",
    "Content-Security-Policy": (
        "default-src 'none'; style-src 'self'; script-src 'self'; img-src 'self' data:; "
        "form-action 'self'; frame-ancestors 'none'; base-uri 'none'"
    ),
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "same-origin",
}

NAV = (
    ("dashboard", "Dashboard", "/ui/", Scope.READ),
    ("library", "My Library", "/ui/library", Scope.READ),
    ("requests", "Requests", "/ui/requests", Scope.READ),
    ("tokens", "Tokens", "/ui/tokens", Scope.ADMIN),
    ("setup", "Setup", "/ui/setup", Scope.READ),
)


def secure_headers(response: Response) -> Response:
    for key, value in SECURITY_HEADERS.items():
        response.headers.setdefault(key, value)
    return response


def same_origin(request: Request, public_url: str | None = None) -> bool:
    """A form POST from another site is refused even before the CSRF token is compared; a
    browser always sends `Origin` on a cross-site POST. Behind a proxy that rewrites `Host`,
    the origin of `public_url` is this site too."""
    origin = request.headers.get("origin")
    if origin is None:
        return True
    netloc = urlsplit(origin).netloc
    return netloc == request.headers.get("host", "") or bool(
        public_url and netloc == urlsplit(public_url).netloc
    )


def safe_next(value: str | None) -> str:
    """Only a path of this app: never an open redirect to another site."""
    if value and value.startswith(PREFIX + "/") and not any(c in value for c in ("\\", "://")):
        return value
    return PREFIX + "/"


class WebApp:
    def __init__(self, ctx: AppContext) -> None:
        self.ctx = ctx
        self.sessions = SessionStore(
            ctx.db, lifetime=dt.timedelta(seconds=ctx.settings.web_session_seconds)
        )
        self.templates = Templates()
        self.static = StaticFiles()
        self.templates.env.globals["static"] = self.static.url

    def base_url(self, request: Request) -> str:
        """Graft's URL as clients reach it: `public_url`, else what this browser used."""
        if self.ctx.settings.public_url:
            return self.ctx.settings.public_url.rstrip("/")
        return str(request.base_url).rstrip("/")

    def render(
        self,
        request: Request,
        user: WebUser | None,
        template: str,
        *,
        status_code: int = 200,
        section: str = "",
        **context: Any,
    ) -> Response:
        nav = []
        if user is not None:
            nav = [
                (key, title, href)
                for key, title, href, scope in NAV
                if user.principal.allows(scope)
            ]
        return self.templates.render(
            template,
            status_code=status_code,
            request=request,
            user=user,
            nav=nav,
            section=section,
            is_admin=user is not None and user.principal.allows(Scope.ADMIN),
            **context,
        )

    def error_page(
        self, request: Request, user: WebUser | None, status: int, message: str
    ) -> Response:
        return self.render(
            request, user, "error.html", status_code=status, status=status, message=message
        )

    def page(
        self, handler: PageHandler, *, scope: Scope = Scope.READ
    ) -> Callable[[Request], Awaitable[Response]]:
        async def endpoint(request: Request) -> Response:
            user = await self.sessions.load(request.cookies.get(SESSION_COOKIE))
            if user is None:
                if request.method == "GET":
                    target = request.url.path + (
                        f"?{request.url.query}" if request.url.query else ""
                    )
                    return secure_headers(
                        RedirectResponse(f"{PREFIX}/signin?next={quote(target)}", 303)
                    )
                return secure_headers(
                    self.error_page(
                        request, None, 401, "Your session has ended. Sign in again to continue."
                    )
                )
            try:
                if request.method == "POST":
                    form = await request.form()
                    token = form.get("csrf")
                    if not same_origin(request, self.ctx.settings.public_url) or not csrf_equal(
                        user.csrf, token if isinstance(token, str) else None
                    ):
                        raise Forbidden(
                            "This form has expired or did not come from this page. "
                            "Go back, reload the page and try again."
                        )
                if not user.principal.allows(scope):
                    has = ", ".join(sorted(s.value for s in user.principal.scopes))
                    raise Forbidden(
                        f"This page needs a token with the {scope.value!r} scope; you signed in "
                        f"with one that has {has}."
                    )
                response = await handler(request, user)
            except GraftError as exc:
                response = self.error_page(request, user, exc.status_code, exc.message)
            return secure_headers(response)

        return endpoint


def see_other(path: str) -> Response:
    """After a form: the browser loads the page again with GET (a reload repeats nothing)."""
    return secure_headers(RedirectResponse(path, 303))
