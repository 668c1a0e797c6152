"""The site: `create_app()`, its pages (blueprint `site`), error pages, security headers and `flask dev`.

Sign-in is the `LogtoAuth` unit (client.py) and the site is its first user: pages ask `current_user()`,
`/profile` is `login_required` and shows `auth.userinfo()`. Settings come from the environment or
`.env` (settings.py) into `app.config`.
"""

from __future__ import annotations

import logging
import os
import re
import secrets
from typing import Any, Mapping
from urllib.parse import quote, urlsplit

import click
from dotenv import load_dotenv
from flask import Blueprint, Flask, current_app, g, redirect, render_template, request
from flask.cli import FlaskGroup
from markupsafe import Markup
from werkzeug.exceptions import HTTPException

from client import ConfigError, LogtoAuth, login_required
from logto_auth.config import is_loopback_url
from flask_dev import dev_command
from logto_cli import logto_cli
from settings import site_config

log = logging.getLogger("auth")
auth = LogtoAuth()
site = Blueprint("site", __name__)


def create_app(env: Mapping[str, str] | None = None) -> Flask:
    """Build the site from `env` (default: the process environment plus `.env`)."""
    if env is None:
        load_dotenv()
        env = os.environ
    app = Flask(__name__)
    app.cli.add_command(dev_command)
    app.cli.add_command(logto_cli)
    app.config.update(
        SESSION_COOKIE_NAME="site_session",  # not `session`: the dev provider shares the host name
        MAX_CONTENT_LENGTH=64 * 1024,
    )
    try:
        app.config.update(site_config(env))
        auth.init_app(app)
    except ConfigError as error:
        if _loading_for_cli_lookup():
            app.config["CONFIG_ERROR"] = str(error)  # let `flask logto setup` fix what is missing
            return app
        raise SystemExit(f"Configuration error: {error}") from None
    app.register_blueprint(site)
    _register_error_pages(app)
    _configure_logging()
    return app


def _loading_for_cli_lookup() -> bool:
    """True while Flask's CLI loads the app only to find one of its commands (not to serve it)."""
    ctx = click.get_current_context(silent=True)
    return ctx is not None and isinstance(ctx.command, FlaskGroup)


def _configure_logging() -> None:
    if not logging.getLogger().handlers:
        logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    log.setLevel(logging.INFO)
    access_log = logging.getLogger("werkzeug")  # `flask run` and `flask dev`; gunicorn logs no access by default
    if not any(isinstance(existing, DropQueryStrings) for existing in access_log.filters):
        access_log.addFilter(DropQueryStrings())


@site.before_app_request
def one_loopback_name() -> Any:
    """Locally, send `127.0.0.1` to `localhost` (or the reverse) as APP_BASE_URL names it.

    The session cookie is per host name, so a sign-in started under one name cannot finish under the
    other. Deployed sites answer whatever host a proxy or health check uses.
    """
    g.csp_nonce = secrets.token_urlsafe(16)
    base_url = current_app.config["APP_BASE_URL"]
    if not is_loopback_url(base_url) or request.method not in ("GET", "HEAD"):
        return None
    arrived_as = f"http://{request.host}"
    if not is_loopback_url(arrived_as) or urlsplit(arrived_as).hostname == urlsplit(base_url).hostname:
        return None
    query = request.query_string.decode("latin-1")
    return redirect(f"{base_url}{quote(request.path)}{'?' + query if query else ''}", 302)


@site.app_context_processor
def template_values() -> dict[str, Any]:
    # Inside a Space's iframe, Hugging Face and Logto pages must open in a new tab.
    on_space = current_app.config["ON_SPACE"]
    return {"sign_in_target": Markup(' target="_blank" rel="noopener"') if on_space else ""}


@site.get("/")
def index() -> str:
    return render_template("index.html")


@site.get("/profile")
@login_required
def profile() -> str:
    return render_template("profile.html", userinfo=auth.userinfo())


@site.get("/healthz")
def healthz() -> tuple[str, int, dict[str, str]]:
    return "ok\n", 200, {"Content-Type": "text/plain"}


@site.after_app_request
def security_headers(response: Any) -> Any:
    config = current_app.config
    nonce = g.get("csp_nonce", "")
    # A Space shows the site in an iframe on huggingface.co; anywhere else nobody may frame it.
    frame_ancestors = "https://huggingface.co" if config["ON_SPACE"] else "'none'"
    response.headers["Content-Security-Policy"] = (
        f"default-src 'none'; style-src 'nonce-{nonce}'; img-src 'self' https:; "
        f"form-action 'self' {config['LOGTO_ENDPOINT']}; base-uri 'none'; frame-ancestors {frame_ancestors}"
    )
    if not config["ON_SPACE"]:
        response.headers["X-Frame-Options"] = "DENY"
    response.headers["X-Content-Type-Options"] = "nosniff"
    response.headers["Referrer-Policy"] = "no-referrer"
    response.headers["Cache-Control"] = "no-store"
    return response


def _register_error_pages(app: Flask) -> None:
    @app.errorhandler(HTTPException)
    def http_error(error: HTTPException) -> tuple[str, int]:
        return render_template("error.html", title=f"{error.code} {error.name}", message=error.description), error.code or 500

    @app.errorhandler(Exception)
    def unexpected(error: Exception) -> tuple[str, int]:
        log.error("event=error path=%s cause=%s", request.path, type(error).__name__, exc_info=error)
        return render_template("error.html", title="Something went wrong", message="Please try again."), 500


class DropQueryStrings(logging.Filter):
    """Werkzeug's access log writes whole URLs; `/callback?code=...` must not reach the log."""

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        record.msg, record.args = re.sub(r"\?[^\s\"]*", "", message), ()
        return True
