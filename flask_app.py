"""The site: `create_app()`, its routes, error pages, security headers and the `flask dev` command.

Authentication is delegated to Logto (see client.py); pages only ask `isAuthenticated()`.
"""

from __future__ import annotations

import functools
import inspect
import logging
import os
import re
import secrets
from dataclasses import asdict
from typing import Any, Callable, Mapping
from urllib.parse import urlsplit

import click
from cachelib import FileSystemCache
from dotenv import load_dotenv
from flask import Flask, current_app, g, redirect, render_template, request, session, url_for
from flask.cli import FlaskGroup
from flask_session import Session
from flask_wtf.csrf import CSRFError, CSRFProtect
from markupsafe import Markup
from werkzeug.exceptions import HTTPException
from werkzeug.serving import run_simple

from client import AuthFailure, Logto, LogtoUnavailable, SessionEnded, SessionStorage, keep_tokens
from logto_admin import logto_cli
from settings import ConfigError, Settings, load_settings

log = logging.getLogger("auth")
AUTH_PATHS = frozenset({"/sign-in", "/sign-up", "/callback", "/sign-out"})
MAX_NEXT_LENGTH = 2048
MAX_STORED_SESSIONS = 100_000


def create_app(env: Mapping[str, str] | None = None) -> Flask:
    """Build the site from `env` (default: the process environment plus `.env`)."""
    if env is None:
        load_dotenv()
        env = os.environ
    app = Flask(__name__)
    app.cli.add_command(dev_command)
    app.cli.add_command(logto_cli)
    try:
        settings = load_settings(env)
    except ConfigError as error:
        if _loading_for_cli_lookup():
            app.config["CONFIG_ERROR"] = str(error)  # let `flask logto setup` fix what is missing
            return app
        raise SystemExit(f"Configuration error: {error}") from None
    _configure(app, settings)
    _register_routes(app)
    _register_error_pages(app)
    return app


def _loading_for_cli_lookup() -> bool:
    """True while Flask's CLI loads the app only to find one of its commands (not to serve it)."""
    ctx = click.get_current_context(silent=True)
    return ctx is not None and isinstance(ctx.command, FlaskGroup)


def _configure(app: Flask, settings: Settings) -> None:
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    app.config.update(
        SETTINGS=settings,
        SECRET_KEY=settings.secret_key,
        SESSION_TYPE="cachelib",
        # Past MAX_STORED_SESSIONS, expired sessions are deleted, then the oldest: a flood of
        # anonymous visits cannot fill the disk.
        SESSION_CACHELIB=FileSystemCache(str(settings.data_dir / "sessions"), threshold=MAX_STORED_SESSIONS, mode=0o600),
        SESSION_COOKIE_NAME="site_session",  # not `session`: the dev provider shares the host name
        SESSION_COOKIE_HTTPONLY=True,
        SESSION_COOKIE_SAMESITE="Lax",
        SESSION_COOKIE_SECURE=settings.is_https,
        SESSION_REFRESH_EACH_REQUEST=False,
        PERMANENT_SESSION_LIFETIME=settings.session_lifetime,
        WTF_CSRF_TIME_LIMIT=None,  # the token lives as long as the session
        MAX_CONTENT_LENGTH=64 * 1024,
    )
    Session(app)
    CSRFProtect(app)
    app.extensions["logto"] = Logto(settings)
    if not logging.getLogger().handlers:
        logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    log.setLevel(logging.INFO)
    access_log = logging.getLogger("werkzeug")  # `flask run` and `flask dev`; gunicorn logs no access by default
    if not any(isinstance(existing, DropQueryStrings) for existing in access_log.filters):
        access_log.addFilter(DropQueryStrings())


def logto() -> Logto:
    return current_app.extensions["logto"]


def safe_next(target: str | None) -> str:
    """`target` if it is a path on this site, else `/` (no `//host`, `/\\host`, schemes or control characters)."""
    if not target or len(target) > MAX_NEXT_LENGTH:
        return "/"
    if not target.startswith("/") or target.startswith("//") or "\\" in target:
        return "/"
    if any(not 0x21 <= ord(char) <= 0x7E for char in target):
        return "/"
    parts = urlsplit(target)
    if parts.scheme or parts.netloc or parts.path in AUTH_PATHS:
        return "/"
    return target


def login_required(view: Callable[..., Any]) -> Callable[..., Any]:
    """Send signed-out visitors to sign-in, then back here. Works on sync and async views."""

    @functools.wraps(view)
    async def wrapped(**kwargs: Any) -> Any:
        if g.user is None:
            return redirect(url_for("sign_in", next=request.full_path.rstrip("?")))
        result = view(**kwargs)
        return await result if inspect.isawaitable(result) else result

    return wrapped


def _register_routes(app: Flask) -> None:
    @app.before_request
    def load_signed_in_user() -> None:
        g.csp_nonce = secrets.token_urlsafe(16)
        g.user = session.get("user") if logto().client().isAuthenticated() else None

    @app.context_processor
    def template_values() -> dict[str, Any]:
        # Inside a Space's iframe, Hugging Face and Logto pages must open in a new tab.
        on_space = current_app.config["SETTINGS"].on_space
        return {"new_tab_on_space": Markup(' target="_blank" rel="noopener"') if on_space else ""}

    @app.get("/")
    def index() -> str:
        return render_template("index.html")

    @app.get("/sign-in")
    async def sign_in() -> Any:
        return await _start_sign_in(sign_up=False)

    @app.get("/sign-up")
    async def sign_up() -> Any:
        return await _start_sign_in(sign_up=True)

    @app.get("/callback")
    async def callback() -> Any:
        scratch, user = await logto().finish_sign_in(request.query_string.decode("latin-1"))
        next_path = safe_next(session.get("sign_in.next"))
        session.clear()
        keep_tokens(scratch)
        session["user"] = asdict(user)
        current_app.session_interface.regenerate(session)  # new session id: no fixation
        log.info("event=sign-in user=%s", user.sub)
        return redirect(next_path)

    @app.post("/sign-out")
    async def sign_out() -> Any:
        user_id = g.user["sub"] if g.user else None
        session.clear()
        if user_id is None:
            return redirect(url_for("index"))
        log.info("event=sign-out user=%s", user_id)
        try:
            return redirect(await logto().sign_out_url())
        except LogtoUnavailable as failure:
            log.warning("event=sign-out-local-only user=%s cause=%r", user_id, failure.cause)
            g.user = None
            return render_template("signed_out.html"), 503

    @app.get("/profile")
    @login_required
    async def profile() -> Any:
        storage = SessionStorage()
        id_claims = logto().client(storage).getIdTokenClaims().model_dump()
        userinfo = await logto().fetch_userinfo(storage, id_claims, session_id=session.sid)
        return render_template("profile.html", userinfo=userinfo)

    @app.get("/healthz")
    def healthz() -> tuple[str, int, dict[str, str]]:
        return "ok\n", 200, {"Content-Type": "text/plain"}

    @app.after_request
    def security_headers(response: Any) -> Any:
        settings: Settings = current_app.config["SETTINGS"]
        nonce = g.get("csp_nonce", "")
        # A Space shows the site in an iframe on huggingface.co; anywhere else nobody may frame it.
        frame_ancestors = "https://huggingface.co" if settings.on_space else "'none'"
        response.headers["Content-Security-Policy"] = (
            f"default-src 'none'; style-src 'nonce-{nonce}'; img-src 'self' https:; "
            f"form-action 'self' {settings.logto_endpoint}; base-uri 'none'; frame-ancestors {frame_ancestors}"
        )
        if not settings.on_space:
            response.headers["X-Frame-Options"] = "DENY"
        response.headers["X-Content-Type-Options"] = "nosniff"
        response.headers["Referrer-Policy"] = "no-referrer"
        response.headers["Cache-Control"] = "no-store"
        return response


async def _start_sign_in(*, sign_up: bool) -> Any:
    next_path = safe_next(request.args.get("next"))
    await logto().guarded("discovery", logto().core())  # fail before touching the session
    session.clear()  # a new sign-in starts from nothing the previous one stored
    url = await logto().sign_in_url(sign_up=sign_up)
    session["sign_in.next"] = next_path
    return redirect(url)


def _register_error_pages(app: Flask) -> None:
    @app.errorhandler(AuthFailure)
    def auth_failure(failure: AuthFailure) -> tuple[str, int]:
        user_id = g.user["sub"] if g.get("user") else "-"
        log.warning(
            "event=auth-failure kind=%s status=%s path=%s user=%s cause=%r",
            type(failure).__name__, failure.status, request.path, user_id, failure.cause,
        )
        if isinstance(failure, SessionEnded):
            session.clear()
            g.user = None
        return render_template("error.html", title=failure.title, message=failure.message), failure.status

    @app.errorhandler(CSRFError)
    def csrf_failure(error: CSRFError) -> tuple[str, int]:
        log.warning("event=csrf-failure path=%s cause=%r", request.path, error.description)
        return render_template(
            "error.html", title="Form expired", message="Please reload the page and try again."
        ), 400

    @app.errorhandler(HTTPException)
    def http_error(error: HTTPException) -> tuple[str, int]:
        return render_template("error.html", title=f"{error.code} {error.name}", message=error.description), error.code or 500

    @app.errorhandler(Exception)
    def unexpected(error: Exception) -> tuple[str, int]:
        log.error("event=error path=%s cause=%s", request.path, type(error).__name__)
        return render_template("error.html", title="Something went wrong", message="Please try again."), 500


@click.command("dev")
def dev_command() -> None:
    """Run the site on APP_BASE_URL's port; without LOGTO_ENDPOINT, also the local dev identity provider."""
    from devidp.launcher import DevIdpError, ensure_installed, start_provider  # only `dev` needs Node

    if "CONFIG_ERROR" in current_app.config:
        raise click.ClickException(current_app.config["CONFIG_ERROR"])
    settings: Settings = current_app.config["SETTINGS"]
    provider = None
    if settings.uses_dev_provider:
        try:
            ensure_installed()
            provider = start_provider(
                port=settings.dev_provider_port,
                client_id=settings.logto_app_id,
                client_secret=settings.logto_app_secret,
                redirect_uris=[settings.redirect_uri],
                post_logout_redirect_uris=[settings.post_sign_out_uri],
                data_dir=settings.data_dir / "devidp",
            )
        except DevIdpError as error:
            raise click.ClickException(f"the local identity provider did not start: {error}") from None
        click.echo(f" * Local dev identity provider (not Logto): {provider.endpoint}")
    click.echo(f" * Site: {settings.app_base_url}")
    port = urlsplit(settings.app_base_url).port or (443 if settings.is_https else 80)
    try:
        run_simple("127.0.0.1", port, current_app._get_current_object(), threaded=True)
    except OSError as error:
        raise click.ClickException(f"cannot serve on port {port}: {error.strerror}") from None
    finally:
        if provider:
            provider.stop()


class DropQueryStrings(logging.Filter):
    """Werkzeug's access log writes whole URLs; `/callback?code=...` must not reach the log."""

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        record.msg, record.args = re.sub(r"\?[^\s\"]*", "", message), ()
        return True
