"""The web app end to end: a real `graft serve`, a seeded organization, headless Chromium.

Each test starts a fresh browser context (no cookies) and signs in through the form, as a
person would. Screenshots of every page land in test-artifacts/web/.
"""

from __future__ import annotations

import re
from collections.abc import Iterator

import httpx
import pytest
from playwright.sync_api import Browser, Page, expect

from tests.fixtures.browser import browser, screenshot  # noqa: F401 (fixture)
from tests.integration.graftserver import TOKEN_LINE, GraftServer


@pytest.fixture(scope="module")
def web(tmp_path_factory: pytest.TempPathFactory) -> Iterator[GraftServer]:
    srv = GraftServer(
        tmp_path_factory.mktemp("graft-web") / "data",
        auth_cache_seconds=1,
        auth_failure_limit=1000,
        usage_flush_seconds=0.2,
    ).start()
    # organization B, with an admin of its own
    srv.cli("org", "create", "beta")
    srv.cli("account", "create", "bob", "--org", "beta")
    out = srv.cli("token", "create", "--org", "beta", "--account", "bob", "--scope", "admin")
    srv.beta_token = TOKEN_LINE.findall(out.stdout)[-1]  # type: ignore[attr-defined]
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
    assert page.context.cookies() == [c for c in page.context.cookies() if c["name"] != "graft_session"]


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
    demo_ids = [t["id"] for t in __import__("json").loads(
        web.cli("token", "list", "--org", "demo", "--json").stdout
    )]
    csrf = page.locator("input[name=csrf]").first.get_attribute("value")
    cookie = next(c for c in page.context.cookies() if c["name"] == "graft_session")
    r = httpx.post(
        f"{web.url}/ui/tokens/{demo_ids[0]}/revoke",
        cookies={"graft_session": cookie["value"]},
        data={"csrf": csrf},
    )
    assert r.status_code == 404
    assert httpx.get(f"{web.url}/api/whoami", auth=("x", web.token)).status_code == 200


def test_phone_width_has_no_horizontal_scroll(browser: Browser, web: GraftServer) -> None:
    page = sign_in(browser, web, web.token, width=390)
    for path, name in (("/ui/tokens", "tokens-phone"), ("/ui/setup", "setup-phone")):
        page.goto(path)
        overflow = page.evaluate("document.documentElement.scrollWidth - window.innerWidth")
        assert overflow <= 0, f"{path} scrolls sideways by {overflow}px"
        screenshot(page, name)
