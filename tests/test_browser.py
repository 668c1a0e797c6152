"""A person's whole visit in headless Chromium: sign in with Hugging Face, see the profile, sign out; every page
in every language, checked by axe-core, at 320 px without sideways scrolling, with screenshots at 375 and 1280 px."""

from __future__ import annotations

import json
import os
import re
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import pytest
from flask import Flask, render_template

from flask_app import create_app
from tests.conftest import ARTIFACTS, Stack, chromium_path, start_stack

pytestmark = pytest.mark.browser
CHROMIUM_ARGS = [
    "--no-sandbox",  # tests run as root in CI
    "--disable-gpu",
    "--no-first-run",
    "--disable-quic",
    # Keep Chromium from reaching for the (closed) network on its own.
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


def with_test_pages(env: dict[str, str]) -> Flask:
    """The site, plus two pages no visit reaches on its own: a bug (500) and the unit's "signed out locally" page."""
    app = create_app(env)

    @app.get("/__test__/boom")
    def boom() -> str:
        raise RuntimeError("a bug, for the 500 page")

    @app.get("/__test__/signed-out")
    def signed_out_locally() -> tuple[str, int]:
        return render_template("auth/signed_out.html"), 503

    return app


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    running = start_stack(tmp_path_factory.mktemp("stack"), make_app=with_test_pages)
    yield running
    running.stop()


@pytest.fixture(scope="module")
def browser() -> Iterator[object]:
    executable = chromium_path()
    if executable is None:
        message = "Chromium not found: apt-get install chromium"
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=executable, headless=True, args=CHROMIUM_ARGS)
        yield launched
        launched.close()


def test_sign_in_profile_sign_out(stack: Stack, browser) -> None:
    from playwright.sync_api import expect

    page = browser.new_page(viewport={"width": 1000, "height": 720})
    page.goto(stack.base_url + "/")
    expect(page.get_by_role("note")).to_contain_text("Local development")
    page.screenshot(path=ARTIFACTS / "1-home-signed-out.png")

    page.get_by_role("main").get_by_role("link", name="Sign in with Hugging Face").click()
    expect(page.get_by_label("Hugging Face username")).to_be_visible()
    page.get_by_label("Hugging Face username").fill("octocat-hf")
    page.get_by_label("Full name").fill("Octo Cat")
    page.screenshot(path=ARTIFACTS / "2-provider-hugging-face.png")
    page.get_by_role("button", name="Authorize").click()

    expect(page.get_by_role("heading", level=1)).to_have_text("Hello, Octo Cat")
    expect(page.get_by_role("main").get_by_text("@octocat-hf")).to_be_visible()
    page.screenshot(path=ARTIFACTS / "3-home-signed-in.png")

    page.get_by_role("link", name="Your profile").click()
    expect(page.get_by_role("link", name="huggingface.co/octocat-hf")).to_have_attribute(
        "href", "https://huggingface.co/octocat-hf"
    )
    expect(page.locator("dd").first).to_have_text("octocat-hf")
    page.screenshot(path=ARTIFACTS / "4-profile.png", full_page=True)
    assert not [cookie for cookie in page.context.cookies() if "eyJ" in cookie["value"]], "a JWT reached the browser"

    page.locator(".account-menu > summary").click()  # the account menu (a disclosure), then its Sign out
    page.locator(".account-menu").get_by_role("button", name="Sign out").click()
    expect(page.get_by_role("status")).to_have_text("You are signed out.")
    expect(page.get_by_role("main").get_by_role("link", name="Sign in with Hugging Face")).to_be_visible()
    assert page.url == stack.base_url + "/"
    page.screenshot(path=ARTIFACTS / "5-signed-out.png")

    page.goto(stack.base_url + "/profile")  # signed out for real: back to the provider's sign-in
    expect(page.get_by_label("Hugging Face username")).to_be_visible()
    page.close()


def test_on_a_space_sign_in_leaves_the_frame_and_completes_top_level(make_stack, browser) -> None:
    """The site framed by another origin (as huggingface.co frames a Space): sign-in opens a top-level tab."""
    from pathlib import Path

    from playwright.sync_api import expect
    from werkzeug.serving import make_server
    from werkzeug.wrappers import Response

    from flask_app import create_app
    from tests.harness import QuietRequestHandler
    from website.settings import DEV_APP_ID, dev_client_secret

    site_url: list[str] = []
    framer = make_server(
        "127.0.0.1", 0, lambda environ, start: Response(
            f'<!doctype html><title>Space</title><iframe title="site" src="{site_url[0]}/" width="900" height="600">',
            mimetype="text/html",
        )(environ, start),
        threaded=True, request_handler=QuietRequestHandler,
    )
    framer_origin = f"http://127.0.0.1:{framer.server_port}"

    def space_site(env: dict[str, str]):
        site_url.append(env["APP_BASE_URL"])
        return create_app({
            **env, "SPACE_ID": "me/site", "SPACE_HOST": "me-site.hf.space", "FRAME_ANCESTORS": framer_origin,
            "LOGTO_ENDPOINT": f"http://localhost:{env['DEVIDP_PORT']}", "LOGTO_APP_ID": DEV_APP_ID,
            "LOGTO_APP_SECRET": dev_client_secret(Path(env["APP_DATA_DIR"])),
            "FLASK_SECRET_KEY": "space-" + "0123456789abcdef" * 2,
        })

    stack = make_stack(make_app=space_site)
    import threading

    threading.Thread(target=framer.serve_forever, daemon=True).start()
    try:
        page = browser.new_page(viewport={"width": 1000, "height": 720})
        page.goto(framer_origin + "/")
        frame = page.frame_locator("iframe[title=site]")
        expect(frame.get_by_role("note").last).to_contain_text("open the site in a new tab")
        with page.context.expect_page() as opened:
            frame.get_by_role("main").get_by_role("link", name="Sign in with Hugging Face").click()
        tab = opened.value
        tab.get_by_label("Hugging Face username").fill("space-visitor")
        tab.get_by_role("button", name="Authorize").click()
        expect(tab.get_by_role("heading", level=1)).to_contain_text("space-visitor")
        assert tab.url == stack.base_url + "/"  # completed top-level, on the site itself
        assert page.frames[1].url == stack.base_url + "/"  # the frame never showed a sign-in page
        tab.screenshot(path=ARTIFACTS / "space-signed-in-top-level.png")
        page.close()
        tab.close()
    finally:
        framer.shutdown()
        framer.server_close()


# ---------------------------------------------------------------- every page, every language

AXE = Path(__file__).resolve().parent / "a11y" / "node_modules" / "axe-core" / "axe.min.js"
LOCALES = {"en": "en-US", "ja": "ja-JP", "zh-CN": "zh-CN"}  # the page language each browser locale gets
BLOCKING = ("serious", "critical")
WORDS = {  # a few of each language's words, to find things by and to see that the page is in that language
    "en": {"welcome": "Welcome to", "sign_in": "Sign in with Hugging Face", "sign_in_again": "Sign in again",
           "username": "Hugging Face username", "authorize": "Authorize", "back": "Back to", "sign_out": "Sign out",
           "signed_out": "You are signed out.", "add_note": "Add note"},
    "ja": {"welcome": "へようこそ", "sign_in": "Hugging Face でサインイン", "sign_in_again": "もう一度サインイン",
           "username": "Hugging Face のユーザー名", "authorize": "許可する", "back": "に戻る", "sign_out": "サインアウト",
           "signed_out": "サインアウトしました。", "add_note": "メモを追加"},
    "zh-CN": {"welcome": "欢迎来到", "sign_in": "使用 Hugging Face 登录", "sign_in_again": "重新登录",
              "username": "Hugging Face 用户名", "authorize": "授权", "back": "返回", "sign_out": "退出登录",
              "signed_out": "你已退出登录。", "add_note": "添加笔记"},
}
WIDER_THAN_THE_SCREEN = """() => {
  const root = document.documentElement;
  const wide = [...document.querySelectorAll('body *')]
    .filter((element) => element.getBoundingClientRect().right > root.clientWidth)
    .slice(0, 5).map((element) => `${element.tagName.toLowerCase()}.${element.className}`);
  return [root.scrollWidth, root.clientWidth, wide];
}"""
AXE_RUN = """async () => {
  const result = await axe.run(document, { resultTypes: ['violations'] });
  return result.violations.map((v) => ({ id: v.id, impact: v.impact, help: v.help,
    targets: v.nodes.slice(0, 5).map((node) => node.target.join(' ')) }));
}"""


@dataclass
class Tour:
    """One language's walk through every page, in one browser context (one sign-in)."""

    page: Any
    lang: str
    stack: Stack
    violations: list[dict[str, Any]] = field(default_factory=list)
    screenshots: int = 0
    header_heights: dict[int, set[float]] = field(default_factory=dict)
    looked: int = 0

    @property
    def words(self) -> dict[str, str]:
        return WORDS[self.lang]

    def look(self, name: str, *, site: bool = True) -> None:
        """The page as it is now: its language, no sideways scrolling at 320 px, axe at 375 px, screenshots at 375 and 1280 px."""
        from playwright.sync_api import expect

        page = self.page
        self.looked += 1
        expect(page.locator("html")).to_have_attribute("lang", self.lang)
        for width in (320, 375, 1280):
            page.set_viewport_size({"width": width, "height": 800})
            if width == 320:
                scroll, client, wide = page.evaluate(WIDER_THAN_THE_SCREEN)
                assert scroll <= client, f"{self.lang} {name}: scrolls sideways at 320 px ({scroll} > {client}): {wide}"
            if site:
                height = page.locator(".site-header").evaluate("header => header.getBoundingClientRect().height")
                self.header_heights.setdefault(width, set()).add(height)
                cut = page.locator(".brand-name").evaluate("name => name.scrollWidth > name.clientWidth")
                assert not cut, f"{self.lang} {name}: the site's name is cut short at {width} px"
            if width == 375:
                page.add_script_tag(path=str(AXE))
                for violation in page.evaluate(AXE_RUN):
                    self.violations.append({"language": self.lang, "page": name, **violation})
            if width in (375, 1280):
                page.screenshot(path=ARTIFACTS / f"{self.lang}-{self.looked:02d}-{name}-{width}.png", full_page=True)
                self.screenshots += 1

    def goto(self, path: str, status: int = 200) -> None:
        response = self.page.goto(self.stack.base_url + path)
        assert response is not None and response.status == status, f"{path}: {response and response.status}"


def without_param(url: str, name: str) -> str:
    parts = urlsplit(url)
    return urlunsplit(parts._replace(query=urlencode([(k, v) for k, v in parse_qsl(parts.query) if k != name])))


def walk(tour: Tour) -> None:
    from playwright.sync_api import expect

    page, words, base_url = tour.page, tour.words, tour.stack.base_url
    main = page.get_by_role("main")

    # Signed out.
    tour.goto("/")
    expect(page.get_by_role("heading", level=1)).to_contain_text(words["welcome"])
    tour.look("home-signed-out")
    for path, status, name in [("/no-such-page", 404, "404"), ("/sign-out", 405, "405"), ("/__test__/boom", 500, "500")]:
        tour.goto(path, status)
        expect(main.get_by_role("link", name=words["sign_in"])).to_have_count(1 if status in (404, 405) else 0)
        tour.look(f"{name}-signed-out")
    tour.goto("/callback", 400)  # the unit's error page: no sign-in in progress
    expect(main.get_by_role("link", name=words["sign_in_again"])).to_be_visible()
    tour.look("sign-in-error-signed-out")
    tour.goto("/__test__/signed-out", 503)
    tour.look("signed-out-locally")

    # The provider, in the site's language (ui_locales): its first screen, as without LOGTO_DIRECT_SIGN_IN, then
    # the simulated Hugging Face page, a refused username, and the sign-in.
    browser_language = {"Accept-Language": LOCALES[tour.lang]}  # what the page's own requests send
    authorize_url = page.request.get(base_url + "/sign-in", max_redirects=0, headers=browser_language).headers["location"]
    assert dict(parse_qsl(urlsplit(authorize_url).query))["ui_locales"] == tour.lang
    page.goto(without_param(authorize_url, "direct_sign_in"))
    expect(page.locator("#back-to-site")).to_have_attribute("href", base_url + "/")
    tour.look("provider-first-screen", site=False)
    page.locator("#continue-huggingface").click()
    expect(page.get_by_label(words["username"])).to_be_visible()
    hugging_face_page = page.url
    tour.look("provider-hugging-face", site=False)
    page.get_by_label(words["username"]).fill("-not-a-name")
    page.locator("form").evaluate("form => { form.noValidate = true; }")  # past the browser's own check
    page.get_by_role("button", name=words["authorize"]).click()
    expect(page.get_by_role("alert")).to_be_visible()
    tour.look("provider-username-refused", site=False)
    page.get_by_label(words["username"]).fill(f"tour-{tour.lang.lower()}")
    page.get_by_role("button", name=words["authorize"]).click()
    expect(page).to_have_url(base_url + "/")

    # Signed in.
    tour.look("home-signed-in")
    for menu in ("language-menu", "account-menu"):
        summary = page.locator(f".{menu} > summary")
        summary.click()
        expect(page.locator(f".{menu}")).to_have_attribute("open", "")
        tour.look(f"{menu}-open")
        summary.click()
    # Back to the provider's page after signing in (what the Back button does): it has expired, and says how back.
    page.goto(hugging_face_page)
    tour.look("provider-sign-in-expired", site=False)
    main.get_by_role("link", name=words["back"]).click()
    expect(page).to_have_url(base_url + "/")
    tour.goto("/profile")
    tour.look("profile")
    tour.goto("/notes")
    page.locator("#note-text").fill(f"A note in {tour.lang}: 日本語, 中文, English, and a-very-long-unbroken-word-" + "x" * 60)
    main.get_by_role("button", name=words["add_note"]).click()
    expect(page.locator(".note-text")).to_have_count(1)
    tour.look("notes")
    page.goto(base_url + "/hf")
    tour.look("hugging-face")
    for path, status, name in [("/no-such-page", 404, "404"), ("/sign-out", 405, "405"), ("/callback", 400, "sign-in-error"),
                               ("/__test__/boom", 500, "500")]:
        tour.goto(path, status)
        expect(main.locator("a[href^='/sign-in']")).to_have_count(0)  # signed in: no sign-in offer
        tour.look(f"{name}-signed-in")

    # Signing out (the account menu's form): the provider's "Signing out…" page (held still for a look by taking out
    # its script, then submitted as the script does), then the site's confirmation.
    def without_scripts(route: Any) -> None:
        fetched = route.fetch()
        route.fulfill(response=fetched, body=re.sub(r"<script>.*?</script>", "", fetched.text(), flags=re.S))

    end_session = f"{tour.stack.provider.endpoint}/oidc/session/end"
    is_end_session = lambda url: url.startswith(end_session + "?")  # noqa: E731
    page.route(is_end_session, without_scripts)  # (a route sees no redirected request: the site's 302 is followed by hand)
    token = page.locator(".account-menu input[name=csrf_token]").input_value()
    signed_out = page.request.post(base_url + "/sign-out", form={"csrf_token": token}, max_redirects=0, headers=browser_language)
    assert signed_out.status == 302 and is_end_session(signed_out.headers["location"])
    page.goto(signed_out.headers["location"])
    expect(page.locator("#back-to-site")).to_be_visible()
    tour.look("provider-signing-out", site=False)
    page.unroute(is_end_session)
    page.locator("form").first.evaluate("form => form.submit()")
    expect(page.get_by_role("status")).to_have_text(words["signed_out"])
    expect(page).to_have_url(base_url + "/")
    tour.look("home-after-sign-out")
    # The provider's "Signed out" page: its end-session without a way back given (no post_logout_redirect_uri).
    page.goto(end_session + "?client_id=local-dev-site")
    expect(page.locator("#back-to-site")).to_be_visible()
    tour.look("provider-signed-out", site=False)


def test_every_page_in_every_language_is_accessible_fits_320px_and_is_photographed(stack: Stack, browser) -> None:
    if not AXE.exists():
        pytest.fail(f"axe-core is not installed: run `make setup` (npm ci in {AXE.parent.parent.parent})")
    violations: list[dict[str, Any]] = []
    screenshots = 0
    for lang, locale in LOCALES.items():
        context = browser.new_context(locale=locale, bypass_csp=True, viewport={"width": 1280, "height": 800})
        try:
            tour = Tour(context.new_page(), lang, stack)
            walk(tour)
        finally:
            context.close()
        violations += tour.violations
        screenshots += tour.screenshots
        for width, heights in tour.header_heights.items():
            assert len(heights) == 1, f"{lang}: the header changes height at {width} px: {sorted(heights)}"
    by_impact = Counter(violation["impact"] for violation in violations)
    (ARTIFACTS / "axe-report.json").write_text(json.dumps(
        {"screenshots": screenshots, "violations_by_impact": by_impact, "violations": violations}, ensure_ascii=False, indent=2,
    ) + "\n")
    blocking = [violation for violation in violations if violation["impact"] in BLOCKING]
    assert not blocking, json.dumps(blocking, ensure_ascii=False, indent=2)


def test_the_language_switcher_works_by_keyboard_and_outlasts_signing_in_and_out(stack: Stack, browser) -> None:
    from playwright.sync_api import expect

    context = browser.new_context(locale="en-US", viewport={"width": 375, "height": 800})
    page = context.new_page()
    try:
        page.goto(stack.base_url + "/")
        expect(page.locator("html")).to_have_attribute("lang", "en")
        for _ in range(6):  # from the top: the skip link, the brand, then the language switcher
            page.keyboard.press("Tab")
            if page.evaluate("() => document.activeElement.matches('.language-menu > summary')"):
                break
        focused = page.evaluate(
            "() => { const s = getComputedStyle(document.activeElement); return [s.outlineStyle, s.outlineWidth]; }"
        )
        assert focused[0] != "none" and float(focused[1].rstrip("px")) >= 2, f"no visible focus: {focused}"
        page.keyboard.press("Enter")
        expect(page.locator(".language-menu")).to_have_attribute("open", "")
        page.keyboard.press("Tab")  # English
        page.keyboard.press("Tab")  # 日本語
        page.keyboard.press("Enter")
        expect(page.locator("html")).to_have_attribute("lang", "ja")
        assert page.url == stack.base_url + "/"
        assert {cookie["name"]: cookie["value"] for cookie in context.cookies()}["lang"] == "ja"

        words = WORDS["ja"]
        page.get_by_role("main").get_by_role("link", name=words["sign_in"]).click()
        expect(page.get_by_label(words["username"])).to_be_visible()  # the provider speaks the site's language
        page.get_by_label(words["username"]).fill("switcher")
        page.get_by_role("button", name=words["authorize"]).click()
        expect(page.locator("html")).to_have_attribute("lang", "ja")
        page.get_by_role("main").get_by_role("button", name=words["sign_out"]).click()
        expect(page.get_by_role("status")).to_have_text(words["signed_out"])
        expect(page.locator("html")).to_have_attribute("lang", "ja")
    finally:
        context.close()
