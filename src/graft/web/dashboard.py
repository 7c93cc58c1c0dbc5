"""The dashboard, the landing page: four charts drawn on the server from the library."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute

from graft.routing import Route
from graft.web import charts, insights
from graft.web.app import WebApp
from graft.web.sessions import WebUser

CRITICAL = charts.Series("critical", "critical")
HIGH = charts.Series("high", "high")
PATCHED = charts.Series("patched", "served as patched builds")
FALLBACK = charts.Series("fallback", "rootio- fallback")
UPSTREAM = charts.Series("upstream", "upstream build")
AGE = charts.Series("age", "days since published")


def routes(web: WebApp) -> list[BaseRoute]:
    vulns = web.ctx.vulns

    async def show(request: Request, user: WebUser) -> Response:
        await vulns.refresh(user.principal.org_id)
        data = await insights.dashboard(vulns.db, vulns.schemes, user.principal.org_id)
        drawn = {
            "open": charts.bar_chart(
                "Open critical and high advisories by ecosystem",
                [(label, (c, h)) for label, c, h in data.open_by_ecosystem],
                [CRITICAL, HIGH],
                chart_id="chart-open",
            )
            if data.open_by_ecosystem
            else None,
            "share": charts.line_chart(
                "Share of installs served as patched builds, by day",
                [(day, share) for day, share, _ in data.patched_share],
                series=PATCHED,
                chart_id="chart-share",
            )
            if data.patched_share
            else None,
            "exposed": charts.bar_chart(
                "Most installed while an advisory is open, through a fallback or upstream build",
                [(label, (f, u)) for label, f, u in data.exposed],
                [FALLBACK, UPSTREAM],
                chart_id="chart-exposed",
            )
            if data.exposed
            else None,
            "oldest": charts.bar_chart(
                "Age of the oldest open advisory per severity, in days",
                [(f"{level} ({osv_id})", (days,)) for level, days, osv_id in data.oldest_open],
                [AGE],
                unit=" d",
                chart_id="chart-oldest",
            )
            if data.oldest_open
            else None,
        }
        return web.render(
            request, user, "dashboard.html", section="dashboard", data=data, charts=drawn
        )

    return [Route("/", web.page(show), methods=["GET"])]
