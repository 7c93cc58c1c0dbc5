"""My Library: the organization's packages as a table, and one package's page."""

from __future__ import annotations

from urllib.parse import urlencode

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute

from graft.routing import Route
from graft.vulns.models import STATUSES
from graft.web import insights
from graft.web.app import WebApp
from graft.web.fixes import pin_snippets
from graft.web.sessions import WebUser

COLUMNS = (  # sortable columns: key, heading
    ("package", "Package"),
    ("ecosystem", "Ecosystem"),
    ("version", "Version"),
    ("risk", "Critical / high"),
    ("status", "Status"),
    ("last_seen", "Last seen"),
)


def routes(web: WebApp) -> list[BaseRoute]:
    vulns = web.ctx.vulns

    async def table(request: Request, user: WebUser) -> Response:
        f = insights.LibraryFilter.parse(request.query_params)
        await vulns.refresh(user.principal.org_id)  # entries seen seconds ago get a status
        result = await insights.library_table(vulns.db, vulns.schemes, user.principal.org_id, f)
        params = {"ecosystem": f.ecosystem, "status": f.status, "q": f.text, "sort": f.sort}

        def link(**changes: object) -> str:
            merged = {**params, **changes}
            return "?" + urlencode({k: v for k, v in merged.items() if v not in ("", None, 1)})

        def sort_link(key: str) -> str:
            """The column again flips the order; a new column starts with its natural one."""
            if f.sort.lstrip("-") == key:
                sort = key if f.sort.startswith("-") else f"-{key}"
            else:
                sort = f"-{key}" if key in ("risk", "last_seen") else key
            return link(sort=sort, page=1)

        return web.render(
            request,
            user,
            "library.html",
            section="library",
            f=f,
            page=min(f.page, result.pages),
            result=result,
            ecosystems=insights.ECOSYSTEMS,
            labels=insights.ECOSYSTEM_LABELS,
            statuses=STATUSES,
            columns=COLUMNS,
            link=link,
            sort_link=sort_link,
        )

    async def entry(request: Request, user: WebUser) -> Response:
        detail = await vulns.library_entry(user.principal.org_id, int(request.path_params["id"]))
        build = detail.patched_build
        snippets = []
        if build is not None:
            snippets = pin_snippets(
                detail.ecosystem,
                detail.package,
                build.version,
                build.install_command,
                web.ctx.settings.os_package_prefix,
            )
        request_link = "/ui/requests?" + urlencode(
            {"ecosystem": detail.ecosystem, "package": detail.package, "version": detail.version}
        )
        return web.render(
            request,
            user,
            "entry.html",
            section="library",
            e=detail,
            labels=insights.ECOSYSTEM_LABELS,
            snippets=snippets,
            request_link=request_link,
        )

    return [
        Route("/library", web.page(table), methods=["GET"]),
        Route("/library/{id:int}", web.page(entry), methods=["GET"]),
    ]
