"""The site's languages: English, Japanese and Simplified Chinese (Flask-Babel; catalogs in website/translations/).

- The visitor's language is their choice, else their browser's (Accept-Language), else English. The choice is
  made with the header's switcher (a form posting `lang` to `POST /language`, which goes back to the page it
  came from) and kept in a cookie of its own, `lang`, for a year: apart from the session, so it survives
  signing in and out. The form carries no CSRF token (a token would give every anonymous visitor a stored
  session); a post from another site is refused by its `Origin`/`Sec-Fetch-Site` instead.
- Pages get its BCP 47 tag (`en`, `ja`, `zh-CN`) for `<html lang>`, and Logto gets the same as `ui_locales`
  (LogtoAuth's `ui_locales` hook), so its sign-in pages speak the site's language.
- Catalogs: `website/translations/<locale>/LC_MESSAGES/messages.po`, the site's own messages, compiled when the
  app starts into `APP_DATA_DIR/translations` (no compiled file is kept beside the sources, so none can be older
  than its .po). The sign-in unit's pages and errors come translated in its own catalogs (flask_logto/i18n.py),
  in the language chosen here. `make messages` extracts the messages again (babel.cfg) and updates both.
"""

from __future__ import annotations

import os
import threading
from pathlib import Path
from typing import Any

from babel import Locale
from babel.messages.mofile import write_mo
from babel.messages.pofile import read_po
from flask import Blueprint, Flask, abort, current_app, g, redirect, request
from flask_babel import Babel, get_translations
from markupsafe import Markup

from client import safe_next
from flask_logto.rate_limits import check_limit, limit_views

LANGUAGES = {"en": "English", "ja": "日本語", "zh-CN": "简体中文"}  # BCP 47 tag: the language's own name
SHORT_NAMES = {"en": "EN", "ja": "日本語", "zh-CN": "中文"}  # in the switcher's button
BABEL_LOCALES = {"en": "en", "ja": "ja", "zh-CN": "zh_CN"}  # BCP 47 tag: Babel's locale (translations/ folder)
DEFAULT = "en"
COOKIE = "lang"
COOKIE_MAX_AGE = 365 * 24 * 3600
RATE_LIMIT = "60 per minute"  # language switches per client address
CATALOGS = Path(__file__).resolve().parent / "translations"

blueprint = Blueprint("language", __name__)


def init_app(app: Flask, compiled: Path | None = None, *, switcher: bool = True) -> None:
    """Compile the catalogs (into `compiled`, default APP_DATA_DIR/translations) and set up Flask-Babel;
    with `switcher`, add `POST /language` (the site; not the Space's setup page, which has no forms)."""
    target = compiled or Path(app.config["LOGTO_DATA_DIR"]) / "translations"
    target.mkdir(parents=True, exist_ok=True)
    compile_catalogs(CATALOGS, target)
    app.config["BABEL_TRANSLATION_DIRECTORIES"] = str(target)
    Babel(app, locale_selector=lambda: BABEL_LOCALES[current_tag()])
    app.extensions["site_catalogs"] = {}  # language tag: catalog (`translations`)
    # Jinja's own newstyle gettext goes through three calls, one of them passing (and, inside a block with
    # `{% set %}`, copying) the whole context, and Flask-Babel looks the catalog up again for every message
    # (~25 a page): the same behaviour in one call, with the catalog looked up once per request.
    app.jinja_env.newstyle_gettext = True  # type: ignore[attr-defined]  # `{% trans %}` formats through them too
    app.jinja_env.globals.update(_=gettext, gettext=gettext, ngettext=ngettext, pgettext=pgettext, npgettext=npgettext)
    if switcher:
        app.register_blueprint(blueprint)
        if "csrf" in app.extensions:
            app.extensions["csrf"].exempt(choose)
        check_limit(app.config, "RATELIMIT_LANGUAGE", RATE_LIMIT)
        limit_views(app, ["language.choose"], "RATELIMIT_LANGUAGE")
    else:
        app.context_processor(template_values)


def compile_catalogs(source: Path, target: Path) -> None:
    """Each `<locale>/LC_MESSAGES/*.po` under `source` as a .mo under `target` (written whole: temp file, rename).

    The .mo goes under the name Flask-Babel looks for, Babel's full locale id (`zh_CN` is `zh_Hans_CN`).
    """
    for po_path in sorted(source.glob("*/LC_MESSAGES/*.po")):
        locale = Locale.parse(po_path.parent.parent.name)
        with po_path.open("rb") as po_file:
            catalog = read_po(po_file, locale=locale)
        mo_path = target / str(locale) / "LC_MESSAGES" / po_path.with_suffix(".mo").name
        mo_path.parent.mkdir(parents=True, exist_ok=True)
        temporary = mo_path.with_name(f".{mo_path.name}.{os.getpid()}.{threading.get_ident()}")
        with temporary.open("wb") as mo_file:
            write_mo(mo_file, catalog, use_fuzzy=False)
        os.replace(temporary, mo_path)


def translations() -> Any:
    """This request's catalog: Flask-Babel's for the language, asked once per process and language (a catalog
    does not change while the site runs; Flask-Babel would look it up again in every request)."""
    loaded: dict[str, Any] = current_app.extensions["site_catalogs"]
    tag = current_tag()
    if tag not in loaded:
        loaded[tag] = get_translations()
    return loaded[tag]


# Templates' gettext, as Jinja's newstyle gettext behaves with autoescaping, which every template here has (they
# are all HTML): the translation is markup, the variables are escaped into it, and it is always formatted (so `%%`
# is `%`). The parameters are positional-only, as Jinja's are: any name may be a placeholder.
def gettext(message: str, /, **variables: Any) -> Markup:
    return Markup(translations().ugettext(message)) % variables


def ngettext(singular: str, plural: str, n: int, /, **variables: Any) -> Markup:
    variables.setdefault("num", n)
    return Markup(translations().ungettext(singular, plural, n)) % variables


def pgettext(context: str, message: str, /, **variables: Any) -> Markup:
    variables.setdefault("context", context)
    return Markup(translations().upgettext(context, message)) % variables


def npgettext(context: str, singular: str, plural: str, n: int, /, **variables: Any) -> Markup:
    variables.setdefault("context", context)
    variables.setdefault("num", n)
    return Markup(translations().unpgettext(context, singular, plural, n)) % variables


def current_tag() -> str:
    """This request's language: the `lang` cookie, else the best of Accept-Language, else English (decided once)."""
    if "_language_tag" not in g:
        chosen = request.cookies.get(COOKIE)
        g._language_tag = chosen if chosen in LANGUAGES else request.accept_languages.best_match(LANGUAGES, default=DEFAULT)
    tag: str = g._language_tag
    return tag


@blueprint.post("/language")
def choose() -> Any:
    """Remember the visitor's language (`lang`: en, ja or zh-CN) and go back to `next` (a path on this site)."""
    tag = request.form.get("lang", "")
    if tag not in LANGUAGES or _from_another_site():
        abort(400)
    back = redirect(safe_next(request.form.get("next")), 303)
    config = current_app.config
    back.set_cookie(
        COOKIE, tag, max_age=COOKIE_MAX_AGE, httponly=True,
        secure=bool(config.get("SESSION_COOKIE_SECURE")), samesite=config.get("SESSION_COOKIE_SAMESITE") or "Lax",
    )
    return back


def _from_another_site() -> bool:
    """A form posted by another site (browsers say so in `Sec-Fetch-Site`, and name the page's `Origin`)."""
    origin = request.headers.get("Origin")
    own = {request.host_url.rstrip("/"), current_app.config["LOGTO_BASE_URL"]}
    return request.headers.get("Sec-Fetch-Site") == "cross-site" or (origin is not None and origin not in own)


@blueprint.app_context_processor
def template_values() -> dict[str, Any]:
    return {
        "languages": LANGUAGES, "language_short_names": SHORT_NAMES, "current_language": current_tag,
        "language_next": lambda: request.full_path.rstrip("?") if request.method == "GET" else request.path,
    }
