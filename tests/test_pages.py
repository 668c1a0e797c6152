"""The site's look, over HTTP: one stylesheet and no inline style, a favicon, its own 404/405/500 pages that fit the
visitor (a sign-in offer only to signed-out visitors), and "You are signed out" once after signing out."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import requests
from flask import Flask

from flask_app import create_app
from tests.conftest import Stack, forms_in, sign_in

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture
def app(tmp_path: Path) -> Flask:
    site = create_app({"APP_DATA_DIR": str(tmp_path)})

    @site.get("/boom")
    def boom() -> str:
        raise RuntimeError("a bug")

    return site


def get(app: Flask, path: str):
    response = app.test_client().get(path, headers={"Host": "localhost:3000"})
    response.get_data()  # read whole, then let go of the file a static answer holds open
    response.close()
    return response


def test_the_styles_come_from_one_stylesheet_the_csp_allows(app):
    page = get(app, "/")
    assert '<link rel="stylesheet" href="/static/site.css">' in page.text
    assert "<style" not in page.text and " style=" not in page.text
    assert re.search(r"style-src [^;]*'self'", page.headers["Content-Security-Policy"])
    css = get(app, "/static/site.css")
    assert css.status_code == 200 and css.mimetype == "text/css"
    assert "word-break: break-all" not in css.text and "overflow-wrap: anywhere" in css.text


def test_no_template_carries_an_inline_style():
    for template in [*ROOT.glob("templates/**/*.html"), *ROOT.glob("flask_logto/templates/**/*.html")]:
        if template.name == "space_setup.html":  # the Space's setup page is its own app, with a nonce for its <style>
            continue
        assert "<style" not in template.read_text() and " style=" not in template.read_text(), template


def test_the_favicon_is_linked_and_answers_at_favicon_ico_too(app):
    assert '<link rel="icon" href="/static/favicon.svg" type="image/svg+xml">' in get(app, "/").text
    linked, legacy = get(app, "/static/favicon.svg"), get(app, "/favicon.ico")
    assert linked.status_code == legacy.status_code == 200
    assert legacy.mimetype == "image/svg+xml" and legacy.data == linked.data and legacy.data.startswith(b"<svg")


@pytest.mark.parametrize("path, status, title", [
    ("/no-such-page", 404, "Page not found"), ("/sign-out", 405, "Not available this way"),
    ("/boom", 500, "Something went wrong"),
])
def test_error_pages_are_the_sites_own_and_offer_sign_in_where_it_makes_sense(app, path, status, title):
    page = get(app, path)
    assert page.status_code == status and f"<h1>{title}</h1>" in page.text and f"Error {status}" in page.text
    assert "The requested URL" not in page.text and "Werkzeug" not in page.text
    assert "not allowed for the requested URL" not in page.text
    main = page.text.split('<main id="content" class="card">')[1]
    assert ('href="/sign-in"' in main) == (status != 500)
    assert '<link rel="stylesheet" href="/static/site.css">' in page.text


@pytest.mark.parametrize("path, status", [("/no-such-page", 404), ("/sign-out", 405), ("/callback", 400)])
def test_a_signed_in_visitor_is_never_offered_sign_in(stack: Stack, path, status):
    http = requests.Session()
    sign_in(stack, http, "signed-in-errors")
    page = http.get(stack.base_url + path, timeout=10)
    assert page.status_code == status
    assert 'href="/sign-in' not in page.text and ">Sign in<" not in page.text and "Sign in again" not in page.text


def test_signing_out_says_so_once_on_the_home_page(stack: Stack):
    http = requests.Session()
    sign_in(stack, http, "leaver")
    home = http.get(stack.base_url + "/", timeout=10).text
    token = next(form for form in forms_in(home) if form["action"] == "/sign-out")["fields"]["csrf_token"]  # type: ignore[index]
    out = http.post(stack.base_url + "/sign-out", data={"csrf_token": token}, allow_redirects=False, timeout=10)
    assert out.status_code == 302
    page = http.get(out.headers["Location"], timeout=10)  # the provider's sign-out page: its form, as a browser submits it
    form = forms_in(page.text)[0]
    back = http.post(requests.compat.urljoin(page.url, form["action"]), data=form["fields"], timeout=10)
    assert back.url == stack.base_url + "/"
    assert '<p class="flash signed-out" role="status">You are signed out.</p>' in back.text
    assert "You are signed out." not in http.get(stack.base_url + "/", timeout=10).text

