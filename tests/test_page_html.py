"""Every page's HTML, byte for byte, in English, Japanese and Chinese, against the pages as they were before the
rendering was made cheap (tests/fixtures/pages/, recorded from the code before that change): whatever the speed-ups
fold or cache, nobody sees a different page. Only what changes per request (the CSRF token, the CSP nonce) and
per run (the data folder) is normalised.

After a deliberate change to a page: `UPDATE_PAGE_SNAPSHOTS=1 pytest tests/test_page_html.py`, then read the diff.
"""

from __future__ import annotations

import json
import os
import re
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient

from flask_app import create_app
from tests.harness import ROOMY_LIMITS

SNAPSHOTS = Path(__file__).resolve().parent / "fixtures" / "pages"
LANGUAGES = ("en", "ja", "zh-CN")
USER = {
    "sub": "u1abcdef", "name": "Ada <b>&\"'Lovelace", "username": None, "hf_username": "ada-l", "hf_name": "Ada L.",
    "hf_id": "64f0c0ffee", "avatar": None, "email": "ada@example.com", "auth_time": None,
    "hf_orgs": [
        {"name": "acme", "display_name": "Acme Inc", "role": "admin", "is_enterprise": True, "avatar": None},
        {"name": "beta-lab", "display_name": None, "role": None, "is_enterprise": False, "avatar": None},
    ],
}
USERINFO = {"sub": "u1abcdef", "name": "Ada Lovelace", "username": None, "email": "ada@example.com"}
PAGES = {  # name: (path, signed in)
    "home-signed-out": ("/", False),
    "home": ("/", True),
    "profile": ("/profile", True),
    "notes": ("/notes", True),
    "not-found": ("/no-such-page", True),
    "callback-error": ("/callback", False),
}


@pytest.fixture(scope="module")
def app(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Flask]:
    data_dir = tmp_path_factory.mktemp("pages")
    yield create_app({"APP_DATA_DIR": str(data_dir), "APP_BASE_URL": "http://localhost:3000", **ROOMY_LIMITS})


def sign_in(client: FlaskClient) -> None:
    not_due = int(time.time()) + 3600
    with client.session_transaction() as stored:
        stored["logto.idToken"] = "an-id-token"
        stored["logto.accessTokenMap"] = json.dumps({"x": {"": {"token": "an-access-token", "expiresAt": not_due}}})
        stored["auth.user"] = dict(USER)
        stored["auth.userinfo"] = dict(USERINFO)


def normalised(html: str, app: Flask) -> str:
    html = re.sub(r'(name="csrf_token" value=)"[^"]*"', r'\1"CSRF"', html)
    html = re.sub(r'nonce="[^"]*"', 'nonce="NONCE"', html)
    return html.replace(app.config["LOGTO_DATA_DIR"], "DATA_DIR")


def page(app: Flask, name: str, language: str) -> str:
    path, signed_in = PAGES[name]
    client = app.test_client()
    if signed_in:
        sign_in(client)
    answer = client.get(path, headers={"Accept-Language": language})
    return f"{answer.status_code}\n{normalised(answer.text, app)}"


@pytest.mark.parametrize("language", LANGUAGES)
@pytest.mark.parametrize("name", PAGES)
def test_each_page_is_the_same_html_as_before(app: Flask, name: str, language: str) -> None:
    snapshot = SNAPSHOTS / f"{name}.{language}.html"
    html = page(app, name, language)
    if os.environ.get("UPDATE_PAGE_SNAPSHOTS") == "1":
        snapshot.parent.mkdir(parents=True, exist_ok=True)
        snapshot.write_text(html, encoding="utf-8")
    assert html == snapshot.read_text(encoding="utf-8")


def test_the_snapshots_differ_by_language(app: Any) -> None:
    """A check that can fail: the snapshots are real pages, translated (not one English page three times)."""
    for name in PAGES:
        texts = {(SNAPSHOTS / f"{name}.{language}.html").read_text(encoding="utf-8") for language in LANGUAGES}
        assert len(texts) == len(LANGUAGES), name


# ---------------------------------------------------------------- the folding itself (website/templating.py)


@pytest.fixture
def folding_app(tmp_path: Path) -> Flask:
    app = create_app({"APP_DATA_DIR": str(tmp_path), "APP_BASE_URL": "http://localhost:3000", **ROOMY_LIMITS})
    templates = tmp_path / "folding"
    templates.mkdir()
    (templates / "shadowed.html").write_text(
        '{% macro _(text) %}[{{ text }}]{% endmacro %}{{ _("Notes") }}|{{ gettext("Notes") }}', encoding="utf-8")
    (templates / "methods.html").write_text(
        '{{ _("Notes").upper() }}|{{ _("Notes")[0] }}|{{ _("Sign in") ~ "!" }}|{{ url_for("site.profile") }}',
        encoding="utf-8")
    from jinja2 import ChoiceLoader, FileSystemLoader

    app.jinja_env.loader = ChoiceLoader([FileSystemLoader(str(templates)), app.jinja_env.loader])
    return app


def render(app: Flask, template: str, language: str, script_root: str = "") -> str:
    from flask import render_template

    with app.test_request_context("/", base_url=f"http://localhost{script_root}/", headers={"Accept-Language": language}):
        return render_template(template)


def test_folded_calls_keep_their_meaning(folding_app: Flask) -> None:
    assert render(folding_app, "methods.html", "en") == "NOTES|N|Sign in!|/profile"
    assert render(folding_app, "methods.html", "ja") == "メモ|メ|サインイン!|/profile"
    assert render(folding_app, "methods.html", "en", "/site") == "NOTES|N|Sign in!|/site/profile"  # per script root


def test_a_template_that_shadows_a_name_is_not_folded(folding_app: Flask) -> None:
    assert render(folding_app, "shadowed.html", "ja") == "[Notes]|メモ"  # the macro's `_`; gettext at render time


def test_script_roots_from_requests_cannot_grow_the_compiled_templates_without_bound(folding_app: Flask) -> None:
    from website.templating import MAX_OVERLAYS

    for number in range(MAX_OVERLAYS + 20):
        assert render(folding_app, "methods.html", "en", f"/root{number}").endswith(f"/root{number}/profile")
    assert len(folding_app.jinja_env.__dict__["_language_overlays"]) == MAX_OVERLAYS


def test_url_for_outside_a_request_is_flasks(folding_app: Flask) -> None:
    from website.templating import url_for

    folding_app.config["SERVER_NAME"] = "localhost:3000"
    with folding_app.app_context():
        assert url_for("site.profile") == "http://localhost:3000/profile"
