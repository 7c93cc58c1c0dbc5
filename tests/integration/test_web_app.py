"""The web app end to end: a real `graft serve`, a seeded organization, headless Chromium.

Each test starts a fresh browser context (no cookies) and signs in through the form, as a
person would. Screenshots of every page land in test-artifacts/web/.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import datetime as dt
import json
import re
from collections.abc import Coroutine, Iterator
from typing import Any

import httpx
import pytest
from playwright.sync_api import Browser, Page, expect

from graft.usage import Served
from tests.fixtures.browser import browser_fixture, screenshot  # noqa: F401 (fixture)
from tests.fixtures.dists import make_wheel
from tests.fixtures.web_seed import CRITICAL, HIGH, MEDIUM, Installs, osv, seed, write_osv
from tests.integration.graftserver import TOKEN_LINE, GraftServer

NOW = dt.datetime.now(dt.UTC)


def run_async(coro: Coroutine[Any, Any, None]) -> None:
    with concurrent.futures.ThreadPoolExecutor(1) as pool:
        pool.submit(asyncio.run, coro).result()


DAYS = 14


def advisories() -> list[dict[str, object]]:
    def ago(days: int) -> dt.datetime:
        return NOW - dt.timedelta(days=days)

    return [
        # demo-pkg 1.0: a critical one the patched build fixes, a high one it does not
        osv(
            "GHSA-demo-crit",
            "PyPI",
            "demo-pkg",
            fixed="1.1",
            vector=CRITICAL,
            published=ago(40),
            aliases=["CVE-2026-0001"],
            summary="demo-pkg runs your input",
        ),
        osv(
            "GHSA-demo-high",
            "PyPI",
            "demo-pkg",
            fixed="1.2",
            vector=HIGH,
            published=ago(12),
            aliases=["CVE-2026-0002"],
            summary="demo-pkg leaks a header",
        ),
        osv("GHSA-left-high", "npm", "left-pad", fixed="1.1.0", vector=HIGH, published=ago(90)),
        osv(
            "DSA-openssl",
            "Debian:12",
            "openssl",
            fixed="3.0.15-1~deb12u1",
            vector=CRITICAL,
            published=ago(200),
        ),
        osv(
            "ALPINE-busybox",
            "Alpine:v3.20",
            "busybox",
            fixed="1.36.1-r30",
            vector=HIGH,
            published=ago(30),
        ),
        osv("GHSA-safe-med", "PyPI", "safe-lib", fixed="1.5", vector=MEDIUM, published=ago(5)),
        osv("GHSA-beta-secret", "PyPI", "beta-secret", vector=CRITICAL, published=ago(3)),
    ]


def ramp(start: int, step: int) -> list[int]:
    return [max(0, start + step * i) for i in range(DAYS)]


DEMO = [  # the patched build takes over from the upstream build over two weeks
    Installs("pypi", "demo-pkg", "1.0", Served.UPSTREAM, ramp(14, -1)),
    Installs("pypi", "demo-pkg", "1.0+graft.1", Served.PATCHED, ramp(1, 1)),
    Installs("npm", "left-pad", "1.0.0", Served.UPSTREAM, [3] * DAYS),
    Installs("debian", "openssl", "3.0.11-1~deb12u2", Served.FALLBACK, [2] * DAYS, "bookworm"),
    Installs("alpine", "busybox", "1.36.1-r28", Served.FALLBACK, [1] * DAYS, "3.20"),
    Installs("pypi", "safe-lib", "2.0", Served.UPSTREAM, [1] * DAYS),
]
BETA = [Installs("pypi", "beta-secret", "9.9", Served.UPSTREAM, [5] * 3)]


@pytest.fixture(scope="module")
def web(tmp_path_factory: pytest.TempPathFactory) -> Iterator[GraftServer]:
    root = tmp_path_factory.mktemp("graft-web")
    srv = GraftServer(
        root / "data",
        auth_cache_seconds=1,
        auth_failure_limit=1000,
        usage_flush_seconds=0.2,
    ).start()
    # organization B, with an admin of its own
    srv.cli("org", "create", "beta")
    srv.cli("account", "create", "bob", "--org", "beta")
    out = srv.cli("token", "create", "--org", "beta", "--account", "bob", "--scope", "admin")
    srv.beta_token = TOKEN_LINE.findall(out.stdout)[-1]  # type: ignore[attr-defined]
    # demo's patched build of demo-pkg 1.0, fixing the critical advisory only
    wheel = make_wheel(root / "dists", "demo-pkg", "1.0+graft.1")
    srv.cli(
        "publish",
        "pypi",
        str(wheel),
        "--url",
        srv.url,
        "--token",
        srv.token,
        "--fixes",
        "CVE-2026-0001",
        "--allow-missing-upstream",
    )
    # in a thread of its own: Playwright's sync API may already run a loop in this one
    run_async(
        seed(
            f"sqlite+aiosqlite:///{srv.data_dir / 'graft.db'}",
            osv_dir=write_osv(root / "osv", advisories()),
            installs={("demo", "admin"): DEMO, ("beta", "bob"): BETA},
        )
    )
    yield srv
    srv.stop()


def sign_in(browser: Browser, srv: GraftServer, token: str, *, width: int = 1280) -> Page:
    context = browser.new_context(viewport={"width": width, "height": 900}, base_url=srv.url)
    context.set_default_timeout(10_000)
    page = context.new_page()
    page.goto("/ui/")
    expect(page).to_have_url(re.compile(r"/ui/signin\?next="))
    page.get_by_label("Graft token").fill(token)
    page.get_by_role("button", name="Sign in").click()
    expect(page).to_have_url(f"{srv.url}/ui/")
    return page


def test_sign_in_rejects_a_bad_token_with_a_readable_message(
    browser: Browser, web: GraftServer
) -> None:
    page = browser.new_context(base_url=web.url).new_page()
    page.goto("/ui/signin")
    screenshot(page, "signin")
    page.get_by_label("Graft token").fill("graft_not-a-token")
    page.get_by_role("button", name="Sign in").click()
    expect(page.get_by_role("alert")).to_contain_text("not a Graft token")
    page.get_by_label("Graft token").fill("graft_" + "A" * 49)  # well formed, wrong checksum
    page.get_by_role("button", name="Sign in").click()
    expect(page.get_by_role("alert")).to_contain_text("not a Graft token")
    assert page.context.cookies() == [
        c for c in page.context.cookies() if c["name"] != "graft_session"
    ]


def test_session_cookie_is_httponly_and_samesite_and_sign_out_ends_it(
    browser: Browser, web: GraftServer
) -> None:
    page = sign_in(browser, web, web.token)
    cookie = next(c for c in page.context.cookies() if c["name"] == "graft_session")
    assert cookie["httpOnly"] is True
    assert cookie["sameSite"] == "Lax"
    assert page.evaluate("document.cookie") == ""  # scripts cannot read it
    page.get_by_role("button", name="Sign out").click()
    expect(page.get_by_role("status")).to_contain_text("signed out")
    # the old cookie value is dead on the server, not just forgotten by the browser
    old = httpx.get(
        f"{web.url}/ui/tokens", cookies={"graft_session": cookie["value"]}, follow_redirects=False
    )
    assert old.status_code == 303 and "/ui/signin" in old.headers["location"]


def test_rotate_a_token_and_see_the_grace_period(browser: Browser, web: GraftServer) -> None:
    page = sign_in(browser, web, web.token)
    page.get_by_role("link", name="Tokens").click()
    # a token to rotate, created through the page
    page.get_by_label("Name").fill("ci builds")
    page.get_by_role("button", name="Create token").click()
    expect(page.get_by_role("heading", name="Token created")).to_be_visible()
    created = page.locator("#new-token").inner_text().strip()
    assert TOKEN_LINE.fullmatch(created)
    for snippet in ("docker", "netrc", "npmrc", "maven", "apt", "apk"):
        assert created in page.locator(f"#snippet-{snippet}").text_content() or snippet == "maven"
    assert "docker login" in page.locator("#snippet-docker").text_content()
    screenshot(page, "token-created")
    assert httpx.get(f"{web.url}/api/whoami", auth=("x", created)).status_code == 200

    page.get_by_role("link", name="Back to the tokens").click()
    row = page.locator("tr[data-status=active]", has_text="ci builds")
    row.get_by_label("Old token keeps working for").select_option(label="old works 1 hour")
    row.get_by_role("button", name="Rotate").click()
    expect(page.get_by_role("heading", name="Token rotated")).to_be_visible()
    expect(page.locator("#grace")).to_contain_text("keeps working until")
    expect(page.locator("#grace")).to_contain_text("in 59 minutes")
    rotated = page.locator("#new-token").inner_text().strip()
    assert rotated != created
    screenshot(page, "token-rotated")
    # both work during the grace period
    assert httpx.get(f"{web.url}/api/whoami", auth=("x", created)).status_code == 200
    assert httpx.get(f"{web.url}/api/whoami", auth=("x", rotated)).status_code == 200
    page.get_by_role("link", name="Back to the tokens").click()
    expect(page.locator("tr[data-status=expiring]", has_text="ci builds")).to_have_count(1)
    screenshot(page, "tokens")


def test_copy_button_copies_the_setup_snippet(browser: Browser, web: GraftServer) -> None:
    page = sign_in(browser, web, web.token)
    page.context.grant_permissions(["clipboard-read", "clipboard-write"])
    page.get_by_role("link", name="Setup").click()
    page.get_by_role("link", name="npm", exact=True).click()
    snippet = page.locator("#setup-npm").inner_text()
    assert f"registry={web.url}/npm/" in snippet
    page.get_by_role("button", name="Copy the npm configuration").click()
    expect(page.get_by_role("button", name="Copy the npm configuration")).to_have_text("Copied")
    assert page.evaluate("navigator.clipboard.readText()") == snippet
    screenshot(page, "setup")


def test_a_form_without_the_csrf_token_is_refused(web: GraftServer, browser: Browser) -> None:
    page = sign_in(browser, web, web.token)
    cookie = next(c for c in page.context.cookies() if c["name"] == "graft_session")
    jar = {"graft_session": cookie["value"]}
    tokens_before = web.cli("token", "list", "--org", "demo", "--json").stdout
    for data in ({}, {"csrf": "forged"}):
        r = httpx.post(
            f"{web.url}/ui/tokens", cookies=jar, data={**data, "account": "admin", "scope": "admin"}
        )
        assert r.status_code == 403 and "did not come from this page" in r.text
    csrf = page.locator("input[name=csrf]").first.get_attribute("value")
    r = httpx.post(
        f"{web.url}/ui/tokens",
        cookies=jar,
        headers={"Origin": "http://evil.example"},
        data={"csrf": csrf, "account": "admin", "scope": "admin"},
    )
    assert r.status_code == 403
    assert web.cli("token", "list", "--org", "demo", "--json").stdout == tokens_before


def test_organization_b_never_sees_a_tokens(browser: Browser, web: GraftServer) -> None:
    page = sign_in(browser, web, web.beta_token)  # type: ignore[attr-defined]
    page.get_by_role("link", name="Tokens").click()
    text = page.locator("main").inner_text()
    assert "demo" not in text and "bob" in text
    demo_ids = [
        t["id"] for t in json.loads(web.cli("token", "list", "--org", "demo", "--json").stdout)
    ]
    csrf = page.locator("input[name=csrf]").first.get_attribute("value")
    cookie = next(c for c in page.context.cookies() if c["name"] == "graft_session")
    r = httpx.post(
        f"{web.url}/ui/tokens/{demo_ids[0]}/revoke",
        cookies={"graft_session": cookie["value"]},
        data={"csrf": csrf},
    )
    assert r.status_code == 404
    assert httpx.get(f"{web.url}/api/whoami", auth=("x", web.token)).status_code == 200


def test_a_read_token_sees_no_token_management(browser: Browser, web: GraftServer) -> None:
    out = web.cli("token", "create", "--org", "demo", "--account", "admin", "--scope", "read")
    page = sign_in(browser, web, TOKEN_LINE.findall(out.stdout)[-1])
    expect(page.get_by_role("link", name="My Library")).to_be_visible()
    expect(page.get_by_role("link", name="Tokens")).to_have_count(0)
    response = page.goto("/ui/tokens")
    assert response is not None and response.status == 403
    expect(page.get_by_role("alert")).to_contain_text("needs a token with the 'admin' scope")


def test_phone_width_has_no_horizontal_scroll(browser: Browser, web: GraftServer) -> None:
    page = sign_in(browser, web, web.token, width=390)
    pages = ("/ui/", "/ui/library", "/ui/requests", "/ui/tokens", "/ui/setup")
    for path in pages:
        name = (path.strip("/").split("/")[-1] or "dashboard") + "-phone"
        page.goto(path)
        overflow = page.evaluate("document.documentElement.scrollWidth - window.innerWidth")
        assert overflow <= 0, f"{path} scrolls sideways by {overflow}px"
        screenshot(page, name)


def test_dashboard_charts_are_drawn_from_the_seeded_data(
    browser: Browser, web: GraftServer
) -> None:
    page = sign_in(browser, web, web.token)
    expect(page.get_by_role("heading", name="Dashboard")).to_be_visible()

    def bars(chart: str) -> dict[tuple[str, str], float]:
        marks = page.locator(f"#{chart} [data-value]")
        return {
            (m.get_attribute("data-label") or "", m.get_attribute("data-series") or ""): float(
                m.get_attribute("data-value") or 0
            )
            for m in marks.all()
        }

    # open critical/high per ecosystem: demo-pkg 1.0 upstream (crit + high), the patched
    # build (high still open), left-pad (high), openssl (crit), busybox (high)
    assert bars("chart-open") == {
        ("PyPI", "critical"): 1,
        ("PyPI", "high"): 2,
        ("Debian", "critical"): 1,
        ("npm", "high"): 1,
        ("Alpine", "high"): 1,
    }
    # the patched share climbs day by day, from 1 of 14+1+3+2+1+1 to 14 of 1+14+...
    share = page.locator("#chart-share circle[data-value]")
    expect(share).to_have_count(DAYS)
    values = [float(v.get_attribute("data-value") or 0) for v in share.all()]
    assert values == sorted(values) and values[0] < 0.1 and values[-1] > 0.6
    assert values[-1] == pytest.approx(14 / (14 + 1 + 3 + 2 + 1 + 1), abs=1e-3)
    # what to patch next: installed through upstream or a fallback while an advisory is open
    exposed = bars("chart-exposed")
    assert exposed[("demo-pkg (PyPI)", "upstream")] == sum(ramp(14, -1))
    assert exposed[("openssl (Debian)", "fallback")] == 2 * DAYS
    assert ("safe-lib (PyPI)", "upstream") not in exposed  # 2.0 is not affected
    # the oldest open advisory per severity, in days
    oldest = bars("chart-oldest")
    assert oldest[("critical (DSA-openssl)", "age")] == 200
    assert oldest[("high (GHSA-left-high)", "age")] == 90
    assert "beta-secret" not in page.content()
    screenshot(page, "dashboard")


def test_filter_the_library_to_os_packages_and_open_one(browser: Browser, web: GraftServer) -> None:
    page = sign_in(browser, web, web.token)
    page.get_by_role("link", name="My Library").click()
    rows = page.locator("table.library tbody tr")
    expect(rows).to_have_count(len(DEMO))
    expect(page.locator(".counts [data-ecosystem=os]")).to_contain_text("2")
    screenshot(page, "library")
    page.get_by_label("Ecosystem", exact=True).select_option(
        label="OS packages (Debian, Ubuntu, Alpine)"
    )
    expect(page).to_have_url(re.compile(r"ecosystem=os"))
    expect(rows).to_have_count(2)
    assert {r.get_attribute("data-ecosystem") for r in rows.all()} == {"debian", "alpine"}
    expect(page.locator("#library-summary")).to_contain_text("2 entries")
    screenshot(page, "library-os")
    # text search and status filter together
    page.goto("/ui/library")
    page.get_by_label("Package name").fill("demo")
    page.get_by_role("button", name="Apply").click()
    expect(rows).to_have_count(2)
    page.get_by_label("Status", exact=True).select_option("patched available")
    expect(rows).to_have_count(1)

    page.get_by_role("link", name="demo-pkg").click()
    expect(page.get_by_role("heading", name="demo-pkg 1.0")).to_be_visible()
    expect(page.locator("#entry-status")).to_have_text("patched available")
    before = page.locator("#advisories-before tr[data-advisory]")
    after = page.locator("#advisories-after tr[data-advisory]")
    expect(before).to_have_count(2)
    expect(after).to_have_count(1)
    expect(after).to_have_attribute("data-advisory", "GHSA-demo-high")
    fix = page.locator("#fix")
    expect(fix).to_contain_text("1.0+graft.1")
    expect(fix.locator("pre").first).to_contain_text('pip install "demo-pkg==1.0+graft.1"')
    page.context.grant_permissions(["clipboard-read", "clipboard-write"])
    fix.get_by_role("button", name="Copy Command").click()
    assert page.evaluate("navigator.clipboard.readText()") == 'pip install "demo-pkg==1.0+graft.1"'
    screenshot(page, "library-entry")


def test_request_a_patch_from_a_library_row(browser: Browser, web: GraftServer) -> None:
    page = sign_in(browser, web, web.token)
    page.goto("/ui/library?q=openssl")
    page.get_by_role("link", name="openssl").click()
    expect(page.locator("#fix")).to_contain_text("No patched build")
    page.get_by_role("link", name="Request a patch").click()
    # prefilled from the library row
    expect(page.get_by_label("Package")).to_have_value("openssl")
    expect(page.get_by_label("Version")).to_have_value("3.0.11-1~deb12u2")
    expect(page.get_by_label("Ecosystem", exact=True)).to_have_value("debian")
    page.get_by_label("Reason").fill("DSA-openssl blocks the release")
    page.get_by_role("button", name="Submit request").click()
    expect(page.get_by_role("status")).to_contain_text("Request submitted")
    row = page.locator("table.requests tbody tr", has_text="openssl")
    expect(row).to_have_attribute("data-status", "open")
    # an admin moves it on
    row.get_by_label("New status of the request for openssl").select_option("in progress")
    row.get_by_role("button", name="Set").click()
    expect(page.locator("table.requests tbody tr", has_text="openssl")).to_have_attribute(
        "data-status", "in progress"
    )
    screenshot(page, "requests")
    # a bad request is refused with the reason, nothing stored
    page.get_by_label("Ecosystem", exact=True).select_option("pypi")
    page.get_by_label("Package").fill("demo-pkg")
    page.get_by_label("Version").fill("not a version!")
    page.get_by_role("button", name="Submit request").click()
    expect(page.get_by_role("alert")).to_contain_text("not a valid pypi version")
    expect(page.locator("table.requests tbody tr")).to_have_count(1)


def test_organization_b_never_sees_a_library_or_requests(
    browser: Browser, web: GraftServer
) -> None:
    page = sign_in(browser, web, web.beta_token)  # type: ignore[attr-defined]
    assert "demo-pkg" not in page.content() and "openssl" not in page.content()
    page.get_by_role("link", name="My Library").click()
    rows = page.locator("table.library tbody tr")
    expect(rows).to_have_count(1)
    expect(rows).to_contain_text("beta-secret")
    page.get_by_role("link", name="Requests").click()
    assert "openssl" not in page.locator("main").inner_text()
    # A's entries by id: not found, as if they did not exist
    demo = sign_in(browser, web, web.token)
    demo.goto("/ui/library?q=openssl")
    href = demo.get_by_role("link", name="openssl").get_attribute("href")
    assert href
    response = page.goto(href)
    assert response is not None and response.status == 404
    screenshot(page, "isolation-404")
