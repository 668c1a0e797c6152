"""The unit's words in the visitor's language: its own catalogs, in the Babel domain `flask_logto`.

Messages are English in the code, marked with `N_()` so that Babel's extraction finds them (`make messages`), and
translated where they are shown: `translate()` in Python, `logto_gettext()` in templates (the unit's pages, and any
page of the app that shows one of the unit's errors). The catalogs ship inside the package,
`flask_logto/translations/<locale>/LC_MESSAGES/flask_logto.po` (`ja`, `zh_CN`), and are read once per process at
first use; nothing is compiled to disk, and the app's own catalogs need none of the unit's messages.

The language is the app's: Flask-Babel's `get_locale()` when the app set up Flask-Babel (before or after
`LogtoAuth`: it is looked up at request time), else English. A locale reads the catalog of its language and script
(`zh_CN`, `zh_SG` and `zh_Hans` read zh_CN's; `zh_TW`, written in traditional characters, reads none: English).
"""

from __future__ import annotations

import functools
from io import BytesIO
from pathlib import Path
from typing import Any

from babel import Locale
from babel.core import get_global
from babel.messages.mofile import write_mo
from babel.messages.pofile import read_po
from babel.support import Translations
from flask import current_app
from markupsafe import Markup

DOMAIN = "flask_logto"
CATALOGS = Path(__file__).resolve().parent / "translations"


def N_(message: str) -> str:
    """Mark `message` for extraction; it is translated where it is shown (`translate`, `logto_gettext`)."""
    return message


def translate(message: str, **variables: Any) -> str:
    """`message` in the visitor's language, or as it is, with `%(name)s` variables filled in (for Python code)."""
    text = _in_this_language(message)
    return text % variables if variables else text


def logto_gettext(message: str, **variables: Any) -> Markup:
    """`translate` for templates, the way Jinja's own `_()` does it: the message is the unit's own text, the
    variables are escaped."""
    text = Markup(_in_this_language(message))
    return text % variables if variables else text


def language_tag() -> str:
    """The page's language as a BCP 47 tag for `<html lang>` (`zh-CN`, not Babel's `zh_CN`); `en` without Flask-Babel."""
    locale = _app_locale()
    if locale is None:
        return "en"
    return "-".join(part for part in (locale.language, locale.script, locale.territory) if part)


def _in_this_language(message: str) -> str:
    locale = _app_locale()
    translations = _catalog_for(str(locale)) if locale is not None else None
    return message if translations is None else str(translations.ugettext(message))


def _app_locale() -> Locale | None:
    """Flask-Babel's locale for this request (a `babel.Locale`), or None when the app has no Flask-Babel."""
    if "babel" not in current_app.extensions:
        return None
    from flask_babel import get_locale

    locale: Locale | None = get_locale()
    return locale


@functools.lru_cache(maxsize=64)
def _catalog_for(locale_id: str) -> Translations | None:
    """The unit's catalog for a locale id such as `zh_Hans_CN`, or None (English)."""
    return _catalogs().get(_language_and_script(Locale.parse(locale_id)))


@functools.cache
def _catalogs() -> dict[tuple[str, str | None], Translations]:
    """Every catalog under CATALOGS, compiled in memory, by language and script."""
    found = {}
    for po_path in sorted(CATALOGS.glob(f"*/LC_MESSAGES/{DOMAIN}.po")):
        locale = Locale.parse(po_path.parent.parent.name)
        with po_path.open("rb") as po_file:
            catalog = read_po(po_file, locale=locale, domain=DOMAIN)
        compiled = BytesIO()
        write_mo(compiled, catalog, use_fuzzy=False)
        compiled.seek(0)
        found[_language_and_script(locale)] = Translations(compiled, domain=DOMAIN)
    return found


def _language_and_script(locale: Locale) -> tuple[str, str | None]:
    """A locale's language and its script, the likely one when it names none (`zh` is written `Hans`)."""
    if locale.script:
        return locale.language, locale.script
    likely = get_global("likely_subtags").get(locale.language)
    return locale.language, Locale.parse(likely).script if likely else None
