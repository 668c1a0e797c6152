"""The unit's words in the visitor's language, when the app uses Flask-Babel; in English otherwise.

Messages are English in the code, marked with `N_()` so that Babel's extraction finds them (`pybabel extract`
with the `N_` keyword), and translated when shown: `translate()` asks Flask-Babel if the app set it up
(`app.extensions["babel"]`), else returns the English. The unit's templates call `_()`, which the app's
Flask-Babel provides; without it, `jinja_helpers()` gives them this module's `translate` under that name.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from flask import current_app


def N_(message: str) -> str:
    """Mark `message` for extraction; it is translated where it is shown (`translate`)."""
    return message


def translate(message: str, **variables: Any) -> str:
    """`message` in the visitor's language (Flask-Babel's catalog) or as it is, with `%(name)s` variables filled in."""
    if "babel" in current_app.extensions:
        from flask_babel import gettext

        return str(gettext(message, **variables))
    return message % variables if variables else message


def language_tag() -> str:
    """The page's language as a BCP 47 tag for `<html lang>` (`zh-CN`, not Babel's `zh_CN`); `en` without Flask-Babel."""
    if "babel" in current_app.extensions:
        from flask_babel import get_locale

        locale = get_locale()
        if locale is not None:
            return "-".join(part for part in (locale.language, locale.script, locale.territory) if part)
    return "en"


def jinja_helpers() -> dict[str, Callable[..., str]]:
    """`_` and `gettext` for the unit's templates when the app has no gettext of its own in Jinja."""
    if "_" in current_app.jinja_env.globals:
        return {}
    return {"_": translate, "gettext": translate}
