"""Package requests: submit (prefilled from a library row), list with status, and for
admins the status change. Every write goes through `VulnService`, as the API's do."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute

from graft.accounts.scopes import Scope
from graft.errors import Forbidden, InvalidInput
from graft.routing import Route
from graft.vulns.models import REQUEST_STATUSES, RequestStatus
from graft.vulns.requests import MOVES
from graft.web import insights
from graft.web.app import WebApp, see_other
from graft.web.sessions import WebUser

NOTICES = {
    "submitted": "Request submitted. You can follow its status here.",
    "updated": "Status changed.",
}
#: ecosystems a request may name (the library's, without the "OS packages" group)
CHOICES = [(k, v) for k, v in insights.ECOSYSTEMS if k != "os"]


def routes(web: WebApp) -> list[BaseRoute]:
    vulns = web.ctx.vulns

    async def listing(
        request: Request,
        user: WebUser,
        *,
        status: int = 200,
        error: str = "",
        values: dict[str, str] | None = None,
    ) -> Response:
        shown = request.query_params.get("status", "")
        items = await vulns.list_requests(
            user.principal.org_id,
            status=shown if shown in REQUEST_STATUSES else None,
        )
        params = request.query_params
        form = values or {
            key: params.get(key, "")[:255] for key in ("ecosystem", "package", "version")
        }
        form.setdefault("reason", "")
        return web.render(
            request,
            user,
            "requests.html",
            status_code=status,
            section="requests",
            items=items,
            shown=shown if shown in REQUEST_STATUSES else "",
            statuses=REQUEST_STATUSES,
            moves=MOVES,
            choices=CHOICES,
            labels=insights.ECOSYSTEM_LABELS,
            form=form,
            error=error,
            notice=NOTICES.get(params.get("notice", ""), ""),
        )

    async def show(request: Request, user: WebUser) -> Response:
        return await listing(request, user)

    async def submit(request: Request, user: WebUser) -> Response:
        data = await request.form()
        values = {k: str(data.get(k) or "").strip() for k in ("ecosystem", "package", "version")}
        values["reason"] = str(data.get("reason") or "").strip()
        try:
            await vulns.submit_request(
                user.principal.org_id,
                user.principal.account_id,
                ecosystem=values["ecosystem"],
                package=values["package"],
                version=values["version"],
                reason=values["reason"],
            )
        except InvalidInput as exc:
            return await listing(request, user, status=422, error=exc.message, values=values)
        return see_other("/ui/requests?notice=submitted")

    async def change(request: Request, user: WebUser) -> Response:
        if not user.principal.allows(Scope.ADMIN):
            raise Forbidden("Changing a request's status needs an admin token.")
        data = await request.form()
        new: RequestStatus = str(data.get("status") or "")  # type: ignore[assignment]
        await vulns.set_request_status(user.principal.org_id, int(request.path_params["id"]), new)
        return see_other("/ui/requests?notice=updated")

    return [
        Route("/requests", web.page(show), methods=["GET"]),
        Route("/requests", web.page(submit), methods=["POST"]),
        Route("/requests/{id:int}/status", web.page(change), methods=["POST"]),
    ]
