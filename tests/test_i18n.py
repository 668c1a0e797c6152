"""English, Japanese and Simplified Chinese: complete catalogs, no untranslated template text, the visitor's choice
(or their browser's) on every page, at Logto (`ui_locales`) and on the local provider's pages; the sign-in unit
in English in an app without Flask-Babel."""

from __future__ import annotations

import re
from dataclasses import dataclass
from html.parser import HTMLParser
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import pytest
import requests
from babel.messages.catalog import Catalog
from babel.messages.extract import DEFAULT_KEYWORDS, extract_from_dir
from babel.messages.frontend import parse_mapping_cfg
from babel.messages.pofile import read_po
from flask import Flask, request
from flask_babel import Babel

from client import LogtoAuth
from flask_app import create_app
from flask_logto.i18n import CATALOGS as UNIT_CATALOGS
from tests.conftest import Stack, csrf_token_in, forms_in, page_text, sign_in, start_sign_in
from website.languages import CATALOGS, LANGUAGES

ROOT = Path(__file__).resolve().parent.parent
TRANSLATED = ("ja", "zh_CN")
PLACEHOLDER = re.compile(r"%\((\w+)\)s")
# Folders `make messages` never reads (babel.cfg's patterns would not match in them anyway; this keeps the walk short).
NOT_SOURCES = {"node_modules", "tests", "bench", "tools", "migrations", "instance", "test-artifacts", "translations",
               "docs", "static", "flask_logto"}  # the unit's are its own domain (UNIT), read from its folder
SAMPLES = {"en": "Welcome to", "ja": "へようこそ", "zh-CN": "欢迎来到"}  # the signed-out home page's heading


@dataclass(frozen=True)
class Domain:
    """One set of catalogs: the messages babel.cfg finds under `sources` (with `keywords`), translated in `catalogs`."""

    name: str
    sources: Path
    catalogs: Path
    keywords: tuple[str, ...]

    def catalog(self, locale: str) -> Catalog:
        with (self.catalogs / locale / "LC_MESSAGES" / f"{self.name}.po").open("rb") as po_file:
            return read_po(po_file, locale=locale)


SITE = Domain("messages", ROOT, CATALOGS, ("lazy_gettext",))
UNIT = Domain("flask_logto", ROOT / "flask_logto", UNIT_CATALOGS, ("logto_gettext",))


def extracted_messages(domain: Domain) -> dict[str, str]:
    """Every message babel.cfg finds in a domain's sources and templates (msgid: where), as `make messages` does."""
    with (ROOT / "babel.cfg").open() as config:
        method_map, options_map = parse_mapping_cfg(config)
    found: dict[str, str] = {}
    for filename, lineno, message, _comments, _context in extract_from_dir(
        str(domain.sources), method_map, options_map, keywords={**DEFAULT_KEYWORDS, **dict.fromkeys(domain.keywords)},
        directory_filter=lambda path: not Path(path).name.startswith((".", "_")) and Path(path).name not in NOT_SOURCES,
    ):
        for msgid in message if isinstance(message, tuple) else (message,):
            if msgid:
                found.setdefault(msgid, f"{filename}:{lineno}")
    return found


@pytest.mark.parametrize("domain", [SITE, UNIT], ids=lambda domain: domain.name)
def test_the_catalogs_translate_every_message_and_nothing_is_fuzzy(domain: Domain):
    messages = extracted_messages(domain)
    assert len(messages) > (90 if domain is SITE else 30)  # the extraction did find the messages
    for locale in TRANSLATED:
        catalog = domain.catalog(locale)
        assert not catalog.fuzzy, f"{locale}: the catalog's header is marked fuzzy"
        problems = []
        for msgid, where in messages.items():
            entry = catalog.get(msgid)
            translation = entry.string if entry is not None else None
            if isinstance(translation, tuple):
                translation = translation[0] if all(translation) else ""
            if not translation:
                problems.append(f"{where}: no {locale} translation of {msgid!r}")
            elif entry.fuzzy:
                problems.append(f"{where}: the {locale} translation of {msgid!r} is fuzzy")
            elif sorted(PLACEHOLDER.findall(msgid)) != sorted(PLACEHOLDER.findall(translation)):
                problems.append(f"{where}: the {locale} translation of {msgid!r} has other placeholders: {translation!r}")
        assert not problems, "\n".join(problems)


@pytest.mark.parametrize("domain", [SITE, UNIT], ids=lambda domain: domain.name)
def test_each_catalog_holds_only_its_own_messages(domain: Domain):
    """The site's catalogs hold none of the unit's messages (the unit brings its own), and neither keeps stale ones."""
    messages = extracted_messages(domain)
    for locale in TRANSLATED:
        assert sorted(entry.id for entry in domain.catalog(locale) if entry.id and entry.id not in messages) == []


def test_the_units_templates_translate_in_the_units_domain():
    """The app's `_` reads the app's catalogs, which lack the unit's messages: the unit's pages call `logto_gettext`."""
    for template in sorted((ROOT / "flask_logto" / "templates").glob("**/*.html")):
        assert not re.search(r"(?<![\w.])(_|gettext|ngettext)\(", template.read_text(encoding="utf-8")), template


class _HumanText(HTMLParser):
    """Text a person reads (text nodes and the attributes read out or shown) outside <style>, <script> and <code>."""

    SHOWN_ATTRIBUTES = {"alt", "title", "aria-label", "placeholder", "label"}

    def __init__(self) -> None:
        super().__init__()
        self.skipping: list[str] = []
        self.found: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag in ("style", "script", "code"):
            self.skipping.append(tag)
        for name, value in attrs:
            if name in self.SHOWN_ATTRIBUTES or (name == "value" and ("type", "submit") in attrs):
                self.check(value or "")

    def handle_endtag(self, tag: str) -> None:
        if self.skipping and self.skipping[-1] == tag:
            self.skipping.pop()

    def handle_data(self, data: str) -> None:
        if not self.skipping:
            self.check(data)

    def check(self, text: str) -> None:
        if re.search(r"[^\W\d_]", text):  # a letter of any script
            self.found.append(text.strip())


def untranslated_text(source: str) -> list[str]:
    """What is left of a template's text once Jinja's comments, tags, expressions and trans blocks are gone."""
    source = re.sub(r"\{#.*?#\}", "", source, flags=re.S)
    source = re.sub(r"\{%-?\s*trans\b.*?\{%-?\s*endtrans\s*-?%\}", "", source, flags=re.S)
    source = re.sub(r"\{%.*?%\}|\{\{.*?\}\}", "", source, flags=re.S)
    parser = _HumanText()
    parser.feed(source)
    parser.close()
    return parser.found


TEMPLATES = sorted([*ROOT.glob("templates/**/*.html"), *ROOT.glob("flask_logto/templates/**/*.html")])


@pytest.mark.parametrize("template", TEMPLATES, ids=lambda path: str(path.relative_to(ROOT)))
def test_no_template_holds_untranslated_text(template: Path):
    assert untranslated_text(template.read_text(encoding="utf-8")) == []


def test_the_template_check_finds_text_outside_the_translation_calls():
    assert untranslated_text('<p>{{ _("Fine") }}</p><p title="Oops">{# gone #}{% if x %}Left{% endif %}</p>') == ["Oops", "Left"]
    assert untranslated_text("<code>flask --app x</code> — {{ n }} · <style>a{b:c}</style>") == []


# ---------------------------------------------------------------- the visitor's language

@pytest.fixture
def app(tmp_path: Path) -> Flask:
    return create_app({"APP_DATA_DIR": str(tmp_path)})


def get(client, path: str = "/", **headers: str):
    return client.get(path, headers={"Host": "localhost:3000", **headers})


def html_lang(html: str) -> str:
    return re.search(r'<html lang="([^"]+)"', html).group(1)


@pytest.mark.parametrize("accept, lang", [
    ("ja-JP,ja;q=0.9,en;q=0.8", "ja"), ("zh-CN,zh;q=0.9", "zh-CN"), ("zh", "zh-CN"), ("fr-FR, ja;q=0.5", "ja"),
    ("fr", "en"), ("", "en"), ("en-GB", "en"),
])
def test_without_a_choice_the_browser_language_decides(app, accept: str, lang: str):
    html = get(app.test_client(), "/", **{"Accept-Language": accept}).text
    assert html_lang(html) == lang and SAMPLES[lang] in html


def test_the_switcher_remembers_the_choice_and_goes_back_to_the_page(app):
    client = app.test_client()
    page = get(client, "/no-such-page?x=1", **{"Accept-Language": "ja"})
    form = next(form for form in forms_in(page.text) if form["action"] == "/language")
    assert form["fields"]["next"] == "/no-such-page?x=1"  # type: ignore[index]
    assert re.findall(r'name="lang" value="([^"]+)"', page.text) == list(LANGUAGES)
    answer = client.post("/language", data={**form["fields"], "lang": "zh-CN"}, headers={"Host": "localhost:3000"})  # type: ignore[dict-item]
    assert answer.status_code == 303 and answer.headers["Location"] == "/no-such-page?x=1"
    cookie = answer.headers["Set-Cookie"]
    assert cookie.startswith("lang=zh-CN;") and "HttpOnly" in cookie and "SameSite=Lax" in cookie and "Max-Age=31536000" in cookie
    assert html_lang(get(client, "/", **{"Accept-Language": "ja"}).text) == "zh-CN"  # the choice beats the browser's


@pytest.mark.parametrize("fields, status, location", [
    ({"lang": "ja", "next": "//evil.example/"}, 303, "/"),
    ({"lang": "ja", "next": "https://evil.example/"}, 303, "/"),
    ({"lang": "ja", "next": "/sign-out"}, 303, "/"),
    ({"lang": "ja"}, 303, "/"),
    ({"lang": "fr", "next": "/"}, 400, None),
    ({"lang": "", "next": "/"}, 400, None),
])
def test_the_switcher_only_goes_back_to_this_site_and_only_takes_its_languages(app, fields, status, location):
    client = app.test_client()
    answer = client.post("/language", data=fields, headers={"Host": "localhost:3000"})
    assert answer.status_code == status
    assert answer.headers.get("Location") == location
    assert any(cookie.startswith("lang=") for cookie in answer.headers.getlist("Set-Cookie")) == (status == 303)


@pytest.mark.parametrize("headers", [{"Origin": "https://evil.example"}, {"Sec-Fetch-Site": "cross-site"},
                                     {"Origin": "null"}])
def test_the_switcher_refuses_a_post_from_another_site(app, headers):
    answer = app.test_client().post("/language", data={"lang": "ja", "next": "/"},
                                    headers={"Host": "localhost:3000", **headers})
    assert answer.status_code == 400
    assert not any(cookie.startswith("lang=") for cookie in answer.headers.getlist("Set-Cookie"))


def test_a_signed_out_visit_stores_no_session(app):
    """No CSRF token on the anonymous pages' forms: an anonymous visit leaves nothing in the session store."""
    client = app.test_client()
    sessions = Path(app.config["LOGTO_DATA_DIR"]) / "sessions"
    before = sorted(sessions.iterdir())  # the store's own bookkeeping file
    for path in ["/", "/no-such-page"]:
        answer = get(client, path)
        assert not [cookie for cookie in answer.headers.getlist("Set-Cookie") if cookie.startswith("site_session=")]
    answer = client.post("/language", data={"lang": "ja", "next": "/"},
                         headers={"Host": "localhost:3000", "Origin": "http://localhost:3000"})
    assert answer.status_code == 303
    assert sorted(sessions.iterdir()) == before


def test_a_choice_outlasts_signing_in_and_out_and_reaches_logto_and_the_provider(stack: Stack):
    http = requests.Session()
    http.cookies.set("lang", "ja", domain="localhost.local")
    http.headers["Accept-Language"] = "en"
    authorize_url = start_sign_in(stack, http)
    assert parse_qs(urlsplit(authorize_url).query)["ui_locales"] == ["ja"]
    provider_page = http.get(authorize_url, timeout=10)
    assert html_lang(provider_page.text) == "ja" and "Hugging Face のユーザー名" in provider_page.text
    http.cookies.clear()
    http.cookies.set("lang", "zh-CN", domain="localhost.local")
    assert sign_in(stack, http, "lingua").status_code == 302
    home = http.get(stack.base_url + "/", timeout=10)
    assert html_lang(home.text) == "zh-CN" and "退出登录" in home.text
    token = csrf_token_in(home.text)  # type: ignore[index]
    http.post(stack.base_url + "/sign-out", data={"csrf_token": token}, allow_redirects=False, timeout=10)
    after = http.get(stack.base_url + "/", timeout=10)
    assert html_lang(after.text) == "zh-CN" and "你已退出登录。" in after.text
    assert "你已退出登录。" not in http.get(stack.base_url + "/", timeout=10).text  # shown once


@pytest.mark.parametrize("ui_locales, accept, lang, words", [
    ("ja", "en", "ja", "にサインイン"), ("xx zh-CN", "ja", "zh-CN", "登录 "), ("fr-CA", "ja-JP", "ja", "にサインイン"),
    ("", "zh-CN,zh;q=0.9", "zh-CN", "登录 "), ("de", "fr", "en", "Sign in to "),
])
def test_the_providers_pages_honour_ui_locales_then_the_browser(stack: Stack, ui_locales, accept, lang, words):
    http = requests.Session()
    http.headers["Accept-Language"] = accept
    authorize_url = re.sub(r"&ui_locales=[^&]*", "", start_sign_in(stack, http))
    authorize_url = re.sub(r"&direct_sign_in=[^&]*", "", authorize_url) + (f"&ui_locales={ui_locales}" if ui_locales else "")
    page = http.get(authorize_url, timeout=10)
    assert page.status_code == 200 and html_lang(page.text) == lang
    assert f"{words}Flask × Hugging Face" in page_text(page.text) or f"Flask × Hugging Face {words}" in page_text(page.text)
    assert f'id="back-to-site" href="{stack.base_url}/"' in page.text


def test_the_providers_expired_page_speaks_the_browsers_language_and_leads_back(stack: Stack):
    page = requests.get(f"{stack.provider.endpoint}/interaction/gone/huggingface", headers={"Accept-Language": "ja"}, timeout=10)
    assert page.status_code == 400 and html_lang(page.text) == "ja"
    assert "期限切れ" in page.text and page.text.count(f'href="{stack.base_url}/"') == 2  # a button and the footer link


def test_the_units_messages_are_translated_where_they_are_shown(stack: Stack):
    page = requests.get(stack.base_url + "/callback", headers={"Accept-Language": "zh-CN"}, timeout=10)
    assert page.status_code == 400 and html_lang(page.text) == "zh-CN"
    assert "登录链接无效" in page.text and "There is no sign-in" not in page.text


def plain_app(tmp_path: Path, name: str) -> Flask:
    """An app of someone else's: no templates, no catalogs of its own."""
    app = Flask(name, root_path=str(tmp_path))
    app.config.update(
        SECRET_KEY="plain-app-key-" + "0123456789abcdef" * 2, LOGTO_ENDPOINT="http://127.0.0.1:9", LOGTO_APP_ID="app",
        LOGTO_APP_SECRET="secret", LOGTO_BASE_URL="http://localhost:3000", LOGTO_DATA_DIR=str(tmp_path),
    )
    return app


@pytest.mark.parametrize("babel_first", [True, False], ids=["babel-before-logto", "babel-after-logto"])
@pytest.mark.parametrize(("accept", "lang", "heading", "button"), [
    ("ja", "ja", "<h1>サインインのリンクが無効です</h1>", "もう一度サインイン"),
    ("zh-CN", "zh-Hans-CN", "<h1>登录链接无效</h1>", "重新登录"),
    ("zh-TW", "zh-Hant-TW", "<h1>Sign-in link not valid</h1>", "Sign in again"),  # no traditional Chinese catalog
    ("fr", "fr", "<h1>Sign-in link not valid</h1>", "Sign in again"),
])
def test_an_app_with_flask_babel_gets_the_units_pages_in_its_language(
    tmp_path: Path, babel_first: bool, accept: str, lang: str, heading: str, button: str,
):
    app = plain_app(tmp_path, "babel_app")
    select = lambda: request.accept_languages.best_match(["en", "ja", "zh_CN", "zh_TW", "fr"], default="en")  # noqa: E731
    if babel_first:
        Babel(app, locale_selector=select)
        LogtoAuth(app)
    else:
        LogtoAuth(app)
        Babel(app, locale_selector=select)
    page = app.test_client().get("/callback", headers={"Accept-Language": accept})
    assert page.status_code == 400 and html_lang(page.text) == lang
    assert heading in page.text and button in page.text


def test_without_flask_babel_the_unit_speaks_english(tmp_path):
    app = plain_app(tmp_path, "plain")  # and no Flask-Babel
    LogtoAuth(app)
    client = app.test_client()
    page = client.get("/callback", headers={"Accept-Language": "ja"})
    assert page.status_code == 400 and html_lang(page.text) == "en"
    assert "<h1>Sign-in link not valid</h1>" in page.text and "Sign in again" in page.text
    expired = client.post("/sign-out")
    assert expired.status_code == 400 and "<h1>Form expired</h1>" in expired.text


@pytest.mark.parametrize("translated, language", [("README.ja.md", "日本語"), ("README.zh-CN.md", "简体中文")])
def test_the_translated_readmes_give_the_english_ones_commands_and_settings(translated: str, language: str):
    english = (ROOT / "README.md").read_text(encoding="utf-8")
    text = (ROOT / translated).read_text(encoding="utf-8")
    assert f"[{language}]({translated})" in english.split("\n# ", 1)[0]  # linked above the title
    blocks = re.findall(r"```(?:console|dotenv)\n(.*?)```", text, re.S)
    assert len(blocks) >= 4
    for block in blocks:
        for line in filter(None, block.splitlines()):
            assert line.strip() in english, f"{translated}: {line!r} is not in README.md"
    for command in re.findall(r"`((?:flask|make|pip|python|apt-get|gunicorn|bash) [^`]*)`", text):
        assert command in english, f"{translated}: `{command}` is not in README.md"
