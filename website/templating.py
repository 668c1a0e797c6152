"""What the site's templates do on every page, made cheap without changing a byte of what they show.

- Constants folded in: the app's Jinja environment (`FoldingEnvironment`) compiles each template once per language
  (and script root), in an overlay where `_("…")` / `gettext("…")` with a constant message and no variables are
  already that language's text (what `gettext` would give, as markup), and `url_for(…)` with constant arguments is
  already the URL Flask builds. A page has ~25 and ~15 of them. Messages with variables, and URLs built from
  values, are done when the page is rendered, as before (languages.py; `url_for` here).
- `url_for` for the rest: Flask's, each URL built once per process and app (per script root) and then reused.
  Anything unusual (`_external`, `_anchor`, a relative endpoint, values that cannot be a key) goes to Flask's
  `url_for` every time.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, MutableMapping
from typing import Any

import flask
import flask.templating
from flask import Flask, current_app, has_request_context, request
from jinja2 import Template
from jinja2.ext import Extension
from jinja2.lexer import Token, TokenStream
from markupsafe import Markup
from werkzeug.routing import BuildError

MAX_CACHED_URLS = 4096  # a page with per-note URLs adds one per note; the cache starts again past this


GETTEXT_NAMES = ("_", "gettext")
FOLDED_NAMES = (*GETTEXT_NAMES, "url_for")
MAX_OVERLAYS = 16  # (language, script root) pairs with their own compiled templates


def init_app(app: Flask, language: Callable[[], str], catalog: Callable[[], Any]) -> None:
    """`language()`: this request's language tag; `catalog()`: its catalog (a `gettext` translations object),
    asked only when a template is compiled for a language the first time."""
    app.extensions["site_urls"] = {}
    app.jinja_env.globals["url_for"] = url_for
    if isinstance(app.jinja_env, FoldingEnvironment):
        app.jinja_env.language, app.jinja_env.catalog = language, catalog


class FoldingEnvironment(flask.templating.Environment):
    """Flask's Jinja environment; during a request, templates come from the overlay for the request's language.

    (`app.jinja_environment = FoldingEnvironment` before the environment is first used.)"""

    language: Callable[[], str] | None = None  # set by init_app
    catalog: Callable[[], Any] | None = None  # set by init_app
    folding: Any = None  # in an overlay: the catalog its templates are compiled with

    def _load_template(self, name: str, globals: MutableMapping[str, Any] | None) -> Template:
        # Jinja's one place where a template is looked up in (or added to) an environment's cache; a template's
        # includes are loaded by its own (overlay) environment.
        if self.folding is None and self.language is not None and has_request_context():
            overlay = self._overlay(self.language(), request.script_root)
            if overlay is not self:
                return overlay._load_template(name, globals)
        return super()._load_template(name, globals)

    def _overlay(self, tag: str, script_root: str) -> FoldingEnvironment:
        overlays: dict[tuple[str, str], FoldingEnvironment] = self.__dict__.setdefault("_language_overlays", {})
        overlay = overlays.get((tag, script_root))
        if overlay is None:  # two threads may both make one; either is right
            if len(overlays) >= MAX_OVERLAYS:  # script roots come from the request (SCRIPT_NAME): never unbounded
                return self
            assert self.catalog is not None
            overlay = self.overlay(extensions=[FoldConstants])  # globals, filters, loader shared; its own cache
            overlay.folding = self.catalog()
            overlays[tag, script_root] = overlay
        return overlay


class FoldConstants(Extension):
    """In a template's tokens: `_("constant")` / `gettext("constant")` → the overlay's translation of it as markup
    (`"…"|safe`, which Jinja compiles to a constant), and `url_for("endpoint", name="value", …)` → `"/the/url"`:
    exactly what the call would return at render time. Templates are compiled during a request (of the overlay's
    language and script root), so `url_for` can build them."""

    def filter_stream(self, stream: TokenStream) -> Iterator[Token]:
        catalog = getattr(self.environment, "folding", None)
        tokens = list(stream)
        if _shadowed(tokens):  # `{% set _ = … %}`, a macro argument `url_for`, …: this template is left alone
            catalog = None
        index = 0
        while index < len(tokens):
            after_dot = index > 0 and tokens[index - 1].type == "dot"  # `x._(…)` is some other `_`
            folded = None if after_dot or catalog is None else _fold_call(tokens, index, catalog)
            if folded is None:
                yield tokens[index]
                index += 1
                continue
            replacement, index = folded
            yield from replacement


def _shadowed(tokens: list[Token]) -> bool:
    """Whether a name this folds is used other than as a call (so it may mean something else here)."""
    for index, token in enumerate(tokens):
        if token.type == "name" and token.value in FOLDED_NAMES:
            before = tokens[index - 1] if index > 0 else None
            called = index + 1 < len(tokens) and tokens[index + 1].type == "lparen"
            defined = before is not None and before.type == "name" and before.value == "macro"  # `{% macro _(…) %}`
            if defined or (not called and (before is None or before.type != "dot")):
                return True
    return False


def _fold_call(tokens: list[Token], index: int, catalog: Any) -> tuple[list[Token], int] | None:
    """The tokens for the call starting at `index` made constant, and the index after the call; or None."""
    name = tokens[index]
    if name.type != "name" or name.value not in FOLDED_NAMES:
        return None
    parsed = _constant_arguments(tokens, index + 1)
    if parsed is None:
        return None
    arguments, keywords, end = parsed
    line = name.lineno
    if name.value == "url_for":
        if len(arguments) != 1 or not _constant_url(arguments[0], keywords):
            return None
        try:
            url = flask.url_for(arguments[0], **keywords)
        except (BuildError, ValueError, TypeError):  # what stops it now stops it at render time, as before
            return None
        return [Token(line, "string", url)], end
    if len(arguments) != 1 or keywords:
        return None
    try:
        text = Markup(catalog.ugettext(arguments[0])) % {}  # what languages.gettext returns
    except (KeyError, ValueError, TypeError):  # a message that needs variables: translated at render time
        return None
    return [  # in parentheses: `_("x").upper()` stays a call on the result
        Token(line, "lparen", "("), Token(line, "string", str(text)), Token(line, "pipe", "|"),
        Token(line, "name", "safe"), Token(line, "rparen", ")"),
    ], end


def _constant_arguments(tokens: list[Token], index: int) -> tuple[list[str], dict[str, str], int] | None:
    """`("a", b="c")` from `index` (the `(`): the string arguments, the string keywords, the index after `)`."""
    if index >= len(tokens) or tokens[index].type != "lparen":
        return None
    arguments: list[str] = []
    keywords: dict[str, str] = {}
    index += 1
    while index < len(tokens):
        token = tokens[index]
        if token.type == "rparen":
            return arguments, keywords, index + 1
        if token.type == "string" and not keywords:
            arguments.append(token.value)
            index += 1
        elif token.type == "name" and tokens[index + 1:index + 3] and [t.type for t in tokens[index + 1:index + 3]] == [
            "assign", "string",
        ]:
            keywords[token.value] = tokens[index + 2].value
            index += 3
        else:
            return None
        if index < len(tokens) and tokens[index].type == "comma":
            index += 1
        elif index < len(tokens) and tokens[index].type != "rparen":
            return None
    return None


def _constant_url(endpoint: str, values: dict[str, Any]) -> bool:
    """Whether Flask builds the same URL for `endpoint` and `values` in any request (of one script root): an
    endpoint of the app with a single rule (so not chosen by the request's method), no URL defaults, no `_external`
    and other options, values of plain types."""
    if endpoint.startswith(".") or any(name.startswith("_") for name in values) or current_app.url_default_functions:
        return False
    if not all(type(value) in (str, int) for value in values.values()):  # 1 and True would share a key
        return False
    single: dict[str, bool] = current_app.extensions.setdefault("site_single_rule", {})
    if endpoint not in single:
        known = endpoint in current_app.view_functions
        single[endpoint] = known and len(list(current_app.url_map.iter_rules(endpoint))) == 1
    return single[endpoint]


def url_for(endpoint: str, **values: Any) -> str:
    """`flask.url_for(endpoint, **values)`, built once per process for the same endpoint, values and script root."""
    if not has_request_context() or not _constant_url(endpoint, values):
        return flask.url_for(endpoint, **values)
    cache: dict[tuple[Any, ...], str] = current_app.extensions["site_urls"]
    key = (request.script_root, endpoint, *sorted(values.items()))
    try:
        url = cache.get(key)
    except TypeError:  # a value that cannot be part of a key
        return flask.url_for(endpoint, **values)
    if url is None:
        url = flask.url_for(endpoint, **values)
        if len(cache) >= MAX_CACHED_URLS:
            cache.clear()
        cache[key] = url
    return url
