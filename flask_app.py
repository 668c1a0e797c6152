"""The site: `create_app()`, its pages (blueprint `site`), error pages, security headers and `flask dev`.

Sign-in is the `LogtoAuth` unit (client.py) and the site is its first user: pages ask `current_user()`,
`/profile` is `login_required` and shows `auth.userinfo()`. Settings come from the environment or
`.env` (website/settings.py) into `app.config`.
"""

from __future__ import annotations

import logging
import os
import re
import secrets
import threading
from collections.abc import Mapping
from typing import Any
from urllib.parse import quote, urlsplit

import click
from dotenv import load_dotenv
from flask import Blueprint, Flask, current_app, g, redirect, render_template, request, send_from_directory
from flask.cli import FlaskGroup
from flask_wtf.csrf import CSRFError
from markupsafe import Markup
from werkzeug.exceptions import HTTPException
from werkzeug.middleware.proxy_fix import ProxyFix

from client import ConfigError, LogtoAuth, login_required, signed_in_key
from flask_logto.config import is_loopback_url
from flask_logto.i18n import N_
from flask_logto.rate_limits import check_limit, limit_views
from tools.flask_dev import dev_command
from tools.logto_cli import logto_cli
from website import hub, languages, notes, templating
from website.settings import HSTS, site_config, space_setup_needs
from website.space_setup import setup_app

log = logging.getLogger("auth")
auth = LogtoAuth(ui_locales=languages.current_tag)  # Logto's pages in the site's language
site = Blueprint("site", __name__)
HUB_RATE_LIMIT = "30 per minute"  # per signed-in person: each /hf view calls the Hub three times


def create_app(env: Mapping[str, str] | None = None) -> Flask:
    """Build the site from `env` (default: the process environment plus `.env`)."""
    if env is None:
        load_dotenv()
        env = os.environ
    if needs := space_setup_needs(env):
        return setup_app(env, needs)
    app = Flask(__name__)
    app.jinja_environment = templating.FoldingEnvironment  # before the environment is made
    app.cli.add_command(dev_command)
    app.cli.add_command(logto_cli)
    app.config.update(
        SESSION_COOKIE_NAME="site_session",  # not `session`: the dev provider shares the host name
        MAX_CONTENT_LENGTH=64 * 1024,
    )
    try:
        app.config.update(site_config(env))
        if app.config["ON_SPACE"]:  # shown in huggingface.co's iframe: the cookie must be a third-party one
            app.config.update(SESSION_COOKIE_SAMESITE="None", SESSION_COOKIE_SECURE=True)
        auth.init_app(app)
        notes.init_app(app)
        languages.init_app(app)
        templating.init_app(app, languages.current_tag, languages.translations)
        app.register_blueprint(hub.blueprint)  # /hf
        check_limit(app.config, "RATELIMIT_HUB", HUB_RATE_LIMIT)
        limit_views(app, ["hub.page"], "RATELIMIT_HUB", key=signed_in_key)
    except ConfigError as error:
        if _loading_for_cli_lookup():
            app.config["CONFIG_ERROR"] = str(error)  # let `flask logto setup` fix what is missing
            return app
        raise SystemExit(f"Configuration error: {error}") from None
    if hops := app.config["TRUSTED_PROXY_HOPS"]:  # the client address is the one that many proxies saw
        app.wsgi_app = ProxyFix(app.wsgi_app, x_for=hops, x_proto=0, x_host=0, x_port=0, x_prefix=0)  # type: ignore[method-assign]
    else:
        app.before_request(warn_once_about_an_untrusted_proxy)
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
    base_url = current_app.config["LOGTO_BASE_URL"]
    if not is_loopback_url(base_url) or request.method not in ("GET", "HEAD"):
        return None
    arrived_as = f"http://{request.host}"
    if not is_loopback_url(arrived_as) or urlsplit(arrived_as).hostname == urlsplit(base_url).hostname:
        return None
    query = request.query_string.decode("latin-1")
    return redirect(f"{base_url}{quote(request.path)}{'?' + query if query else ''}", 302)


_proxy_warned = threading.Event()


def warn_once_about_an_untrusted_proxy() -> None:
    """Behind a proxy that TRUSTED_PROXY_HOPS does not name, every client counts as the proxy for the rate
    limits (20 sign-ins a minute for the whole site): say so once per process, the first time it shows."""
    if not _proxy_warned.is_set() and "X-Forwarded-For" in request.headers:
        _proxy_warned.set()
        log.warning(
            "event=config-warning cause=%r",
            "X-Forwarded-For arrives but TRUSTED_PROXY_HOPS=0: rate limits count every client as the proxy; "
            "set TRUSTED_PROXY_HOPS to the number of proxies in front of the site",
        )


def csp_nonce() -> str:
    """This response's nonce for its <style> (made when first asked: error pages can come before any view)."""
    if "csp_nonce" not in g:
        g.csp_nonce = secrets.token_urlsafe(16)
    return g.csp_nonce


@site.app_context_processor
def template_values() -> dict[str, Any]:
    # Inside a Space's iframe, Hugging Face and Logto pages must open in a new tab.
    on_space = current_app.config["ON_SPACE"]
    return {
        "csp_nonce": csp_nonce,
        "sign_in_target": Markup(' target="_blank" rel="noopener"') if on_space else "",
        "framed": on_space and request.headers.get("Sec-Fetch-Dest") == "iframe",
    }


@site.get("/")
def index() -> str:
    return render_template("index.html")


@site.get("/profile")
@login_required
def profile() -> str:
    return render_template("profile.html", userinfo=auth.userinfo())


@site.get("/favicon.ico")
def favicon() -> Any:
    """Browsers ask for /favicon.ico whatever the page links: the same icon as static/favicon.svg."""
    return send_from_directory(current_app.static_folder, "favicon.svg", mimetype="image/svg+xml")


@site.get("/healthz")
def healthz() -> tuple[str, int, dict[str, str]]:
    return "ok\n", 200, {"Content-Type": "text/plain"}


@site.after_app_request
def security_headers(response: Any) -> Any:
    config = current_app.config
    nonce = csp_nonce()
    frame_ancestors = config["FRAME_ANCESTORS"]  # on a Space: huggingface.co; elsewhere: nobody
    response.headers["Content-Security-Policy"] = (
        f"default-src 'none'; style-src 'nonce-{nonce}' 'self'; img-src 'self' https:; "
        f"form-action 'self' {config['LOGTO_ENDPOINT']}; base-uri 'none'; frame-ancestors {frame_ancestors}"
    )
    if frame_ancestors == "'none'":
        response.headers["X-Frame-Options"] = "DENY"
    response.headers["X-Content-Type-Options"] = "nosniff"
    response.headers["Referrer-Policy"] = "same-origin"  # Flask-WTF's https check needs it on our own forms
    response.headers["Cache-Control"] = "no-store"
    if config["LOGTO_BASE_URL"].startswith("https://"):
        response.headers["Strict-Transport-Security"] = HSTS
    return response


def _register_error_pages(app: Flask) -> None:
    @app.errorhandler(HTTPException)
    def http_error(error: HTTPException) -> tuple[str, int]:
        status = error.code or 500
        title, message = FORM_EXPIRED if isinstance(error, CSRFError) else HTTP_ERRORS.get(status, HTTP_ERRORS[500])
        return render_template(
            "error.html", title=title, message=message, status=status, offer_sign_in=status in (404, 405),
        ), status

    @app.errorhandler(Exception)
    def unexpected(error: Exception) -> tuple[str, int]:
        log.error("event=error path=%r cause=%s", request.path, type(error).__name__, exc_info=error)
        title, message = HTTP_ERRORS[500]
        return render_template("error.html", title=title, message=message, status=500), 500


# The site's own words for HTTP errors (title, message; translated by error.html), not Werkzeug's.
HTTP_ERRORS = {
    400: (N_("Request not understood"), N_("This request could not be understood. Please go back and try again.")),
    403: (N_("Not allowed"), N_("You are not allowed to open this page.")),
    404: (N_("Page not found"), N_("There is no page at this address. Check the link, or start again from the home page.")),
    405: (
        N_("Not available this way"),
        N_("This address cannot be opened like that. Please use the buttons and links on the site's pages."),
    ),
    413: (N_("Too large"), N_("What you sent is too large for this site.")),
    500: (N_("Something went wrong"), N_("Please try again in a moment.")),
    503: (N_("Temporarily unavailable"), N_("This part of the site cannot answer right now. Please try again in a moment.")),
}
FORM_EXPIRED = (N_("Form expired"), N_("Please reload the page and try again."))


class DropQueryStrings(logging.Filter):
    """Werkzeug's access log writes whole URLs; `/callback?code=...` must not reach the log."""

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        record.msg, record.args = re.sub(r"\?[^\s\"]*", "", message), ()
        return True
