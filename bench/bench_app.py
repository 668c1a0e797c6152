"""The site as gunicorn serves it in the benchmark: the real `create_app()` plus two baseline pages.

    gunicorn -w 2 --threads 4 -b 127.0.0.1:PORT 'bench.bench_app:create_bench_app()'

- `GET /bench/bare` renders bench/templates/bench/bare.html (Jinja's template cache on, as in any Flask site)
  and touches neither the session nor Logto: "any Flask page of this size", the limit the site's pages are
  compared with. `pad_bare_template()` pads it (bench/templates/bench/_padding.html, written before the
  first request) to the byte size of the signed-in `/` page.
- `GET /bench/cookie` is the seed guide's way: the whole session, tokens included, in Flask's default signed
  cookie session (the `bench_cookie` cookie, signed with the app's key; `cookie_session_value()` makes it),
  the user read from it and the signed-in home page rendered for them. `csrf_token()` gives a fixed value (set in
  `g`, where Flask-WTF keeps this request's token) so that the page never writes a server-side session.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from flask import Blueprint, Flask, abort, current_app, g, render_template, request
from flask.sessions import SecureCookieSessionInterface

from client import SignedInUser
from flask_app import create_app

TEMPLATES = Path(__file__).resolve().parent / "templates"
PADDING_TEMPLATE = TEMPLATES / "bench" / "_padding.html"
BENCH_COOKIE = "bench_cookie"
FIXED_CSRF = "x" * 91  # the length of Flask-WTF's tokens

bench = Blueprint("bench", __name__, template_folder=str(TEMPLATES))


@bench.get("/bench/bare")
def bare() -> str:
    return render_template("bench/bare.html", title="Bare page")


@bench.get("/bench/cookie")
def cookie() -> str:
    serializer = SecureCookieSessionInterface().get_signing_serializer(current_app)
    try:
        data = serializer.loads(request.cookies.get(BENCH_COOKIE, ""),  # type: ignore[union-attr]
                                max_age=int(current_app.permanent_session_lifetime.total_seconds()))
    except Exception:  # itsdangerous.BadSignature, or junk
        abort(401)
    user = SignedInUser.from_session(data.get("auth.user"))
    g.csrf_token = FIXED_CSRF  # what Flask-WTF's csrf_token() returns when it made one already: no session to write
    return render_template("index.html", current_user=lambda: user)


def create_bench_app(env: Mapping[str, str] | None = None) -> Flask:
    """`create_app(env)` (default: this process's environment, no `.env`) with the bench blueprint."""
    app = create_app(dict(os.environ) if env is None else env)
    app.register_blueprint(bench)
    return app


def cookie_session_value(secret_key: str, data: Mapping[str, Any]) -> str:
    """The cookie Flask's default (cookie) session would send for `data`, signed with `secret_key`."""
    app = Flask("cookie-size")
    app.secret_key = secret_key
    return SecureCookieSessionInterface().get_signing_serializer(app).dumps(dict(data))  # type: ignore[union-attr]


def pad_bare_template(target: int) -> None:
    """Write bench/templates/bench/_padding.html so that bare.html renders to `target` bytes."""
    from jinja2 import Environment, FileSystemLoader, select_autoescape

    def rendered() -> int:
        environment = Environment(loader=FileSystemLoader(str(TEMPLATES)), autoescape=select_autoescape())
        return len(environment.get_template("bench/bare.html").render(title="Bare page").encode())

    PADDING_TEMPLATE.write_text("", encoding="utf-8")
    needed = target - rendered()
    line = '    <p class="muted">Padding, so that this page is as large as the signed-in home page.</p>\n'
    padding = line * max(0, needed // len(line))
    rest = needed - len(padding)
    padding += f"<!--{'-' * (rest - 7)}-->" if rest >= 7 else " " * max(0, rest)
    PADDING_TEMPLATE.write_text(padding, encoding="utf-8")
